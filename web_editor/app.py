"""The editor behind the HTTP API: the model, the gallery, one document with its undo history, and the actions."""

import argparse
import base64
import io
import os
import re
import threading

import numpy as np
import torch
from PIL import Image

from builders import build_dataset, build_model
from data.aligned_dataset import CITYSCAPES_PREFIX, AlignedDataset
from data.base_dataset import open_map
from models.manipulation import FeatureSampler, check_relabel, load_clusters, parse_int_pairs, relabel_maps, resolve_cluster_path
from models.pix2pixHD_model import Pix2PixHDModel, inference_precision
from util import editing
from util.editing import EditError, EditState, History
from util.util import label_colormap, tensor2im

from .render import CoalescingRenderer
from .uploads import load_upload

THUMB_WIDTH = 160
SWATCH_SIZE = 96  # pixels on the longer side of a style swatch
MAX_STROKE_POINTS = 4096
MAX_BRUSH_SIZE = 512
RENDER_TIMEOUT_S = 120


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


def int_field(payload: dict, key: str) -> int:
    """payload[key] as an int, else EditError naming the field."""
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise EditError(f"'{key}' must be an integer, got {value!r}")
    return int(value)


class EditorApp:
    """One document (label map, instance map, styles) with undo history, rendered by the model on its own thread."""

    def __init__(self, opt: argparse.Namespace, model: Pix2PixHDModel, dataset: AlignedDataset | None, centers: dict | None) -> None:
        self.opt = opt
        self.model = model
        self.dataset = dataset
        self.centers = centers
        self.cluster_counts = {class_id: rows.shape[0] for class_id, rows in (centers or {}).items()}
        self.styles_by_label = bool(opt.label_feat)
        self.preset = parse_int_pairs(opt.feat_choice, '--feat_choice')
        self.relabel = check_relabel(parse_int_pairs(opt.relabel, '--relabel'), opt.label_nc)
        self.max_upload_bytes = int(opt.max_upload_mb * 2**20)
        self.rng = np.random.default_rng(opt.seed)
        self.palette = label_colormap(opt.label_nc)
        self.names = editing.class_names(opt.label_nc)
        self.lock = threading.Lock()
        self._history: History | None = None
        self.version = 0
        self.source = ''
        self.objects: frozenset = frozenset()
        self.thumbnails: dict = {}
        self.renderer = CoalescingRenderer(self._render_png).start()

    # ---------------------------------------------------------------- model
    def _synthesize(self, state: EditState) -> np.ndarray:
        """The generator's image (HxWx3 uint8) for a document state, styles as chosen."""
        label = torch.from_numpy(state.label.astype(np.int32))[None, None]
        inst = torch.from_numpy(state.inst.astype(np.int32))[None, None]
        if self.centers is not None:
            # Every clustered segment has a chosen cluster, so the sampler draws nothing at random.
            self.model.feature_sampler = FeatureSampler(self.centers, self.opt.feat_num, dict(state.styles))
        with inference_precision(self.opt, self.model.device):
            generated = self.model.inference(label, inst)
        return tensor2im(generated[0].float().cpu())

    def _render_png(self, state: EditState) -> bytes:
        return png_bytes(self._synthesize(state))

    def _segment_mask(self, state: EditState, segment: int) -> np.ndarray:
        return (state.label if self.styles_by_label else state.inst) == segment

    def swatch(self, segment: int, index: int) -> bytes:
        """A crop of the synthesized image around `segment` with its style set to cluster `index`."""
        with self.lock:
            state = self._current()
            styles = editing.choose_style(state.styles, segment, index, self.cluster_counts)
        trial = EditState(state.label, state.inst, styles)

        def render() -> bytes:
            image = self._synthesize(trial)
            return png_bytes(swatch_crop(image, self._segment_mask(trial, segment)))

        return self.renderer.run_job(render, RENDER_TIMEOUT_S)

    def synthesized(self, after: int, timeout: float = RENDER_TIMEOUT_S) -> tuple:
        """(version, PNG bytes, seconds) of the newest image whose version is >= `after` (the current one at most)."""
        with self.lock:
            self._current()
            after = min(max(after, 1), self.version)
        return self.renderer.result(after, timeout)

    # ---------------------------------------------------------------- gallery and documents
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
        dataset = self._gallery(index)
        if index not in self.thumbnails:
            label = np.asarray(open_map(dataset.A_paths[index]))
            colours = self.palette[np.clip(label, 0, self.opt.label_nc - 1)]
            image = Image.fromarray(colours)
            image.thumbnail((THUMB_WIDTH, THUMB_WIDTH), Image.Resampling.NEAREST)
            self.thumbnails[index] = png_bytes(np.asarray(image))
        return self.thumbnails[index]

    def _gallery(self, index: int) -> AlignedDataset:
        """The dataset, once `index` is known to be one of its images."""
        if self.dataset is None:
            raise EditError("there is no gallery: start the editor with --dataroot DIR --phase PHASE, or upload a label map")
        count = len(self.dataset.A_paths)
        if not 0 <= index < count:
            raise EditError(f"there is no gallery image {index}: the gallery has {count} (0..{count - 1})")
        return self.dataset

    def open_index(self, index: int) -> dict:
        """Open gallery image `index` (read and preprocessed by the dataset, as test.py reads it)."""
        dataset = self._gallery(index)
        sample = dataset[index]
        inst = sample['inst'] if sample['inst'].numel() else sample['label']
        label, inst = relabel_maps(sample['label'][None], inst[None], self.relabel)
        return self._open(label[0, 0].numpy(), inst[0, 0].numpy(), dataset.A_paths[index])

    def open_upload(self, label_name: str, label_data: bytes, inst_name: str | None, inst_data: bytes | None) -> dict:
        """Open an uploaded label PNG (and instance PNG), checked by the dataset's rules."""
        label, inst = load_upload(self.opt, label_name, label_data, inst_name, inst_data, self.max_upload_bytes)
        return self._open(label, label.copy() if inst is None else inst, label_name)

    def _open(self, label: np.ndarray, inst: np.ndarray, source: str) -> dict:
        # Label ids < label_nc and 16-bit instance ids fit uint16, which halves the history's memory.
        label, inst = label.astype(np.uint16), inst.astype(np.uint16)
        with self.lock:
            styles = editing.reconcile_styles(
                {}, editing.style_segments(label, inst, self.styles_by_label), self.cluster_counts, self.rng, self.preset
            )
            self._history = History(EditState(label, inst, styles))
            self.source = source
            self.objects = editing.object_classes(self.opt.label_nc, inst)
            return self._changed()

    @property
    def history(self) -> History:
        """The open document's states."""
        if self._history is None:
            raise EditError("no map is open: pick one from the gallery or upload a label map")
        return self._history

    def _current(self) -> EditState:
        return self.history.current

    def _changed(self) -> dict:
        """Count a new version, queue its rendering and describe the document (call with the lock held)."""
        self.version += 1
        self.renderer.submit(self.version, self.history.current)
        return self._document()

    def _document(self) -> dict:
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
        }

    # ---------------------------------------------------------------- edits
    def edit(self, payload: dict) -> dict:
        """Apply one edit (`op`: stroke, fill, erase, relabel_object, relabel_class, style, class_style, shuffle, undo, redo)."""
        op = str(payload.get('op'))
        with self.lock:
            state = self._current()
            if op == 'undo':
                self.history.undo()
                return self._changed()
            if op == 'redo':
                self.history.redo()
                return self._changed()
            label, inst, styles = self._apply(op, payload, state)
            if label is not state.label:
                self.objects = self.objects | editing.object_classes(self.opt.label_nc, inst)
                styles = editing.reconcile_styles(
                    styles, editing.style_segments(label, inst, self.styles_by_label), self.cluster_counts, self.rng, self.preset
                )
            self.history.push(EditState(label, inst, styles))
            return self._changed()

    def _class(self, payload: dict, key: str = 'class') -> int:
        return editing.check_class(int_field(payload, key), self.opt.label_nc)

    def _apply(self, op: str, payload: dict, state: EditState) -> tuple:
        """(label, inst, styles) after one edit; unchanged maps are the same arrays."""
        label, inst, styles = state.label, state.inst, state.styles
        if op == 'stroke':
            points = payload.get('points')
            if not isinstance(points, list) or not 0 < len(points) <= MAX_STROKE_POINTS:
                raise EditError(f"'points' must be a list of 1..{MAX_STROKE_POINTS} [x, y] pairs")
            try:
                points = [(int(x), int(y)) for x, y in points]
            except (TypeError, ValueError):
                raise EditError("'points' must be [x, y] pairs of integers") from None
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
            styles = editing.choose_style(styles, int_field(payload, 'segment'), int_field(payload, 'index'), self.cluster_counts)
        elif op == 'class_style':
            styles = editing.choose_class_style(styles, self._class(payload), int_field(payload, 'index'), self.cluster_counts)
        elif op == 'shuffle':
            styles = editing.shuffle_styles(styles, self.cluster_counts, self.rng)
        else:
            raise EditError(
                f"unknown edit {op!r}: expected stroke, fill, erase, relabel_object, relabel_class, style, "
                f"class_style, shuffle, undo or redo"
            )
        return label, inst, styles

    def pick(self, x: int, y: int) -> dict:
        """What is at pixel (x, y): class, instance, the segment whose style it shows, and that style."""
        with self.lock:
            state = self._current()
            class_id, instance_id = editing.pick(state.label, state.inst, x, y)
            segment = class_id if self.styles_by_label else instance_id
            return {
                'x': x,
                'y': y,
                'class': class_id,
                'name': self.names[class_id],
                'instance': instance_id,
                'is_object': instance_id >= editing.INSTANCE_BASE,
                'segment': segment,
                'clusters': self.cluster_counts.get(editing.class_of(segment), 0),
                'style': state.styles.get(segment),
                'area': int((state.inst == instance_id).sum()),
            }

    # ---------------------------------------------------------------- downloads
    def download(self, what: str) -> tuple:
        """(file name, content type, bytes) of the synthesized image, the label map, the instance map or the styles."""
        if what not in ('synth', 'label', 'inst', 'styles'):
            raise EditError(f"unknown download {what[:40]!r}: expected synth, label, inst or styles")
        with self.lock:
            state = self._current()
            version = self.version
            stem = download_stem(self.source)
        if what == 'synth':
            _, image, _ = self.renderer.result(version, RENDER_TIMEOUT_S)
            return f'{stem}_synthesized_image.png', 'image/png', image
        if what == 'label':
            label = state.label.astype(np.uint8 if self.opt.label_nc <= 256 else np.uint16)
            return f'{stem}_gtFine_labelIds.png', 'image/png', png_bytes(label)
        if what == 'inst':
            return f'{stem}_gtFine_instanceIds.png', 'image/png', png_bytes(state.inst.astype(np.uint16))
        if self.centers is None:
            raise EditError("this model has no styles: it was trained without --instance_feat or --label_feat")
        return f'{stem}_feat_choice.json', 'application/json', editing.feat_choice_json(state.styles).encode()

    def close(self) -> None:
        """Stop the model thread."""
        self.renderer.stop()


def build_app(opt: argparse.Namespace) -> EditorApp:
    """The model (weights of --which_epoch), its cluster file and the gallery of --dataroot/--phase."""
    dataset = None
    if os.path.isdir(os.path.join(opt.dataroot, f'{opt.phase}_label')) or 'dataroot' in opt.explicit:
        dataset = build_dataset(opt)
        print(f'Gallery: {len(dataset.A_paths)} label maps of {os.path.join(opt.dataroot, opt.phase + "_label")}')
    else:
        print(f'No gallery: {os.path.join(opt.dataroot, opt.phase + "_label")} does not exist; pass --dataroot DIR, or upload label maps')
    model = build_model(opt)
    centers = None
    if opt.use_features:
        centers = load_clusters(resolve_cluster_path(opt), opt.feat_num, opt.allow_pickle)
    return EditorApp(opt, model, dataset, centers)
