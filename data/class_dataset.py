"""Class-labelled images for class-conditional generation (BigGAN): images in one folder per class (the ImageFolder
layout: CIFAR-10 or ImageNet unpacked that way), a built-in synthetic set of shapes drawn per class (no files, for the
quickstart and the tests), and the class ids test time samples. Samples are {'image', 'label' (the class id), 'path'}."""

import argparse
import os

import numpy as np
import torch
from PIL import Image

from util.errors import DatasetError

from .image_folder import is_image_file

# The synthetic classes: a shape in a colour each, on a dark background (both differ between classes, so a sample
# shows its class at a glance even at 32 x 32).
SYNTHETIC_SHAPES = ('disc', 'square', 'triangle', 'ring', 'hstripes', 'vstripes', 'cross', 'diamond', 'checker', 'frame')
SYNTHETIC_COLOURS = np.array(
    [[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 220, 40], [220, 60, 220],
     [40, 220, 220], [250, 140, 20], [245, 245, 245], [150, 80, 230], [140, 200, 90]],
    dtype=np.float32,
)  # fmt: skip
SYNTHETIC_CLASSES = len(SYNTHETIC_SHAPES)


def class_folders(root: str) -> list[str]:
    """The sorted names of the folders under `root` that hold images (ImageFolder's classes: ids in this order)."""
    if not os.path.isdir(root):
        raise DatasetError(
            f"--dataroot {root}: no such folder; give a folder with one subfolder of images per class, or pass --dataset synthetic"
        )
    names = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))
    return [name for name in names if any(is_image_file(f) for _, _, files in os.walk(os.path.join(root, name)) for f in files)]


def count_class_folders(root: str) -> int:
    """How many classes --dataroot has (0 when it is missing: validation then names the fix)."""
    try:
        return len(class_folders(root))
    except DatasetError:
        return 0


def to_square_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """The centre square of the long edge's crop (the authors' CenterCropLongEdge), resized to size x size, in [-1, 1]."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.convert('RGB').crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(square, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()


class ClassFolderDataset(torch.utils.data.Dataset):
    """--dataroot/<class>/**/<image>: class ids in sorted folder order, images centre-cropped and resized to --resolution."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.root = opt.dataroot
        self.resolution = opt.resolution
        self.classes = class_folders(opt.dataroot)
        if len(self.classes) != opt.n_classes:
            raise DatasetError(
                f"--dataroot {opt.dataroot} has {len(self.classes)} class folders, --n_classes says {opt.n_classes}; "
                f"pass --n_classes {len(self.classes)} (or 0: as many as the folders)"
            )
        self.samples = [
            (os.path.join(folder, name), index)
            for index, cls in enumerate(self.classes)
            for folder, _, names in sorted(os.walk(os.path.join(opt.dataroot, cls)))
            for name in sorted(names)
            if is_image_file(name)
        ]
        self.dataset_size = len(self.samples)

    def __len__(self) -> int:
        """Samples per epoch."""
        return self.dataset_size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """{'image' in [-1, 1], 'label' (class id), 'path'} of sample `key` (an index, or the sampler's (epoch, index))."""
        index = key[1] if isinstance(key, tuple) else key  # the training sampler gives (epoch, index)
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                tensor = to_square_tensor(image, self.resolution)
        except OSError as error:
            raise DatasetError(f"{path}: not a readable image ({error}); remove or replace it") from None
        return {'image': tensor, 'label': torch.tensor(label), 'path': path}

    def name(self) -> str:
        """What the log calls the dataset."""
        return 'ClassFolderDataset'

    def check_contents(self) -> None:
        """Every file opens as an image."""
        for path, _ in self.samples:
            try:
                with Image.open(path) as image:
                    image.verify()
            except OSError as error:
                raise DatasetError(f"{path}: not a readable image ({error}); remove or replace it") from None


