"""The aligned dataset of SPEC section 1: label (or RGB A), instance map, photo and feature map."""
import argparse
import os
import random

import torch
from PIL import Image

from .base_dataset import DatasetError, get_params, image_to_tensor, map_to_tensor, open_map, size_base, transform
from .image_folder import make_dataset


class AlignedDataset(torch.utils.data.Dataset):
    """Pairs `{phase}_label|_A`, `{phase}_inst`, `{phase}_img|_B` and `{phase}_feat` by sorted order."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.root = opt.dataroot
        rgb_input = opt.label_nc == 0
        self.A_paths = self._folder(opt.phase + ('_A' if rgb_input else '_label'), 'input label maps' if not rgb_input else 'input images (--label_nc 0)')
        self.B_paths = None
        if opt.isTrain or getattr(opt, 'use_encoded_image', False):
            self.B_paths = self._folder(opt.phase + ('_B' if rgb_input else '_img'), 'real photos')
        self.inst_paths = None
        if not opt.no_instance:
            self.inst_paths = self._folder(opt.phase + '_inst', 'instance maps (or pass --no_instance)')
        self.feat_paths = None
        if getattr(opt, 'load_features', False):
            self.feat_paths = self._folder(opt.phase + '_feat', 'precomputed feature maps (run precompute_feature_maps.py first)')
        self._check_counts()
        self.dataset_size = len(self.A_paths)

    def _folder(self, name: str, what: str) -> list:
        directory = os.path.join(self.root, name)
        if not os.path.isdir(directory):
            raise DatasetError(f"{directory}: folder of {what} not found; check --dataroot {self.root} and --phase {self.opt.phase}")
        paths = make_dataset(directory)
        if not paths:
            raise DatasetError(f"{directory}: no images found ({what})")
        return paths

    def _check_counts(self) -> None:
        counts = {os.path.dirname(paths[0]): len(paths)
                  for paths in (self.A_paths, self.B_paths, self.inst_paths, self.feat_paths) if paths}
        if len(set(counts.values())) > 1:
            listing = ', '.join(f'{folder}: {count}' for folder, count in counts.items())
            raise DatasetError(f"folders hold different numbers of images ({listing}); every label map needs its instance map and photo")

    def _open(self, path: str, as_map: bool) -> Image.Image:
        try:
            if as_map:
                return open_map(path)
            img = Image.open(path)
            img.load()
            return img
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read image ({error}); re-export or remove the file") from None

    def _label_tensor(self, img: Image.Image, path: str) -> torch.Tensor:
        if img.mode in ('RGB', 'RGBA'):
            raise DatasetError(f"{path}: label map has colour channels (mode {img.mode}); use the labelIds PNGs (not gtFine_color) or pass --label_nc 0 for RGB inputs")
        label = map_to_tensor(img)
        max_label = int(label.max())
        if max_label >= self.opt.label_nc:
            raise DatasetError(f"{path}: label value {max_label} >= --label_nc {self.opt.label_nc}; pass --label_nc {max_label + 1} or fix the label map")
        return label

    def _check_size(self, tensor: torch.Tensor, path: str) -> None:
        base = size_base(self.opt)
        height, width = tensor.shape[-2:]
        if height % base or width % base or height == 0 or width == 0:
            raise DatasetError(
                f"{path}: size {width}x{height} after --resize_or_crop {self.opt.resize_or_crop} --loadSize {self.opt.loadSize} "
                f"--fineSize {self.opt.fineSize} is not a positive multiple of {base}, which --netG {self.opt.netG} needs; "
                f"use --resize_or_crop none (rounds sizes) or sizes that are multiples of {base}")

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
        if opt.label_nc == 0:
            A_tensor = image_to_tensor(transform(A.convert('RGB'), opt, params, Image.BICUBIC))
        else:
            A_tensor = self._label_tensor(transform(A, opt, params, Image.NEAREST), A_path)
        self._check_size(A_tensor, A_path)

        B_tensor = inst_tensor = feat_tensor = torch.zeros(0)
        if self.B_paths is not None:
            B_path = self.B_paths[index]
            B = self._open(B_path, as_map=False).convert('RGB')
            if B.size != A.size:
                raise DatasetError(f"{B_path}: photo size {B.size[0]}x{B.size[1]} differs from label map {A_path} ({A.size[0]}x{A.size[1]}); they must be aligned")
            B_tensor = image_to_tensor(transform(B, opt, params, Image.BICUBIC))
        if self.inst_paths is not None:
            inst_path = self.inst_paths[index]
            inst = self._open(inst_path, as_map=True)
            if inst.size != A.size:
                raise DatasetError(f"{inst_path}: instance map size {inst.size[0]}x{inst.size[1]} differs from label map {A_path} ({A.size[0]}x{A.size[1]})")
            inst_tensor = map_to_tensor(transform(inst, opt, params, Image.NEAREST))
        if self.feat_paths is not None:
            feat_path = self.feat_paths[index]
            feat = self._open(feat_path, as_map=False).convert('RGB')
            feat_tensor = image_to_tensor(transform(feat, opt, params, Image.NEAREST))
            if feat_tensor.shape[-2:] != A_tensor.shape[-2:]:
                raise DatasetError(
                    f"{feat_path}: feature map is {feat_tensor.shape[-1]}x{feat_tensor.shape[-2]} after preprocessing but the label map "
                    f"{A_path} is {A_tensor.shape[-1]}x{A_tensor.shape[-2]}; precompute_feature_maps.py writes maps at twice the "
                    f"--loadSize it ran with: re-run it with matching sizes")
        return {'label': A_tensor, 'inst': inst_tensor, 'image': B_tensor, 'feat': feat_tensor, 'path': A_path}

    def __len__(self) -> int:
        """Whole batches only, as the reference (the last partial batch is dropped)."""
        return len(self.A_paths) // self.opt.batchSize * self.opt.batchSize

    def name(self) -> str:
        """Dataset name, as the reference reports it."""
        return 'AlignedDataset'

