"""The aligned dataset (README, "Training on your own data"): label (or RGB A), instance map, photo and feature map."""

import argparse
import json
import os
import random
import re

import numpy as np
import torch
from PIL import Image

from util.records import write_text

from .base_dataset import (
    DatasetError,
    check_lossless_map,
    get_params,
    image_to_tensor,
    map_to_tensor,
    open_map,
    size_before_crop,
    to_rgb,
    transform,
)
from .image_folder import make_dataset


class AlignedDataset(torch.utils.data.Dataset):
    """Pairs `{phase}_label|_A`, `{phase}_inst`, `{phase}_img|_B` and `{phase}_feat` by sorted order."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.root = opt.dataroot
        rgb_input = opt.label_nc == 0
        self.A_paths = self._folder(
            opt.phase + ('_A' if rgb_input else '_label'), 'input label maps' if not rgb_input else 'input images (--label_nc 0)'
        )
        self.label_sizes = (
            self._check_maps(self.A_paths, 'label map') if not rgb_input else [image_header(path)[0] for path in self.A_paths]
        )
        self.label_keys = [pair_key(path) for path in self.A_paths]
        photo_folder = opt.phase + ('_B' if rgb_input else '_img')
        photos_required = opt.isTrain or getattr(opt, 'reads_photos', False)
        self.B_paths = self._paired_folder(photo_folder, 'real photos', 'photo') if photos_required else None
        self.inst_paths = None
        if not opt.no_instance:
            self.inst_paths = self._paired_folder(opt.phase + '_inst', 'instance maps (or pass --no_instance)', 'instance map')
            self._check_maps(self.inst_paths, 'instance map')
        self.feat_paths = None
        if getattr(opt, 'load_features', False):
            self.feat_paths = self._paired_folder(opt.phase + '_feat', 'precomputed feature maps (run precompute_feature_maps.py first)')
            made_by = check_feature_set(os.path.join(self.root, opt.phase + '_feat'), self.feat_paths)
            print(f"feature maps of {made_by.get('experiment')} (--which_epoch {made_by.get('which_epoch')})")
        if not photos_required and os.path.isdir(os.path.join(self.root, photo_folder)):
            # At test time the photos are optional: shown beside the results when they pair by name and size.
            try:
                self.B_paths = self._paired_folder(photo_folder, 'real photos', 'photo')
            except DatasetError as error:
                print(f'Not using the real photos: {error}')
        self.dataset_size = len(self.A_paths)

    def _folder(self, name: str, what: str) -> list:
        directory = os.path.join(self.root, name)
        if not os.path.isdir(directory):
            rgb_inputs = os.path.join(self.root, f'{self.opt.phase}_A')
            if name == f'{self.opt.phase}_label' and os.path.isdir(rgb_inputs):
                raise DatasetError(
                    f"{directory}: folder of {what} not found, but {rgb_inputs} is there: this looks like "
                    f"RGB input (_A images to _B images); pass --label_nc 0 --no_instance"
                )
            raise DatasetError(f"{directory}: folder of {what} not found; check --dataroot {self.root} and --phase {self.opt.phase}")
        paths = make_dataset(directory)
        if not paths:
            raise DatasetError(f"{directory}: no images found ({what})")
        return paths

    def _check_maps(self, paths: list, what: str) -> list:
        """Label and instance maps must hold one channel of ids, not colours or alpha; returns their sizes (headers only)."""
        sizes = []
        for path in paths:
            size, mode = image_header(path, what)
            if what == 'label map' and mode in ('RGB', 'RGBA'):
                raise DatasetError(
                    f"{path}: label map has colour channels (mode {mode}); use the labelIds PNGs "
                    f"(not gtFine_color) or pass --label_nc 0 for RGB inputs"
                )
            if Image.getmodebands(mode) != 1:
                raise DatasetError(
                    f"{path}: {what} has {Image.getmodebands(mode)} channels (mode {mode}); expected one channel of ids "
                    f"(mode L, P or 16-bit I;16, like Cityscapes' labelIds/instanceIds PNGs): re-save it as a "
                    f"single-channel PNG without colour or alpha"
                )
            sizes.append(size)
        return sizes

    def _paired_folder(self, name: str, what: str, size_what: str = '') -> list:
        """A folder whose files pair with the label maps by name (and, with size_what, by size: headers only)."""
        paths = self._folder(name, what)
        if [pair_key(path) for path in paths] != self.label_keys:
            raise DatasetError(pairing_message(os.path.dirname(self.A_paths[0]), self.A_paths, paths))
        if size_what:
            for path, label_path, label_size in zip(paths, self.A_paths, self.label_sizes):
                size, _ = image_header(path)
                if size != label_size:
                    raise DatasetError(
                        f"{path}: {size_what} size {size[0]}x{size[1]} differs from label map {label_path} "
                        f"({label_size[0]}x{label_size[1]}); they must be aligned"
                    )
        return paths

    def _open(self, path: str, as_map: bool) -> Image.Image:
        try:
            if as_map:
                return open_map(path)
            img = Image.open(path)
            img.load()
            return img
        except DatasetError:
            raise
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read image ({error}); re-export or remove the file") from None

    def _label_tensor(self, img: Image.Image, path: str) -> torch.Tensor:
        label = map_to_tensor(img)
        max_label = int(label.max())
        if max_label >= self.opt.label_nc:
            raise DatasetError(
                f"{path}: label value {max_label} >= --label_nc {self.opt.label_nc}; this file needs --label_nc {max_label + 1} "
                f"or more, other label maps may need more: python scripts/check_dataset.py --dataroot {self.root} "
                f"--phase {self.opt.phase} --label_nc {self.opt.label_nc} names the --label_nc that covers the whole dataset"
            )
        return label

    def _check_size(self, tensor: torch.Tensor, path: str) -> None:
        base = self.opt.size_base
        height, width = tensor.shape[-2:]
        if height % base or width % base or height == 0 or width == 0:
            raise DatasetError(
                f"{path}: size {width}x{height} after --resize_or_crop {self.opt.resize_or_crop} --loadSize {self.opt.loadSize} "
                f"--fineSize {self.opt.fineSize} is not a positive multiple of {base}, which --netG {self.opt.netG} needs; "
                f"use --resize_or_crop none (rounds sizes) or sizes that are multiples of {base}"
            )

    def __getitem__(self, key) -> dict:
        """One sample: label (1xHxW int32 ids, or 3xHxW image), inst, image, feat (empty when absent), path.

        `key` is an index, or `(epoch, index)` from ResumableSampler: with --seed the crop and flip
        then depend only on (seed, epoch, index), which makes resumed runs exact.
        """
        opt = self.opt
        epoch, index = key if isinstance(key, tuple) else (None, key)
        rng = random.Random(f'{opt.seed}:{epoch}:{index}') if opt.seed is not None and epoch is not None else random
        A_path = self.A_paths[index]
        A = self._open(A_path, as_map=opt.label_nc != 0)
        params = get_params(opt, A.size, rng)
        rgb_input = opt.label_nc == 0
        try:
            A = transform(
                to_rgb(A, A_path) if rgb_input else A, opt, params, Image.Resampling.BICUBIC if rgb_input else Image.Resampling.NEAREST
            )
        except DatasetError as error:
            # The other maps have the label map's size, so the label map is the one that shrinks to nothing first.
            raise DatasetError(
                f"{A_path}: {error} under --resize_or_crop {opt.resize_or_crop} --loadSize {opt.loadSize} "
                f"(sides rounded to multiples of {opt.size_base} with 'none'); use larger images, a larger "
                f"--loadSize or another --resize_or_crop"
            ) from None
        A_tensor = image_to_tensor(A) if rgb_input else self._label_tensor(A, A_path)
        self._check_size(A_tensor, A_path)

        B_tensor = inst_tensor = feat_tensor = torch.zeros(0)
        if self.B_paths is not None:
            B_path = self.B_paths[index]
            B = to_rgb(self._open(B_path, as_map=False), B_path)
            B_tensor = image_to_tensor(transform(B, opt, params, Image.Resampling.BICUBIC))
        if self.inst_paths is not None:
            inst_path = self.inst_paths[index]
            inst = self._open(inst_path, as_map=True)
            inst_tensor = map_to_tensor(transform(inst, opt, params, Image.Resampling.NEAREST))
        if self.feat_paths is not None:
            feat_path = self.feat_paths[index]
            feat = to_rgb(self._open(feat_path, as_map=False), feat_path)
            feat_tensor = image_to_tensor(transform(feat, opt, params, Image.Resampling.NEAREST))
            if feat_tensor.shape[-2:] != A_tensor.shape[-2:]:
                raise DatasetError(
                    f"{feat_path}: feature map is {feat_tensor.shape[-1]}x{feat_tensor.shape[-2]} after preprocessing but the label map "
                    f"{A_path} is {A_tensor.shape[-1]}x{A_tensor.shape[-2]}; precompute_feature_maps.py writes maps at twice the "
                    f"--loadSize it ran with: re-run it with matching sizes"
                )
        return {'label': A_tensor, 'inst': inst_tensor, 'image': B_tensor, 'feat': feat_tensor, 'path': A_path}

    def check_contents(self) -> None:
        """Every label map's largest id is below --label_nc: train.py asks before it writes anything, so a wrong
        --label_nc is refused at the start and not at the first bad file of some epoch."""
        if self.opt.label_nc != 0:
            check_label_maxima(dict(zip(self.A_paths, label_maxima(self.A_paths))), self.opt.label_nc)
        if 'crop' in self.opt.resize_or_crop:  # a crop larger than the image would be padded with black and label 0
            for path, size in zip(self.A_paths, self.label_sizes):  # the headers the constructor read
                width, height = size_before_crop(self.opt, size)
                if min(width, height) < self.opt.fineSize:
                    raise DatasetError(
                        f"{path}: {width}x{height} under --resize_or_crop {self.opt.resize_or_crop} (--loadSize {self.opt.loadSize}) "
                        f"is smaller than the --fineSize {self.opt.fineSize} crop; pass --fineSize {min(width, height)} or less"
                    )

    def __len__(self) -> int:
        """Whole batches only, as the reference (the last partial batch is dropped)."""
        return len(self.A_paths) // self.opt.batchSize * self.opt.batchSize

    def name(self) -> str:
        """Dataset name, as the reference reports it."""
        return 'AlignedDataset'


# Cityscapes files of one frame share "city_seq_frame" (e.g. aachen_000000_000019_gtFine_labelIds.png
# and aachen_000000_000019_leftImg8bit.png); other datasets pair files with equal stems.
CITYSCAPES_PREFIX = re.compile(r'^([A-Za-z]+_\d{6}_\d{6})_')


def pair_key(path: str) -> str:
    """The part of a file name that must agree across label/instance/photo/feature folders."""
    name = os.path.basename(path)
    match = CITYSCAPES_PREFIX.match(name)
    return match.group(1) if match else os.path.splitext(name)[0]


def pairing_message(label_dir: str, label_paths: list, other_paths: list) -> str:
    """Which files of a folder have no partner in the label folder and vice versa (first few, with counts)."""
    other_dir = os.path.dirname(other_paths[0])
    label_keys = {pair_key(path): path for path in label_paths}
    other_keys = {pair_key(path): path for path in other_paths}
    unmatched_labels = [os.path.basename(label_keys[key]) for key in sorted(set(label_keys) - set(other_keys))]
    unmatched_others = [os.path.basename(other_keys[key]) for key in sorted(set(other_keys) - set(label_keys))]
    parts = []
    for count_of, names, where in (
        (len(unmatched_labels), unmatched_labels, f'have no partner in {other_dir}'),
        (len(unmatched_others), unmatched_others, f'have no label map in {label_dir}'),
    ):
        if count_of:
            parts.append(f"{count_of} file(s) {where} (e.g. {', '.join(names[:3])})")
    if not parts:
        parts.append('names repeat, so sorted order does not pair them')
    return (
        f"{other_dir} ({len(other_paths)} files) does not pair by name with {label_dir} ({len(label_paths)} files): "
        f"{'; '.join(parts)}; files pair by the Cityscapes city_seq_frame prefix, else by equal names"
    )


# The record precompute_feature_maps.py writes into the folder of a complete set of maps, last: which model made them
# and which maps the set holds.
FEATURE_SET_FILE = 'feature_maps.json'


def check_feature_set(folder: str, paths: list) -> dict:
    """The record of the precomputed feature maps in `folder` (`paths`: the maps found there); DatasetError for a
    folder without one (an interrupted run, another program's maps) or holding maps it does not list (two sets mixed)."""
    record_path = os.path.join(folder, FEATURE_SET_FILE)
    fix = 'run precompute_feature_maps.py again'
    try:
        with open(record_path) as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise DatasetError(
            f"{folder}: no {FEATURE_SET_FILE}, so not one complete set written by precompute_feature_maps.py (an interrupted "
            f"run, or another program's maps); {fix}"
        ) from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{record_path}: unreadable ({error}); {fix}") from None
    listed = record.get('maps') if isinstance(record, dict) else None
    names = sorted(os.path.basename(path) for path in paths)
    if not isinstance(listed, list) or sorted(listed) != names:
        unlisted = sorted(set(names) - set(listed or []))
        missing = sorted(set(listed or []) - set(names))
        raise DatasetError(
            f"{folder}: the maps are not the set {FEATURE_SET_FILE} records ({len(unlisted)} not in it, e.g. "
            f"{unlisted[:1]}; {len(missing)} of it missing, e.g. {missing[:1]}): maps of two runs mixed; {fix}"
        )
    return record


def image_header(path: str, lossless_what: str = '') -> tuple:
    """(size, mode) from an image header, without decoding pixels; with lossless_what, a lossy file is refused as that map."""
    try:
        img = Image.open(path)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read image ({error}); re-export or remove the file") from None
    with img:
        if lossless_what:
            check_lossless_map(path, img, lossless_what)
        return img.size, img.mode


def check_label_maxima(maxima: dict, label_nc: int) -> None:
    """{label map: its largest id} for a whole dataset: DatasetError naming the first map at or above --label_nc, how
    many there are and the --label_nc that covers them all."""
    too_large = {path: value for path, value in maxima.items() if value >= label_nc}
    if too_large:
        first_path, first_value = next(iter(too_large.items()))
        largest = max(too_large.values())
        raise DatasetError(
            f"{first_path}: label value {first_value} >= --label_nc {label_nc}; {len(too_large)} of "
            f"{len(maxima)} label maps hold values >= {label_nc}, the largest {largest}: "
            f"pass --label_nc {largest + 1} to cover the whole dataset, or fix those label maps"
        )


def label_maxima(paths: list) -> list:
    """The largest id of each label map, decoded once: a cache ($PIX2PIXHD_CACHE, default ~/.cache/pix2pixhd) keyed by
    path, size and modification time keeps later starts instant (Cityscapes' 2975 maps take ~40 s of CPU to decode)."""
    cache_dir = os.environ.get('PIX2PIXHD_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'pix2pixhd')
    # v2: entries are made through open_map's id checks (negative or fractional ids refused); v1's were not.
    cache_path = os.path.join(cache_dir, 'label_maxima.v2.json')
    try:
        with open(cache_path) as file:
            cache = json.load(file)
    except (OSError, ValueError):
        cache = {}
    maxima, changed = [], False
    for path in paths:
        status = os.stat(path)
        key = os.path.abspath(path)
        stamp = [status.st_size, status.st_mtime_ns]
        entry = cache.get(key)
        if not (isinstance(entry, list) and entry[:2] == stamp):
            entry = [*stamp, int(np.asarray(open_map(path, 'label map')).max())]
            cache[key] = entry
            changed = True
        maxima.append(int(entry[2]))
    if changed:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            write_text(cache_path, json.dumps(cache))
        except OSError:
            pass  # a read-only home only costs the next start the same decoding
    return maxima