def draw_shape(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size x 3 uint8 image of class `cls`: its shape in its colour at a random place, scale and shade."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # Large and near the centre: at 32 x 32 the checker's cells and the cross's arms stay several pixels wide, which
    # a few CPU minutes of BigGAN can learn (docs/BIGGAN.md, the quickstart's runs).
    cy, cx = rng.uniform(0.42, 0.58, 2)
    radius = rng.uniform(0.3, 0.38)
    dy, dx = (yy - cy) / radius, (xx - cx) / radius
    inside = (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
    shape = SYNTHETIC_SHAPES[cls]
    if shape == 'disc':
        mask = dx**2 + dy**2 <= 1
    elif shape == 'square':
        mask = inside
    elif shape == 'triangle':
        mask = (dy <= 1) & (dy >= -1) & (np.abs(dx) <= (dy + 1) / 2)
    elif shape == 'ring':
        mask = (dx**2 + dy**2 <= 1) & (dx**2 + dy**2 >= 0.4)
    elif shape == 'hstripes':
        mask = inside & (np.floor((dy + 1) * 2.5) % 2 == 0)
    elif shape == 'vstripes':
        mask = inside & (np.floor((dx + 1) * 2.5) % 2 == 0)
    elif shape == 'cross':
        mask = inside & ((np.abs(dx) <= 0.3) | (np.abs(dy) <= 0.3))
    elif shape == 'diamond':
        mask = np.abs(dx) + np.abs(dy) <= 1
    elif shape == 'checker':
        mask = inside & ((np.floor((dx + 1) * 2) + np.floor((dy + 1) * 2)) % 2 == 0)
    else:  # frame
        mask = inside & ((np.abs(dx) >= 0.6) | (np.abs(dy) >= 0.6))
    background = np.array([25.0, 25.0, 35.0]) + rng.uniform(0, 20)
    colour = np.clip(SYNTHETIC_COLOURS[cls] * rng.uniform(0.8, 1.0), 0, 255)
    image = np.where(mask[..., None], colour, background)
    return image.astype(np.uint8)


class SyntheticClassDataset(torch.utils.data.Dataset):
    """--synthetic_samples images per epoch, sample i of class i % n_classes, drawn from (epoch, i): no files."""

    def __init__(self, opt: argparse.Namespace) -> None:
        if opt.n_classes > SYNTHETIC_CLASSES:
            raise DatasetError(
                f"--dataset synthetic has {SYNTHETIC_CLASSES} classes, --n_classes says {opt.n_classes}; "
                f"pass --n_classes {SYNTHETIC_CLASSES} or fewer"
            )
        self.n_classes = opt.n_classes
        self.resolution = opt.resolution
        self.dataset_size = opt.synthetic_samples

    def __len__(self) -> int:
        """Samples per epoch."""
        return self.dataset_size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """{'image', 'label', 'path'} of sample `key`, drawn afresh from (epoch, index)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        cls = index % self.n_classes
        image = draw_shape(cls, self.resolution, np.random.default_rng([epoch, index]))
        tensor = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()
        return {'image': tensor, 'label': torch.tensor(cls), 'path': f'{SYNTHETIC_SHAPES[cls]}_{index:06d}.png'}

    def name(self) -> str:
        """What the log calls the dataset."""
        return 'SyntheticClassDataset'

    def check_contents(self) -> None:
        """Drawn, not read: nothing to check."""


class ClassIdsDataset(torch.utils.data.Dataset):
    """Test time: sample c is class c (one results-page row per class), nothing read."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.dataset_size = opt.n_classes

    def __len__(self) -> int:
        """Samples per epoch."""
        return self.dataset_size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """{'label': class `key`, 'path': its page row's name}."""
        index = key[1] if isinstance(key, tuple) else key
        return {'label': torch.tensor(index), 'path': f'class_{index:04d}'}

    def name(self) -> str:
        """What the log calls the dataset."""
        return 'ClassIdsDataset'

    def check_contents(self) -> None:
        """Nothing read: nothing to check."""
