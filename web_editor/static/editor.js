// The editor page: shows the server's exact id maps, sends edits as operations, shows the newest image.
// The server owns the label and instance maps (integer ids); this page only previews strokes in colour.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  info: null, doc: null, width: 0, height: 0, label: null, inst: null, palette: null,
  tool: 'brush', size: 4, sizeTouched: false, paintClass: 0, galleryIndex: null,
  selection: null, swatchToken: 0, stroke: null, hover: null, renderQueued: false,
  shownVersion: 0, wantedVersion: 0, synthBusy: false, editTimes: new Map(), session: '',
};

// ------------------------------------------------------------------ server calls
// Every request names this page's session: the server keeps one document per page, so two tabs never
// edit each other's map.
function sessionHeaders(extra = {}) {
  return {'X-Editor-Session': state.session, ...extra};
}

async function api(path, body) {
  const options = body === undefined
    ? {headers: sessionHeaders()}
    : {method: 'POST', headers: sessionHeaders({'Content-Type': 'application/json'}), body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error('the editor does not answer: is scripts/editor.py still running?');
  }
  const text = await response.text();
  let payload;
  try { payload = JSON.parse(text); } catch (error) { throw new Error(`unexpected reply from the editor (HTTP ${response.status})`); }
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

// Actions that change the document run one after another, in the order the user made them.
let queue = Promise.resolve();
function enqueue(task) {
  const run = queue.then(task);
  queue = run.catch(() => {});
  return run.catch((error) => { showMessage(error.message); return null; });
}

function edit(op) {
  const started = performance.now();
  return enqueue(async () => {
    const doc = await api('/api/edit', op);
    await applyDocument(doc, started, op.op === 'erase');
    if (doc.note) showMessage(doc.note, 'info');
    return doc;
  });
}

// ------------------------------------------------------------------ messages and status
function showMessage(text, kind = 'error') {
  $('message-text').textContent = text;
  $('message').className = kind;
  $('message').hidden = false;
  if (kind === 'info') setTimeout(() => { if ($('message-text').textContent === text) $('message').hidden = true; }, 5000);
}
function setStatus(text, busy = false) {
  $('status').textContent = text;
  $('status').classList.toggle('busy', busy);
}

// ------------------------------------------------------------------ documents
function decodeIds(url) {
  // Red is the high byte and green the low byte of each id; PNG is lossless, so the ids come back exact.
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = image.width; canvas.height = image.height;
      const context = canvas.getContext('2d', {willReadFrequently: true});
      context.drawImage(image, 0, 0);
      const data = context.getImageData(0, 0, image.width, image.height).data;
      const ids = new Uint16Array(image.width * image.height);
      for (let i = 0; i < ids.length; i++) ids[i] = (data[4 * i] << 8) | data[4 * i + 1];
      resolve(ids);
    };
    image.onerror = () => reject(new Error('cannot decode the map sent by the editor'));
    image.src = url;
  });
}

async function applyDocument(doc, started, clearSelection = false) {
  // Everything the new version changes is fetched first (maps, and the selection's new style), then
  // shown in one synchronous step: the version the page reports (data-version, data-synced) never
  // runs ahead of the selection panel, which a follow-up request used to refresh after it.
  const picking = !clearSelection && state.selection ? api('/api/pick', {x: state.selection.x, y: state.selection.y}) : null;
  const [label, inst, picked] = await Promise.all([decodeIds(doc.label_ids), decodeIds(doc.inst_ids), picking]);
  const resized = doc.width !== state.width || doc.height !== state.height;
  Object.assign(state, {doc, label, inst, width: doc.width, height: doc.height});
  if (resized) {
    $('label-canvas').width = doc.width;
    $('label-canvas').height = doc.height;
    // The photo keeps the map's shape before its image arrives (its overlay is laid out from it).
    $('synth').width = doc.width;
    $('synth').height = doc.height;
    if (!state.sizeTouched) setSize(Math.max(1, Math.round(doc.width / 40)));
    layoutOverlays();
  }
  renderLabel();
  $('undo').disabled = !doc.can_undo;
  $('redo').disabled = !doc.can_redo;
  document.querySelectorAll('.downloads .button').forEach((link) => link.classList.remove('disabled'));
  $('download-styles').classList.toggle('disabled', !state.info.styles);
  if (clearSelection) setSelection(null);
  else if (picked) setSelection(picked);
  buildPalette();
  document.body.dataset.version = doc.version;
  document.body.dataset.synced = 'false';
  if (started !== undefined) state.editTimes.set(doc.version, started);
  requestSynth(doc.version);
}

