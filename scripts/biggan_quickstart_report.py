#!/usr/bin/env python
"""Figures that say whether the BigGAN quickstart worked, read from its results page's images (no model is run).

Each class row's 8 samples (images/class_NNNN_samples.png) are read as the built-in shapes are drawn: a bright shape
on a dark background. Per sample:
  * shape: its foreground (pixels whose brightest channel is above 80 of 255) against the foregrounds of freshly drawn
    real images of every class (--references per class, random place, size and shade as training draws them); the
    class of the real image it overlaps best (intersection over union) is the shape it shows;
  * colour: the mean colour of the brighter half of its foreground (a shape's edges blend into the background), as a
    hue (divided by its brightest channel, so a shade of the colour is the colour), nearest of the classes' hues.
A class "looks like its class" when at least 5 of its 8 samples show its shape and its colour; an empty foreground
shows neither.

Usage (scripts/biggan_quickstart.sh calls it):
    python scripts/biggan_quickstart_report.py --results results/biggan_quickstart/test_latest
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

import numpy as np
from PIL import Image

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from data.class_dataset import SYNTHETIC_COLOURS, SYNTHETIC_SHAPES, draw_shape  # noqa: E402

FOREGROUND = 80  # brightest channel above this (0-255): the shape (the background is at most 55, a colour at least 190)
PADDING = 2  # the page's grids: 2 px between and around the images
MAJORITY = 5  # of the 8 samples


def foreground(image: np.ndarray) -> np.ndarray:
    """H x W bool: the shape's pixels of an H x W x 3 uint8 image."""
    return image.max(axis=2) > FOREGROUND


def tiles(path: str, size: int) -> list[np.ndarray]:
    """The size x size images of one grid row."""
    grid = np.asarray(Image.open(path).convert('RGB'))
    count = (grid.shape[1] - PADDING) // (size + PADDING)
    return [grid[PADDING : PADDING + size, PADDING + i * (size + PADDING) : PADDING + i * (size + PADDING) + size] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--results', required=True, help="test.py's results folder (with index.html and images/)")
    parser.add_argument('--resolution', type=int, default=32, help='image size the run trained at')
    parser.add_argument('--references', type=int, default=300, help='real images drawn per class to compare shapes with')
    args = parser.parse_args()

    paths = sorted(glob.glob(os.path.join(args.results, 'images', 'class_*_samples.png')))
    if not paths:
        sys.exit(f"{args.results}/images: no class_*_samples.png; run test.py for a --model biggan experiment first")
    rng = np.random.default_rng(0)
    n_classes = len(paths)
    references = np.stack(
        [foreground(draw_shape(c, args.resolution, rng)) for c in range(n_classes) for _ in range(args.references)]
    ).reshape(n_classes * args.references, -1)
    reference_class = np.repeat(np.arange(n_classes), args.references)
    hues = SYNTHETIC_COLOURS[:n_classes] / SYNTHETIC_COLOURS[:n_classes].max(1, keepdims=True)
    recognised = []
    for path in paths:
        cls = int(re.search(r'class_(\d+)_samples\.png$', path).group(1))  # type: ignore[union-attr]
        shape_right = colour_right = both = 0
        for image in tiles(path, args.resolution):
            mask = foreground(image)
            if not mask.any():
                continue
            flat = mask.reshape(1, -1)
            union = np.logical_or(references, flat).sum(1)
            iou = np.logical_and(references, flat).sum(1) / np.maximum(union, 1)
            shape_ok = reference_class[int(iou.argmax())] == cls
            pixels = image[mask].astype(np.float32)
            brightness = pixels.max(1)
            mean = pixels[brightness >= np.median(brightness)].mean(0)
            colour_ok = int(np.linalg.norm(hues - mean / mean.max(), axis=1).argmin()) == cls
            shape_right += shape_ok
            colour_right += colour_ok
            both += shape_ok and colour_ok
        name = SYNTHETIC_SHAPES[cls] if cls < len(SYNTHETIC_SHAPES) else str(cls)
        print(f"class {cls} ({name}): of 8 samples, shape right {shape_right}, colour right {colour_right}, both {both}")
        if both >= MAJORITY:
            recognised.append(name)
    print(f"classes whose samples look like their class (shape and colour right in {MAJORITY}+ of 8): "
          f"{len(recognised)}/{n_classes} ({', '.join(recognised) or 'none'})")  # fmt: skip


if __name__ == '__main__':
    main()
