"""The sequence dataset (docs/VIDEO.md): per sequence a folder of label maps, instance maps, photos and flow files;
one item is a clip of consecutive (or evenly spaced) frames with one crop and flip for all of them."""

import argparse
import copy
import os
import random
import re
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from util.errors import DatasetError
from util.flow import compose_flows

from .aligned_dataset import check_label_maxima, image_header, label_maxima, pair_key
from .base_dataset import image_to_tensor, map_to_tensor, open_map, size_before_crop, to_rgb, transform
from .flow_files import load_flow
from .image_folder import is_image_file

FLOW_EXTENSIONS = ('.npz', '.flo')
# Cityscapes' leftImg8bit_sequence keeps a city's sequences in one folder, named city_sequence_frame: such a folder
# holds one sequence per city_sequence.
CITYSCAPES_FRAME = re.compile(r'^([A-Za-z]+_\d{6})_\d{6}_')


def _frames_by_sequence(folder: str, is_frame: Callable[[str], bool]) -> dict[str, list[str]]:
    """{sequence name: sorted frame paths} under `folder`: each sub-folder with frames is a sequence (its path relative
    to `folder`), split by city_sequence where the names are Cityscapes'."""
    sequences: dict[str, list[str]] = {}
    for directory, _, names in sorted(os.walk(folder)):
        relative = os.path.relpath(directory, folder)
        for name in sorted(filter(is_frame, names)):
            match = CITYSCAPES_FRAME.match(name)
            key = relative if not match else os.path.join(relative, match.group(1))
            sequences.setdefault(os.path.normpath(key), []).append(os.path.join(directory, name))
    return sequences


def _is_flow_file(name: str) -> bool:
    """True for the flow file extensions the dataset reads."""
    return name.lower().endswith(FLOW_EXTENSIONS)


