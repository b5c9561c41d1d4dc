"""The editor behind the HTTP API: the model, the gallery and the model thread, shared; one document per
browser session (its maps, styles, undo history and version count), within limits of sessions and memory."""

import argparse
import base64
import io
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from builders import build_model, read_model_files
from data.aligned_dataset import CITYSCAPES_PREFIX, AlignedDataset
from data.base_dataset import open_map
from models.common.labels import check_relabel, parse_int_pairs, relabel_maps
from models.common.precision import inference_precision
from models.pix2pixhd.styles import FeatureSampler
from util import editing
from util.editing import EditError, EditState, History
from util.images import label_colormap, tensor2im

from .render import CoalescingRenderer
from .uploads import load_upload

THUMB_WIDTH = 160
SWATCH_SIZE = 96  # pixels on the longer side of a style swatch
MAX_STROKE_POINTS = 4096
MAX_BRUSH_SIZE = 512
MAX_NUMBER = 2**31 - 1  # the largest magnitude of a number in a request (coordinates, ids, versions)
RENDER_TIMEOUT_S = 120


class SessionGone(EditError):
    """A request of a session the editor does not hold (closed, idle too long, or the editor restarted)."""


class TooManySessions(EditError):
    """A new session while --max_sessions are open."""


def jpeg_bytes(array: np.ndarray, quality: int) -> bytes:
    """A uint8 HxWx3 array as JPEG bytes: what the page shows after each edit (a 1024x512 image encodes in ~2 ms where
    PNG takes ~56 ms, measured on the project's 2-core VM; downloads stay PNG, lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='JPEG', quality=quality)
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 HxW(x3) or uint16 HxW array as PNG bytes (fast compression: the page is local)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG', compress_level=1)
    return buffer.getvalue()


def ids_data_url(ids: np.ndarray) -> str:
    """An id map as an RGB PNG data URL (red = high byte, green = low byte) that the page decodes exactly."""
    values = ids.astype(np.uint16)
    rgb = np.stack([(values >> 8).astype(np.uint8), (values & 255).astype(np.uint8), np.zeros_like(values, dtype=np.uint8)], axis=-1)
    return 'data:image/png;base64,' + base64.b64encode(png_bytes(rgb)).decode('ascii')


def download_stem(source_path: str) -> str:
    """A Cityscapes-style `city_seq_frame` stem for the downloads, so that the label and instance PNGs pair
    by name in `test_label/` and `test_inst/` (test.py pairs files by this prefix)."""
    name = os.path.basename(source_path)
    match = CITYSCAPES_PREFIX.match(name)
    if match:
        return match.group(1)
    letters = re.sub(r'[^A-Za-z]', '', os.path.splitext(name)[0])[:40] or 'edited'
    return f'{letters}_000000_000000'


def swatch_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The part of `image` around `mask` (a margin of a quarter of its size), scaled so that its longer side is
    SWATCH_SIZE: a 20-pixel car is shown large enough to judge its style (pixels kept sharp when enlarged)."""
    ys, xs = np.nonzero(mask)
    pad = max(4, (max(np.ptp(ys), np.ptp(xs)) + 1) // 4)
    top, bottom = max(ys.min() - pad, 0), min(ys.max() + pad + 1, image.shape[0])
    left, right = max(xs.min() - pad, 0), min(xs.max() + pad + 1, image.shape[1])
    crop = Image.fromarray(image[top:bottom, left:right])
    scale = SWATCH_SIZE / max(crop.size)
    size = (max(round(crop.width * scale), 1), max(round(crop.height * scale), 1))
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
    return np.asarray(crop.resize(size, method))


def check_int(value: Any, what: str) -> int:
    """`value` as an int: a JSON integer, or a finite integral number, of magnitude <= MAX_NUMBER; else EditError."""
    integral = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not integral or not -MAX_NUMBER <= value <= MAX_NUMBER:
        shown = repr(value)
        raise EditError(f"{what} must be an integer in -{MAX_NUMBER}..{MAX_NUMBER}, got {shown[:40]}{'...' if len(shown) > 40 else ''}")
    return int(value)


def int_field(payload: dict, key: str) -> int:
    """payload[key] as an int, else EditError naming the field."""
    return check_int(payload.get(key), f"'{key}'")


class Session:
    """One browser tab's document: label and instance maps, styles, undo history and version count."""

    def __init__(self, app: 'EditorApp', key: str) -> None:
        self.app = app
        self.key = key
        self.lock = threading.Lock()
        self.rng = np.random.default_rng(app.opt.seed)
        self._history: History | None = None
        self.version = 0
        self.source = ''
        self.objects: frozenset = frozenset()
        self.last_used = app.clock()

    # ---------------------------------------------------------------- images
    def swatch(self, segment: int, index: int) -> bytes:
        """A crop of the synthesized image around `segment` with its style set to cluster `index`."""
        app = self.app
        with self.lock:
            state = self.history.current
            styles = editing.choose_style(state.styles, segment, index, app.cluster_counts)
        trial = EditState(state.label, state.inst, styles)
        return app.renderer.run_job(
            lambda: png_bytes(swatch_crop(app.synthesize(trial), app.segment_mask(trial, segment))), RENDER_TIMEOUT_S
        )

    def synthesized(self, after: int, timeout: float = RENDER_TIMEOUT_S) -> tuple:
        """(version, JPEG bytes (--preview_quality), seconds of the generator) of the newest image whose version is
        >= `after` (the current one at most): the page's view; the download is the lossless PNG."""
        with self.lock:
            if self._history is None:
                raise EditError("no map is open: pick one from the gallery or upload a label map")
            after = min(max(after, 1), self.version)
        version, image, seconds = self.app.renderer.result(self.key, after, timeout)
        return version, jpeg_bytes(image, self.app.opt.preview_quality), seconds

    # ---------------------------------------------------------------- documents
    def open_index(self, index: int) -> dict:
        """Open gallery image `index` (read and preprocessed by the dataset, as test.py reads it)."""
        dataset = self.app.gallery(index)
        sample = dataset[index]
        inst = sample['inst'] if sample['inst'].numel() else sample['label']
        label, inst = relabel_maps(sample['label'][None], inst[None], self.app.relabel)
        return self._open(label[0, 0].numpy(), inst[0, 0].numpy(), dataset.A_paths[index])

    def open_upload(self, label_name: str, label_data: bytes, inst_name: str | None, inst_data: bytes | None) -> dict:
        """Open an uploaded label PNG (and instance PNG), checked by the dataset's rules."""
        app = self.app
        label, inst = load_upload(app.opt, label_name, label_data, inst_name, inst_data, app.max_upload_bytes, app.opt.max_pixels)
        return self._open(label, label.copy() if inst is None else inst, label_name)

    def _open(self, label: np.ndarray, inst: np.ndarray, source: str) -> dict:
        app = self.app
        # Label ids < label_nc and 16-bit instance ids fit uint16, which halves the history's memory.
        label, inst = label.astype(np.uint16), inst.astype(np.uint16)
        size = label.nbytes + inst.nbytes
        if size > app.max_session_bytes:
            raise EditError(
                f"{os.path.basename(source)}: a {label.shape[1]}x{label.shape[0]} map takes {size / 2**20:.1f} MB per undo step, "
                f"above the {app.opt.max_session_mb:g} MB each session may hold (--max_session_mb)"
            )
        with self.lock:
            styles = editing.reconcile_styles(
                {}, editing.style_segments(label, inst, app.styles_by_label), app.cluster_counts, self.rng, app.preset
            )
            self._history = History(EditState(label, inst, styles), max_bytes=app.max_session_bytes)
            self.source = source
            self.objects = editing.object_classes(app.opt.label_nc, inst)
            return self._changed()

    @property
    def history(self) -> History:
        """The open document's states."""
        if self._history is None:
            raise EditError("no map is open: pick one from the gallery or upload a label map")
        return self._history

    def _changed(self, note: str = '') -> dict:
        """Count a new version, queue its rendering and describe the document (call with the lock held)."""
        self.version += 1
        self.app.renderer.submit(self.key, self.version, self.history.current)
        state = self.history.current
        return {
            'version': self.version,
            'source': os.path.basename(self.source),
            'width': int(state.label.shape[1]),
            'height': int(state.label.shape[0]),
            'label_ids': ids_data_url(state.label),
            'inst_ids': ids_data_url(state.inst),
            'styles': {str(segment): index for segment, index in state.styles.items()},
            'objects': sorted(self.objects),
            'can_undo': self.history.can_undo,
            'can_redo': self.history.can_redo,
            'note': note,
        }

    # ---------------------------------------------------------------- edits
    def edit(self, payload: dict) -> dict:
        """Apply one edit (`op`: stroke, fill, erase, relabel_object, relabel_class, style, class_style, shuffle, undo, redo)."""
        app = self.app
        op = payload.get('op')
        with self.lock:
            state = self.history.current
            if op == 'undo':
                self.history.undo()
                return self._changed()
            if op == 'redo':
                self.history.redo()
                return self._changed()
            label, inst, styles = self._apply(op, payload, state)
            if label is not state.label:
                self.objects = self.objects | editing.object_classes(app.opt.label_nc, inst)
                styles = editing.reconcile_styles(
                    styles, editing.style_segments(label, inst, app.styles_by_label), app.cluster_counts, self.rng, app.preset
                )
            dropped = self.history.push(EditState(label, inst, styles))
            note = (
                f"undo keeps the last {self.history.undo_steps} steps: older ones were let go to stay within "
                f"the {app.opt.max_session_mb:g} MB a session may hold (--max_session_mb)"
                if dropped
                else ''
            )
            return self._changed(note)

    def _class(self, payload: dict, key: str = 'class') -> int:
        return editing.check_class(int_field(payload, key), self.app.opt.label_nc)

    def _apply(self, op: Any, payload: dict, state: EditState) -> tuple:
        """(label, inst, styles) after one edit; unchanged maps are the same arrays."""
        app = self.app
        label, inst, styles = state.label, state.inst, state.styles
        if op == 'stroke':
            points = payload.get('points')
            if not isinstance(points, list) or not 0 < len(points) <= MAX_STROKE_POINTS:
                raise EditError(f"'points' must be a list of 1..{MAX_STROKE_POINTS} [x, y] pairs")
            if not all(isinstance(point, list) and len(point) == 2 for point in points):
                raise EditError("'points' must be [x, y] pairs of integers")
            points = [(check_int(x, "a point's x"), check_int(y, "a point's y")) for x, y in points]
            size = int_field(payload, 'size')
            if not 1 <= size <= MAX_BRUSH_SIZE:
                raise EditError(f"brush size {size} must be in 1..{MAX_BRUSH_SIZE}")
            label, inst = editing.stroke(label, inst, points, size, self._class(payload), self.objects)
        elif op == 'fill':
            label, inst = editing.fill(label, inst, int_field(payload, 'x'), int_field(payload, 'y'), self._class(payload), self.objects)
        elif op == 'erase':
            label, inst = editing.erase_object(label, inst, int_field(payload, 'instance'))
        elif op == 'relabel_object':
            label, inst = editing.relabel_object(label, inst, int_field(payload, 'instance'), self._class(payload), self.objects)
        elif op == 'relabel_class':
            label, inst = editing.relabel_class(label, inst, self._class(payload, 'source'), self._class(payload, 'target'))
        elif op == 'style':
            styles = editing.choose_style(styles, int_field(payload, 'segment'), int_field(payload, 'index'), app.cluster_counts)
        elif op == 'class_style':
            styles = editing.choose_class_style(styles, self._class(payload), int_field(payload, 'index'), app.cluster_counts)
        elif op == 'shuffle':
            styles = editing.shuffle_styles(styles, app.cluster_counts, self.rng)
        else:
            shown = repr(op)
            raise EditError(
                f"unknown edit {shown[:40]}{'...' if len(shown) > 40 else ''}: expected stroke, fill, erase, relabel_object, "
                f"relabel_class, style, class_style, shuffle, undo or redo"
            )
        return label, inst, styles

    def pick(self, x: int, y: int) -> dict:
        """What is at pixel (x, y): class, instance, the segment whose style it shows, and that style."""
        app = self.app
        with self.lock:
            state = self.history.current
            class_id, instance_id = editing.pick(state.label, state.inst, x, y)
            segment = class_id if app.styles_by_label else instance_id
            return {
                'x': x,
                'y': y,
                'class': class_id,
                'name': app.names[class_id],
                'instance': instance_id,
                'is_object': instance_id >= editing.INSTANCE_BASE,
                'segment': segment,
                'clusters': app.cluster_counts.get(editing.class_of(segment), 0),
                'style': state.styles.get(segment),
                'area': int((state.inst == instance_id).sum()),
            }

    # ---------------------------------------------------------------- downloads
    def download(self, what: str) -> tuple:
        """(file name, content type, bytes) of the synthesized image, the label map, the instance map or the styles."""
        app = self.app
        if what not in ('synth', 'label', 'inst', 'styles'):
            raise EditError(f"unknown download {what[:40]!r}: expected synth, label, inst or styles")
        with self.lock:
            state = self.history.current
            version = self.version
            stem = download_stem(self.source)
        if what == 'synth':
            _, image, _ = app.renderer.result(self.key, version, RENDER_TIMEOUT_S)
            return f'{stem}_synthesized_image.png', 'image/png', png_bytes(image)
        if what == 'label':
            label = state.label.astype(np.uint8 if app.opt.label_nc <= 256 else np.uint16)
            return f'{stem}_gtFine_labelIds.png', 'image/png', png_bytes(label)
        if what == 'inst':
            return f'{stem}_gtFine_instanceIds.png', 'image/png', png_bytes(state.inst.astype(np.uint16))
        if app.centers is None:
            raise EditError("this model has no styles: it was trained without --instance_feat or --label_feat")
        return f'{stem}_feat_choice.json', 'application/json', editing.feat_choice_json(state.styles).encode()


class EditorApp:
    """The model, its clusters and the gallery, shared by the sessions (one per page), rendered on one model thread."""

    def __init__(
        self,
        opt: argparse.Namespace,
        model: Any,
        dataset: AlignedDataset | None,
        centers: dict | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.opt = opt
        self.model = model
        self.dataset = dataset
        self.centers = centers
        self.clock = clock
        self.cluster_counts = {class_id: rows.shape[0] for class_id, rows in (centers or {}).items()}
        # Styles are a method's with encoded features (pix2pixHD's --instance_feat / --label_feat flags).
        self.styles_by_label = bool(opt.use_features and opt.label_feat)
        self.preset = parse_int_pairs(opt.feat_choice, '--feat_choice') if opt.use_features else {}
        self.relabel = check_relabel(parse_int_pairs(opt.relabel, '--relabel'), opt.label_nc)
        self.max_upload_bytes = int(opt.max_upload_mb * 2**20)
        self.max_session_bytes = int(opt.max_session_mb * 2**20)
        self.palette = label_colormap(opt.label_nc)
        self.names = editing.class_names(opt.label_nc)
        self.thumbnails: dict = {}
        self.sessions: dict = {}
        self.sessions_lock = threading.Lock()
        self.renderer = CoalescingRenderer(self.synthesize).start()  # the image as an array: encoded per request

    # ---------------------------------------------------------------- sessions
    def new_session(self) -> str:
        """A new session's key (what the page sends with each request), or TooManySessions."""
        with self.sessions_lock:
            self._expire()
            if len(self.sessions) >= self.opt.max_sessions:
                raise TooManySessions(
                    f"the editor holds {len(self.sessions)} sessions, its limit (--max_sessions): close a tab of it, "
                    f"or wait until one has been idle for {self.opt.session_idle_minutes:g} minutes"
                )
            key = secrets.token_urlsafe(18)
            self.sessions[key] = Session(self, key)
            return key

    def session(self, key: Any) -> Session:
        """The session of `key`, marked as used now, or SessionGone."""
        with self.sessions_lock:
            self._expire()
            session = self.sessions.get(key) if isinstance(key, str) else None
            if session is None:
                raise SessionGone(
                    "this page's editor session has ended (closed, idle for more than "
                    f"{self.opt.session_idle_minutes:g} minutes, or the editor restarted): reload the page"
                    if key
                    else "the request has no editor session (X-Editor-Session): reload the page"
                )
            session.last_used = self.clock()
            return session

    def close_session(self, key: Any) -> None:
        """Let go of a session (the page is closing) and its document."""
        with self.sessions_lock:
            if isinstance(key, str) and self.sessions.pop(key, None) is not None:
                self.renderer.forget(key)

    def _expire(self) -> None:
        """Let go of the sessions idle for longer than --session_idle_minutes (call with sessions_lock held)."""
        now = self.clock()
        for key, session in list(self.sessions.items()):
            if now - session.last_used > 60 * self.opt.session_idle_minutes:
                del self.sessions[key]
                self.renderer.forget(key)

    # ---------------------------------------------------------------- model
    def synthesize(self, state: EditState) -> np.ndarray:
        """The generator's image (HxWx3 uint8) for a document state, styles as chosen."""
        label = torch.from_numpy(state.label.astype(np.int32))[None, None]
        inst = torch.from_numpy(state.inst.astype(np.int32))[None, None]
        if self.centers is not None:
            # Every clustered segment has a chosen cluster, so the sampler draws nothing at random.
            self.model.feature_sampler = FeatureSampler(self.centers, self.opt.feat_num, dict(state.styles))
        with inference_precision(self.opt, self.model.device):
            generated = self.model.inference(label, inst)
        return tensor2im(generated[0].float().cpu())

    def segment_mask(self, state: EditState, segment: int) -> np.ndarray:
        """Where `segment` (an instance id, or a class id with --label_feat) is."""
        return (state.label if self.styles_by_label else state.inst) == segment

    # ---------------------------------------------------------------- gallery
    def info(self) -> dict:
        """What the page needs to build itself: classes, styles, gallery, limits."""
        names = [] if self.dataset is None else [os.path.splitext(os.path.basename(path))[0] for path in self.dataset.A_paths]
        return {
            'name': self.opt.name,
            'device': str(self.model.device),
            'label_nc': self.opt.label_nc,
            'classes': [
                {'id': class_id, 'name': self.names[class_id], 'color': [int(c) for c in self.palette[class_id]]}
                for class_id in range(self.opt.label_nc)
            ],
            'clusters': {str(class_id): count for class_id, count in sorted(self.cluster_counts.items())},
            'styles': self.centers is not None,
            'styles_by_label': self.styles_by_label,
            'gallery': names,
            'phase': self.opt.phase,
            'max_upload_bytes': self.max_upload_bytes,
        }

    def thumbnail(self, index: int) -> bytes:
        """A small colourised picture of gallery label map `index`."""
        dataset = self.gallery(index)
        if index not in self.thumbnails:
            label = np.asarray(open_map(dataset.A_paths[index]))
            colours = self.palette[np.clip(label, 0, self.opt.label_nc - 1)]
            image = Image.fromarray(colours)
            image.thumbnail((THUMB_WIDTH, THUMB_WIDTH), Image.Resampling.NEAREST)
            self.thumbnails[index] = png_bytes(np.asarray(image))
        return self.thumbnails[index]

    def gallery(self, index: int) -> AlignedDataset:
        """The dataset, once `index` is known to be one of its images."""
        if self.dataset is None:
            raise EditError("there is no gallery: start the editor with --dataroot DIR --phase PHASE, or upload a label map")
        count = len(self.dataset.A_paths)
        if not 0 <= index < count:
            raise EditError(f"there is no gallery image {index}: the gallery has {count} (0..{count - 1})")
        return self.dataset

    def close(self) -> None:
        """Stop the model thread."""
        self.renderer.stop()


def build_app(opt: argparse.Namespace) -> EditorApp:
    """The model (weights of --which_epoch), its cluster file and the gallery of --dataroot/--phase."""
    dataset = None
    if os.path.isdir(os.path.join(opt.dataroot, f'{opt.phase}_label')) or 'dataroot' in opt.explicit:
        dataset = AlignedDataset(opt)  # the editor paints label maps: the label-to-image methods' aligned layout
        print(f'Gallery: {len(dataset.A_paths)} label maps of {os.path.join(opt.dataroot, opt.phase + "_label")}')
    else:
        print(f'No gallery: {os.path.join(opt.dataroot, opt.phase + "_label")} does not exist; pass --dataroot DIR, or upload label maps')
    # Styles come from the cluster file of a model with instance features; any other model paints and synthesizes.
    files = read_model_files(opt)
    return EditorApp(opt, build_model(opt, files), dataset, files.get('clusters'))