function openIndex(index) {
  const started = performance.now();
  return enqueue(async () => {
    const doc = await api('/api/open', {index});
    state.galleryIndex = index;
    document.querySelectorAll('.thumb').forEach((thumb) => thumb.classList.toggle('active', +thumb.dataset.index === index));
    await applyDocument(doc, started, true);
  });
}

function fileToBase64(file) {
  return file.arrayBuffer().then((buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  });
}

async function uploadFiles(event) {
  event.preventDefault();
  const labelFile = $('upload-label').files[0];
  const instFile = $('upload-inst').files[0];
  if (!labelFile) { showMessage('choose a label map PNG to upload'); return; }
  for (const file of [labelFile, instFile]) {
    if (file && file.size > state.info.max_upload_bytes) {
      showMessage(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MB is above the upload limit of ${(state.info.max_upload_bytes / 2 ** 20).toFixed(0)} MB`);
      return;
    }
  }
  const started = performance.now();
  const body = {label: {name: labelFile.name, data: await fileToBase64(labelFile)}, inst: null};
  if (instFile) body.inst = {name: instFile.name, data: await fileToBase64(instFile)};
  const doc = await enqueue(async () => {
    const reply = await api('/api/upload', body);
    state.galleryIndex = null;
    document.querySelectorAll('.thumb').forEach((thumb) => thumb.classList.remove('active'));
    await applyDocument(reply, started, true);
    return reply;
  });
  if (doc) showMessage(`Opened ${labelFile.name}${instFile ? ' with ' + instFile.name : ''}`, 'info');
}

// ------------------------------------------------------------------ the synthesized image (newest wins)
function requestSynth(version) {
  state.wantedVersion = Math.max(state.wantedVersion, version);
  if (!state.synthBusy) pumpSynth();
}

async function pumpSynth() {
  state.synthBusy = true;
  setStatus('synthesizing…', true);
  try {
    while (state.shownVersion < state.wantedVersion) {
      const response = await fetch(`/api/synth?after=${state.wantedVersion}`, {headers: sessionHeaders()});
      if (!response.ok) {
        const payload = await response.json().catch(() => ({}));
        throw new Error(payload.error || `the image could not be made (HTTP ${response.status})`);
      }
      const version = +response.headers.get('X-Version');
      const renderMs = +response.headers.get('X-Render-Ms');
      const url = URL.createObjectURL(await response.blob());
      await new Promise((resolve) => { $('synth').onload = resolve; $('synth').onerror = resolve; $('synth').src = url; });
      state.shownVersion = Math.max(state.shownVersion, version);
      // Both figures belong to this image's version: the page's time from the edit that made it to the
      // image on screen, and the server's model time for it (which ran after that edit arrived: a part).
      const started = state.editTimes.get(version);
      for (const editVersion of state.editTimes.keys()) if (editVersion <= version) state.editTimes.delete(editVersion);
      if (started !== undefined) showLatency(performance.now() - started, renderMs);
      document.body.dataset.shown = state.shownVersion;
    }
    // What tests wait for: the image on screen is the one of the newest edit.
    document.body.dataset.synced = String(!!state.doc && state.shownVersion >= state.doc.version);
    setStatus(`ready · ${state.doc ? state.doc.source : ''}`);
  } catch (error) {
    showMessage(error.message);
    setStatus('the last image failed');
  } finally {
    state.synthBusy = false;
  }
}

// The caption under the photo: the whole wait and the model's part of it, for one and the same edit.
function showLatency(totalMs, modelMs) {
  const caption = $('latency');
  caption.textContent = `edit → image ${Math.round(totalMs)} ms, of which the model ${Math.round(modelMs)} ms`;
  caption.title = 'from the edit to its image on screen; the model part is the generator on the server';
  Object.assign(caption.dataset, {totalMs: totalMs.toFixed(1), modelMs: modelMs.toFixed(1)});
}

// ------------------------------------------------------------------ drawing the label map
function renderLabel() {
  const context = $('label-canvas').getContext('2d');
  const image = context.createImageData(state.width, state.height);
  const data = image.data, palette = state.palette, label = state.label;
  for (let i = 0; i < label.length; i++) {
    const colour = 3 * Math.min(label[i], state.info.label_nc);
    data[4 * i] = palette[colour]; data[4 * i + 1] = palette[colour + 1]; data[4 * i + 2] = palette[colour + 2]; data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => { state.renderQueued = false; renderLabel(); drawOverlays(); });
}

// The same disc-along-a-segment rule as util/editing.py brush_mask, for the preview only.
function previewSegment(x0, y0, x1, y1) {
  const radius = state.size / 2, w = state.width, h = state.height;
  const left = Math.max(Math.floor(Math.min(x0, x1) - radius), 0), right = Math.min(Math.ceil(Math.max(x0, x1) + radius), w - 1);
  const top = Math.max(Math.floor(Math.min(y0, y1) - radius), 0), bottom = Math.min(Math.ceil(Math.max(y0, y1) + radius), h - 1);
  const dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
  for (let y = top; y <= bottom; y++) {
    for (let x = left; x <= right; x++) {
      const t = length2 ? Math.min(Math.max(((x - x0) * dx + (y - y0) * dy) / length2, 0), 1) : 0;
      const ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
      if (ex * ex + ey * ey <= radius * radius) state.label[y * w + x] = state.stroke.class;
    }
  }
  scheduleRender();
}

// ------------------------------------------------------------------ overlays: selection outline and brush cursor
function layoutOverlays() {
  for (const id of ['label-overlay', 'synth-overlay']) {
    const canvas = $(id), box = canvas.getBoundingClientRect(), ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
  }
  drawOverlays();
}

function selectionMask() {
  const selection = state.selection;
  if (!selection) return null;
  const ids = state.info.styles_by_label ? state.label : state.inst;
  const value = state.info.styles_by_label ? selection.class : selection.instance;
  return (i) => ids[i] === value;
}

function drawOverlays() {
  const inside = selectionMask();
  for (const id of ['label-overlay', 'synth-overlay']) {
    const canvas = $(id), context = canvas.getContext('2d');
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (!state.width) continue;
    const sx = canvas.width / state.width, sy = canvas.height / state.height;
    if (inside) {
      const path = new Path2D(), w = state.width, h = state.height;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = y * w + x;
          if (!inside(i)) continue;
          if (x === 0 || !inside(i - 1)) { path.moveTo(x * sx, y * sy); path.lineTo(x * sx, (y + 1) * sy); }
          if (x === w - 1 || !inside(i + 1)) { path.moveTo((x + 1) * sx, y * sy); path.lineTo((x + 1) * sx, (y + 1) * sy); }
          if (y === 0 || !inside(i - w)) { path.moveTo(x * sx, y * sy); path.lineTo((x + 1) * sx, y * sy); }
          if (y === h - 1 || !inside(i + w)) { path.moveTo(x * sx, (y + 1) * sy); path.lineTo((x + 1) * sx, (y + 1) * sy); }
        }
      }
      // A thin line (2 and 1 screen pixels) so that the object itself, and a new style on the photo, stay visible.
      const ratio = window.devicePixelRatio || 1;
      context.lineWidth = 2 * ratio; context.strokeStyle = 'rgba(0,0,0,.8)'; context.stroke(path);
      context.lineWidth = ratio; context.strokeStyle = '#fff'; context.setLineDash([4 * ratio, 3 * ratio]); context.stroke(path); context.setLineDash([]);
    }
    if (state.hover && state.tool === 'brush' && state.hover.canvas === id) {
      context.beginPath();
      context.arc((state.hover.x + 0.5) * sx, (state.hover.y + 0.5) * sy, Math.max(state.size / 2, 0.5) * sx, 0, 2 * Math.PI);
      context.lineWidth = 1.5; context.strokeStyle = 'rgba(255,255,255,.9)'; context.stroke();
    }
  }
}

// ------------------------------------------------------------------ pointer input
function mapPoint(event) {
  const box = event.currentTarget.getBoundingClientRect();
  const x = Math.floor((event.clientX - box.left) / box.width * state.width);
  const y = Math.floor((event.clientY - box.top) / box.height * state.height);
  return {x: Math.min(Math.max(x, 0), state.width - 1), y: Math.min(Math.max(y, 0), state.height - 1)};
}

function className(id) { return state.info.classes[id] ? state.info.classes[id].name : `class ${id}`; }

function onPointerDown(event) {
  if (!state.doc || event.button !== 0) return;
  const {x, y} = mapPoint(event);
  if (state.tool === 'brush') {
    event.currentTarget.setPointerCapture(event.pointerId);
    state.stroke = {class: state.paintClass, points: [[x, y]], label: state.label, before: state.label.slice()};
    previewSegment(x, y, x, y);
  } else if (state.tool === 'fill') {
    edit({op: 'fill', x, y, class: state.paintClass});
  } else if (state.tool === 'pick') {
    enqueue(() => api('/api/pick', {x, y})).then((picked) => { if (picked) setPaintClass(picked.class); });
  } else {
    enqueue(() => api('/api/pick', {x, y})).then((picked) => { if (picked) setSelection(picked); });
  }
}

function onPointerMove(event) {
  if (!state.doc) return;
  const {x, y} = mapPoint(event);
  state.hover = {x, y, canvas: event.currentTarget.id};
  const i = y * state.width + x, instance = state.inst[i];
  $('hover').textContent = `x ${x}, y ${y} · ${className(state.label[i])} (${state.label[i]})${instance >= 1000 ? ` · object ${instance}` : ''}`;
  if (state.stroke) {
    const [lastX, lastY] = state.stroke.points[state.stroke.points.length - 1];
    if (lastX !== x || lastY !== y) {
      state.stroke.points.push([x, y]);
      previewSegment(lastX, lastY, x, y);
    }
  } else {
    drawOverlays();
  }
}

async function onPointerUp() {
  if (!state.stroke) return;
  const stroke = state.stroke;
  state.stroke = null;
  const doc = await edit({op: 'stroke', class: stroke.class, size: state.size, points: stroke.points});
  if (!doc && state.label === stroke.label) {  // refused: take the preview back
    state.label.set(stroke.before);
    scheduleRender();
  }
}

function onPointerLeave() {
  state.hover = null;
  $('hover').textContent = '';
  drawOverlays();
}

// ------------------------------------------------------------------ selection, styles, relabelling
function setSelection(picked) {
  const before = state.selection;
  state.selection = picked;
  $('selection').hidden = !picked;
  drawOverlays();
  if (!picked) {
    state.swatchToken++;  // stops a swatch download under way
    $('swatches').replaceChildren();
    delete $('swatches').dataset.loaded;
    return;
  }
  const colour = state.info.classes[picked.class].color;
  $('selection-chip').style.background = `rgb(${colour.join(',')})`;
  $('selection-title').textContent = `${picked.name} (${picked.class})`;
  $('selection-detail').textContent = picked.is_object ? `object ${picked.instance} · ${picked.area} px` : `stuff · ${picked.area} px`;
  $('erase').textContent = picked.is_object ? 'Erase object' : `Erase all ${picked.name}`;
  $('class-name').textContent = picked.name;
  fillClassSelect($('relabel-object'), picked.class);
  fillClassSelect($('relabel-class'), picked.class);
  const hasStyles = state.info.styles && picked.clusters > 0;
  $('styles-row').hidden = !hasStyles;
  if (hasStyles) {
    $('class-style').textContent = `Use style ${picked.style} for every ${picked.name}`;
    if (!before || before.segment !== picked.segment || before.class !== picked.class || !$('swatches').children.length) loadSwatches(picked);
    document.querySelectorAll('.swatch').forEach((swatch) => swatch.classList.toggle('active', +swatch.dataset.index === picked.style));
  }
}

async function loadSwatches(picked) {
  const token = ++state.swatchToken;
  const container = $('swatches');
  container.replaceChildren();
  delete container.dataset.loaded;
  for (let index = 0; index < picked.clusters; index++) {
    const button = document.createElement('button');
    button.className = 'swatch' + (index === picked.style ? ' active' : '');
    button.dataset.index = index;
    button.title = `style ${index} of ${picked.name}`;
    button.append(textSpan(String(index)));
    button.addEventListener('click', () => edit({op: 'style', segment: state.selection.segment, index}));
    container.appendChild(button);
  }
  // One swatch at a time: the model thread renders them between edits, never ahead of one.
  for (let index = 0; index < picked.clusters; index++) {
    const response = await fetch(`/api/swatch?segment=${picked.segment}&index=${index}`, {headers: sessionHeaders()}).catch(() => null);
    const blob = response && response.ok ? await response.blob() : null;
    if (token !== state.swatchToken) return;  // another object was selected meanwhile
    if (!blob) {  // say why once (an ended session, a model failure), not once per swatch
      const payload = response ? await response.json().catch(() => ({})) : {};
      showMessage(payload.error || 'the style swatches could not be made: is scripts/editor.py still running?');
      break;
    }
    const image = document.createElement('img');
    image.alt = '';
    image.src = URL.createObjectURL(blob);
    container.children[index].prepend(image);
  }
  container.dataset.loaded = token;
}

function fillClassSelect(select, current) {
  select.replaceChildren(new Option('choose…', ''));
  for (const entry of state.info.classes) {
    if (entry.id !== current) select.appendChild(new Option(`${entry.id} · ${entry.name}`, entry.id));
  }
}

// ------------------------------------------------------------------ palette and tools
// Elements are built with DOM calls: the page's Content-Security-Policy allows no inline styles or scripts.
function colourChip(colour) {
  const chip = document.createElement('span');
  chip.className = 'chip';
  chip.style.background = `rgb(${colour.join(',')})`;
  return chip;
}

function textSpan(text, className = '', title = '') {
  const span = document.createElement('span');
  span.textContent = text;
  if (className) span.className = className;
  if (title) span.title = title;
  return span;
}

function buildPalette() {
  const filter = $('class-filter').value.trim().toLowerCase();
  const objects = new Set(state.doc ? state.doc.objects : []);
  const palette = $('palette');
  palette.replaceChildren();
  for (const entry of state.info.classes) {
    if (filter && !entry.name.toLowerCase().includes(filter) && String(entry.id) !== filter) continue;
    const button = document.createElement('button');
    button.className = 'class' + (entry.id === state.paintClass ? ' active' : '');
    button.dataset.class = entry.id;
    button.append(colourChip(entry.color), textSpan(String(entry.id), 'id'), textSpan(entry.name, 'name'));
    if (objects.has(entry.id)) button.append(textSpan('objects', 'tag', 'painted as separate objects: each stroke makes a new one'));
    button.addEventListener('click', () => setPaintClass(entry.id));
    palette.appendChild(button);
  }
}

function setPaintClass(id) {
  state.paintClass = id;
  const entry = state.info.classes[id];
  $('paint-class').replaceChildren(colourChip(entry.color), textSpan(`${entry.name} (${id})`));
  document.querySelectorAll('.class').forEach((button) => button.classList.toggle('active', +button.dataset.class === id));
}

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll('.tool').forEach((button) => button.classList.toggle('active', button.dataset.tool === tool));
  drawOverlays();
}

function setSize(size) {
  state.size = Math.min(Math.max(size, 1), 64);
  $('size').value = state.size;
  $('size-value').textContent = state.size;
  drawOverlays();
}

function onKey(event) {
  if (event.target.closest('input, select, textarea')) return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === 'z') { event.preventDefault(); edit({op: event.shiftKey ? 'redo' : 'undo'}); return; }
  if ((event.ctrlKey || event.metaKey) && key === 'y') { event.preventDefault(); edit({op: 'redo'}); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const tools = {b: 'brush', f: 'fill', i: 'pick', s: 'select'};
  if (tools[key]) setTool(tools[key]);
  else if (key === '[') { state.sizeTouched = true; setSize(state.size - 1); }
  else if (key === ']') { state.sizeTouched = true; setSize(state.size + 1); }
  else if (key === 'escape') setSelection(null);
}

// ------------------------------------------------------------------ start
function buildGallery() {
  const gallery = $('gallery');
  state.info.gallery.forEach((name, index) => {
    const button = document.createElement('button');
    button.className = 'thumb';
    button.dataset.index = index;
    button.title = name;
    const image = document.createElement('img');
    Object.assign(image, {loading: 'lazy', alt: '', src: `/api/thumb?index=${index}`});
    button.append(image, textSpan(name.replace(/_gtFine_labelIds$/, '')));
    button.addEventListener('click', () => openIndex(index));
    gallery.appendChild(button);
  });
  $('gallery-empty').hidden = state.info.gallery.length > 0;
}

async function start() {
  try {
    state.info = await api('/api/info');
    state.session = (await api('/api/session', {})).session;
  } catch (error) {
    showMessage(error.message);
    return;
  }
  const info = state.info;
  state.palette = new Uint8Array(3 * (info.label_nc + 1));  // the extra entry (black) shows ids outside the palette
  info.classes.forEach((entry) => state.palette.set(entry.color, 3 * entry.id));
  $('model-info').textContent = `${info.name} · ${info.device} · ${info.label_nc} classes · ${info.styles ? 'styles from clusters' : 'no styles'}`;
  $('shuffle').hidden = !info.styles;
  document.querySelectorAll('.downloads .button').forEach((link) => {
    link.classList.add('disabled');
    link.href = `${link.getAttribute('href')}&session=${encodeURIComponent(state.session)}`;  // links cannot send headers
  });
  // Closing the page lets go of its document at once (else it goes after --session_idle_minutes).
  window.addEventListener('pagehide', () => {
    fetch('/api/close', {method: 'POST', keepalive: true, headers: sessionHeaders({'Content-Type': 'application/json'}), body: '{}'});
  });
  buildGallery();
  // Cars for the Cityscapes classes (the paper's favourite object), else the first class after 0.
  setPaintClass(info.label_nc === 35 ? 26 : Math.min(1, info.label_nc - 1));
  buildPalette();
  setTool('brush');

  for (const id of ['label-overlay', 'synth-overlay']) {
    const canvas = $(id);
    canvas.addEventListener('pointerdown', onPointerDown);
    canvas.addEventListener('pointermove', onPointerMove);
    canvas.addEventListener('pointerup', onPointerUp);
    canvas.addEventListener('pointercancel', onPointerUp);
    canvas.addEventListener('pointerleave', onPointerLeave);
  }
  document.querySelectorAll('.tool').forEach((button) => button.addEventListener('click', () => setTool(button.dataset.tool)));
  $('size').addEventListener('input', () => { state.sizeTouched = true; setSize(+$('size').value); });
  $('undo').addEventListener('click', () => edit({op: 'undo'}));
  $('redo').addEventListener('click', () => edit({op: 'redo'}));
  $('shuffle').addEventListener('click', () => edit({op: 'shuffle'}));
  $('erase').addEventListener('click', () => edit({op: 'erase', instance: state.selection.instance}));
  $('class-style').addEventListener('click', () => edit({op: 'class_style', class: state.selection.class, index: state.selection.style}));
  $('relabel-object').addEventListener('change', (event) => {
    if (event.target.value !== '') edit({op: 'relabel_object', instance: state.selection.instance, class: +event.target.value});
  });
  $('relabel-class').addEventListener('change', (event) => {
    if (event.target.value !== '') edit({op: 'relabel_class', source: state.selection.class, target: +event.target.value});
  });
  $('class-filter').addEventListener('input', buildPalette);
  $('upload-form').addEventListener('submit', uploadFiles);
  $('message-close').addEventListener('click', () => { $('message').hidden = true; });
  document.addEventListener('keydown', onKey);
  window.addEventListener('resize', layoutOverlays);
  // Each overlay is sized to its own stage; the photo's stage grows when its first image arrives.
  const observer = new ResizeObserver(layoutOverlays);
  observer.observe($('label-stage'));
  observer.observe($('synth-stage'));

  if (info.gallery.length) await openIndex(0);
  else setStatus('upload a label map to start');
}

start();