class SequenceDataset(torch.utils.data.Dataset):
    """Clips of `n_frames` consecutive frames of the sequences under `root`/`phase`_label (and _inst, _img, _flow).

    Each item (see __getitem__) is one sequence's clip, from a random start (or `start`), with one crop and one flip
    for all its frames. `photos` and `flow`: True requires the folder, False ignores it, None reads it where present.
    """

    def __init__(
        self,
        root: str,
        phase: str,
        label_nc: int,
        n_frames: int | None = None,
        *,
        instances: bool = True,
        photos: bool | None = True,
        flow: bool | None = None,
        resize_or_crop: str = 'none',
        load_size: int = 1024,
        fine_size: int = 512,
        size_base: int = 1,
        flip: bool = False,
        start: int | None = None,
        seed: int | None = None,
        batch_size: int = 1,
        clip_schedule: Callable[[int], int] | None = None,
        max_step: int = 1,
    ) -> None:
        """`clip_schedule`: clip length by training epoch (keys (epoch, index)), e.g. a length that grows; else `n_frames`.
        `max_step` > 1: a clip's frames are spaced by a step drawn per clip from 1 .. max_step (at most what the
        sequence holds), and its flows are the skipped frames' consecutive flows composed."""
        if label_nc < 1:
            raise DatasetError(f"label_nc {label_nc}: sequences are label maps (label_nc >= 1); RGB inputs are not supported")
        self.root, self.phase, self.label_nc = root, phase, label_nc
        self.start, self.seed, self.batch_size = start, seed, batch_size
        # base_dataset.transform reads these names; the flip is this dataset's own setting.
        self.preprocess = argparse.Namespace(
            resize_or_crop=resize_or_crop, loadSize=load_size, fineSize=fine_size, size_base=size_base, isTrain=True, no_flip=not flip
        )
        label_folder = os.path.join(root, f'{phase}_label')
        if not os.path.isdir(label_folder):
            raise DatasetError(f"{label_folder}: folder of label-map sequences not found; check the dataroot {root} and phase {phase}")
        self.labels = _frames_by_sequence(label_folder, is_image_file)
        if not self.labels:
            raise DatasetError(f"{label_folder}: no label maps found (one sub-folder of frames per sequence)")
        self.names = sorted(self.labels)
        self.insts = self._paired(f'{phase}_inst', 'instance maps (or read without instances)', is_image_file) if instances else None
        self.photos = self._optional(f'{phase}_img', 'photos', is_image_file, photos)
        self.flows = self._optional(f'{phase}_flow', 'flow files (.npz or .flo)', _is_flow_file, flow, skip_first=True)
        self.n_frames = self._checked_length(n_frames)
        self.clip_schedule = clip_schedule
        self.max_step = max_step
        self.dataset_size = len(self.names)

    def _optional(
        self, name: str, what: str, is_frame: Callable[[str], bool], wanted: bool | None, skip_first: bool = False
    ) -> dict | None:
        """A paired folder that `wanted` requires (True), ignores (False) or reads where present (None)."""
        if wanted is False or (wanted is None and not os.path.isdir(os.path.join(self.root, name))):
            return None
        return self._paired(name, what, is_frame, skip_first)

    def _paired(self, name: str, what: str, is_frame: Callable[[str], bool], skip_first: bool = False) -> dict[str, list[str]]:
        """{sequence: frame paths} of a folder whose sequences and frames pair by name with the label maps' (from the
        second frame on with `skip_first`: flow t takes frame t to frame t-1, so frame 0 has none)."""
        folder = os.path.join(self.root, name)
        if not os.path.isdir(folder):
            raise DatasetError(f"{folder}: folder of {what} not found beside {self.root}/{self.phase}_label")
        found = _frames_by_sequence(folder, is_frame)
        for sequence in self.names:
            labels = self.labels[sequence][1:] if skip_first else self.labels[sequence]
            frames = found.get(sequence, [])
            if [pair_key(path) for path in frames] != [pair_key(path) for path in labels]:
                label_keys, frame_keys = {pair_key(p) for p in labels}, {pair_key(p) for p in frames}
                unpaired = sorted(label_keys - frame_keys)
                extra = sorted(frame_keys - label_keys)
                raise DatasetError(
                    f"{os.path.join(folder, sequence)}: {len(frames)} {what} for {len(labels)} label maps of sequence {sequence} "
                    f"({len(unpaired)} frames without one, e.g. {unpaired[:2]}; {len(extra)} without a label map, e.g. {extra[:2]})"
                    f"; every frame{' from the second on' if skip_first else ''} needs one, named as its label map"
                )
        return {sequence: found[sequence] for sequence in self.names}

    def _checked_length(self, n_frames: int | None) -> int | None:
        """`n_frames`, refused where a sequence is shorter (None: whole sequences)."""
        if n_frames is None:
            return None
        if n_frames < 1:
            raise DatasetError(f"clip length {n_frames}: at least one frame")
        shortest = min(self.names, key=lambda sequence: len(self.labels[sequence]))
        if len(self.labels[shortest]) < n_frames:
            raise DatasetError(
                f"{os.path.join(self.root, f'{self.phase}_label', shortest)}: {len(self.labels[shortest])} frames, fewer than the "
                f"clip length {n_frames}; use clips of at most {len(self.labels[shortest])} frames or remove the short sequence"
            )
        return n_frames

    def with_clip_length(self, n_frames: int | None) -> 'SequenceDataset':
        """A copy that reads clips of `n_frames` (training grows the length; build a new DataLoader over the copy)."""
        other = copy.copy(self)
        other.n_frames = self._checked_length(n_frames)
        return other

    def shortest_sequence(self) -> int:
        """Frames of the shortest sequence (the longest clip every sequence holds)."""
        return min(len(frames) for frames in self.labels.values())

    def sequence_length(self, index: int) -> int:
        """Frames of sequence `index`."""
        return len(self.labels[self.names[index]])

    def _read(self, path: str, as_map: bool) -> Image.Image:
        try:
            if as_map:
                return open_map(path)
            img = Image.open(path)
            img.load()
            return to_rgb(img, path)
        except DatasetError:
            raise
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read image ({error}); re-export or remove the file") from None

    def _geometry(self, size: tuple, rng) -> dict:
        """One crop position and flip for a whole clip of frames of `size` (base_dataset.get_params' rule)."""
        width, height = size_before_crop(self.preprocess, size)
        fine = self.preprocess.fineSize
        return {
            'crop_pos': (rng.randint(0, max(0, width - fine)), rng.randint(0, max(0, height - fine))),
            'flip': rng.random() > 0.5,
        }

    def _map(self, img: Image.Image, params: dict, method: int, path: str) -> Image.Image:
        try:
            return transform(img, self.preprocess, params, method)
        except DatasetError as error:
            raise DatasetError(f"{path}: {error}; use larger frames or another resize_or_crop / load size") from None

    def _resized_size(self, size: tuple) -> tuple:
        """(width, height) of a frame of `size` after resizing, before cropping (what flow values are scaled by)."""
        mode, (width, height) = self.preprocess.resize_or_crop, size
        if 'resize' in mode:
            return self.preprocess.loadSize, self.preprocess.loadSize
        if 'scale_width' in mode:
            load = self.preprocess.loadSize
            return (load, int(load * height / width)) if width != load else size
        if mode == 'none':
            base = self.preprocess.size_base
            return int(round(width / base) * base), int(round(height / base) * base)
        return size

    def _flow(self, path: str, params: dict, size: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """One flow file as (2 x H x W flow, 1 x H x W mask) after the clip's resize, crop and flip."""
        try:
            flow, mask = load_flow(path)
        except (OSError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read flow ({error}); re-export or remove the file") from None
        if (flow.shape[2], flow.shape[1]) != size:
            raise DatasetError(
                f"{path}: flow is {flow.shape[2]}x{flow.shape[1]} but its label map is {size[0]}x{size[1]}; they must be aligned"
            )
        # The frames' own geometry (nearest: a flow value is not averaged across motion edges), without its flip, which
        # also negates x below.
        unflipped = {**params, 'flip': False}
        channels = [np.asarray(self._map(Image.fromarray(c), unflipped, Image.Resampling.NEAREST, path)) for c in flow]
        visible = np.asarray(self._map(Image.fromarray(mask), unflipped, Image.Resampling.NEAREST, path))
        new_width, new_height = self._resized_size(size)
        scaled = np.stack([channels[0] * (new_width / size[0]), channels[1] * (new_height / size[1])]).astype(np.float32)
        if params['flip'] and not self.preprocess.no_flip:
            scaled, visible = scaled[:, :, ::-1], visible[:, ::-1]
            scaled[0] = -scaled[0]  # a pixel's content to its left is to its right in the mirror image
        # A crop cuts off where some pixels' content was: those are not visible in the previous (cropped) frame.
        height, width = visible.shape
        source_x = np.arange(width, dtype=np.float32)[None, :] + scaled[0]
        source_y = np.arange(height, dtype=np.float32)[:, None] + scaled[1]
        inside = (source_x >= 0) & (source_x <= width - 1) & (source_y >= 0) & (source_y <= height - 1)
        visible = (visible > 0) & inside
        return torch.from_numpy(scaled.copy()), torch.from_numpy(visible.astype(np.float32).copy())[None]

    def _step(self, sequence_length: int, length: int, rng) -> int:
        """The spacing of a clip of `length` frames: 1, or with max_step > 1 one drawn from 1 .. max_step, at most what a
        sequence of `sequence_length` frames holds (the authors' max_t_step). No draw otherwise: the clips of
        max_step 1 stay the ones drawn before it existed."""
        if self.max_step == 1:
            return 1
        most = min(self.max_step, (sequence_length - 1) // (length - 1)) if length > 1 else 1
        return rng.randint(1, most)

    def _flow_back(self, paths: list[str], t: int, step: int, params: dict, size: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow and mask taking frame t to frame t - step from a sequence's flow files `paths` (entry t-1: frame t's): frame
        t's, or with step > 1 those of frames t - step + 1 .. t composed (the mask: visible all the way back)."""
        pairs = [self._flow(paths[frame - 1], params, size) for frame in range(t - step + 1, t + 1)]
        if step == 1:
            return pairs[0]
        flow, mask = compose_flows(torch.stack([flow for flow, _ in pairs])[None], torch.stack([mask for _, mask in pairs])[None])
        return flow[0], mask[0]

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """One clip of sequence `key` (an index, or (epoch, index) from the training sampler: with a seed the start,
        crop and flip then depend only on (seed, epoch, index)).

        Returns {'label': T x 1 x H x W int32 ids, 'inst': T x 1 x H x W int32, 'image': T x 3 x H x W in [-1, 1],
        'flow': T-1 x 2 x H x W pixels (flow[i] takes frame i+1 of the clip to frame i), 'flow_mask': T-1 x 1 x H x W
        (1: visible in the previous frame), 'path': the sequence's label folder, 'start': the clip's first frame, 'step':
        the spacing of its frames in the sequence (1 unless max_step > 1)}; an absent kind is an empty tensor.
        """
        epoch, index = key if isinstance(key, tuple) else (None, key)
        rng = random.Random(f'{self.seed}:{epoch}:{index}') if self.seed is not None and epoch is not None else random
        sequence = self.names[index]
        labels = self.labels[sequence]
        if self.clip_schedule is not None and epoch is not None:
            length = self._checked_length(self.clip_schedule(epoch)) or len(labels)
        else:
            length = self.n_frames or len(labels)
        step = self._step(len(labels), length, rng)
        span = (length - 1) * step + 1  # frames of the sequence the clip covers
        start = rng.randint(0, len(labels) - span) if self.start is None else min(self.start, len(labels) - span)
        frames = range(start, start + span, step)
        first = self._read(labels[start], as_map=True)
        size = first.size
        params = self._geometry(size, rng)
        label_maps, inst_maps, photos, flows, masks = [], [], [], [], []
        for t in frames:
            label_img = first if t == start else self._read(labels[t], as_map=True)
            self._check_size(labels[t], label_img.size, size, labels[start])
            label = map_to_tensor(self._map(label_img, params, Image.Resampling.NEAREST, labels[t]))
            if t == start:
                self._check_size_base(labels[t], label.shape[-1], label.shape[-2])
            if int(label.max()) >= self.label_nc:
                raise DatasetError(
                    f"{labels[t]}: label value {int(label.max())} >= label_nc {self.label_nc}; pass a label_nc of "
                    f"{int(label.max()) + 1} or more (check_contents names the one that covers the whole dataset)"
                )
            label_maps.append(label)
            if self.insts is not None:
                path = self.insts[sequence][t]
                inst = self._read(path, as_map=True)
                self._check_size(path, inst.size, size, labels[t])
                inst_maps.append(map_to_tensor(self._map(inst, params, Image.Resampling.NEAREST, path)))
            if self.photos is not None:
                path = self.photos[sequence][t]
                photo = self._read(path, as_map=False)
                self._check_size(path, photo.size, size, labels[t])
                photos.append(image_to_tensor(self._map(photo, params, Image.Resampling.BICUBIC, path)))
            if self.flows is not None and t > start:
                flow, mask = self._flow_back(self.flows[sequence], t, step, params, size)
                flows.append(flow)
                masks.append(mask)
        empty = torch.zeros(0)
        return {
            'label': torch.stack(label_maps),
            'inst': torch.stack(inst_maps) if inst_maps else empty,
            'image': torch.stack(photos) if photos else empty,
            'flow': torch.stack(flows) if flows else (torch.zeros(0, 2, *label_maps[0].shape[1:]) if self.flows else empty),
            'flow_mask': torch.stack(masks) if masks else (torch.zeros(0, 1, *label_maps[0].shape[1:]) if self.flows else empty),
            'path': os.path.join(self.root, f'{self.phase}_label', sequence),
            'start': start,
            'step': step,
        }

    def _check_size_base(self, path: str, width: int, height: int) -> None:
        """A network that halves its input needs both sides a multiple of its size base (the aligned dataset's check)."""
        base = self.preprocess.size_base
        if width % base or height % base:
            raise DatasetError(
                f"{path}: {width}x{height} after resizing, not a multiple of {base} in both sides as the model needs; "
                f"pass a --loadSize (and frames) whose sides are multiples of {base}, or --resize_or_crop none to round them"
            )

    @staticmethod
    def _check_size(path: str, size: tuple, expected: tuple, reference: str) -> None:
        if size != expected:
            raise DatasetError(
                f"{path}: {size[0]}x{size[1]}, but {reference} is {expected[0]}x{expected[1]}; the frames of a sequence "
                f"and their maps must all have one size"
            )

    def check_contents(self) -> None:
        """Every label map's largest id is below label_nc, and every first frame holds the crop (read before training)."""
        paths = [path for sequence in self.names for path in self.labels[sequence]]
        check_label_maxima(dict(zip(paths, label_maxima(paths))), self.label_nc)
        if 'crop' in self.preprocess.resize_or_crop:
            for sequence in self.names:
                path = self.labels[sequence][0]
                width, height = size_before_crop(self.preprocess, image_header(path)[0])
                if min(width, height) < self.preprocess.fineSize:
                    raise DatasetError(
                        f"{path}: {width}x{height} after resizing is smaller than the fine size {self.preprocess.fineSize} "
                        f"crop; pass a fine size of {min(width, height)} or less"
                    )

    def __len__(self) -> int:
        """Whole batches of sequences only, as the aligned dataset (the last partial batch is dropped)."""
        return len(self.names) // self.batch_size * self.batch_size

    def name(self) -> str:
        """Dataset name for the log."""
        return 'SequenceDataset'


def sequence_dataset(opt: argparse.Namespace, n_frames: int | None = None) -> SequenceDataset:
    """The sequence dataset the family's shared options describe (--dataroot, --phase, --label_nc, --no_instance,
    --resize_or_crop, --loadSize, --fineSize, --no_flip, --seed, --batchSize), reading clips of `n_frames`."""
    is_train = bool(opt.isTrain)
    return SequenceDataset(
        opt.dataroot,
        opt.phase,
        opt.label_nc,
        n_frames,
        instances=not opt.no_instance,
        photos=True if is_train or getattr(opt, 'reads_photos', False) else None,
        flow=None,
        resize_or_crop=opt.resize_or_crop,
        load_size=opt.loadSize,
        fine_size=opt.fineSize,
        size_base=getattr(opt, 'size_base', 1),
        flip=is_train and not opt.no_flip,
        start=None if is_train else 0,
        seed=opt.seed,
        batch_size=opt.batchSize,
    )
