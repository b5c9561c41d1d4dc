"""Tensors and label maps as images: conversion to uint8 arrays, the label palettes, and saving PNGs atomically."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from util.cityscapes import COLORS as CITYSCAPES_COLORS
from util.files import atomic_write


def tensor2im(image_tensor: torch.Tensor) -> np.ndarray:
    """Convert a CHW (or 1xCxHxW) tensor in [-1, 1] with 1 or 3 channels to an HxWx3 uint8 array (truncating, as the reference)."""
    tensor = image_tensor.detach().cpu().float()
    if tensor.dim() == 4:
        if tensor.size(0) != 1:
            raise ValueError(f"tensor2im expects a batch of size 1, got shape {tuple(image_tensor.shape)}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.size(0) not in (1, 3):
        raise ValueError(f"tensor2im expects a 1- or 3-channel CHW tensor, got shape {tuple(image_tensor.shape)}")
    # The reference's conversion, in float32: scale, clip, then truncate (astype, no rounding), so a
    # reference checkpoint writes the same pixels as the reference's own test.py (0.0 -> 127.5 -> 127).
    array = np.clip((tensor.numpy() + 1.0) / 2.0 * 255.0, 0, 255).astype(np.uint8)
    array = array.transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def label_colormap(n_label: int) -> np.ndarray:
    """Return the n_label x 3 uint8 palette: Cityscapes colours for 35 labels, else the Pascal VOC palette."""
    if n_label < 0:
        raise ValueError(f"n_label must be non-negative, got {n_label}")
    if n_label == len(CITYSCAPES_COLORS):
        return np.array(CITYSCAPES_COLORS, dtype=np.uint8)
    ids = np.arange(n_label, dtype=np.int64)
    cmap = np.zeros((n_label, 3), dtype=np.int64)
    # VOC devkit bit interleaving: successive bit triplets of the id fill each
    # channel from its most significant bit down; 8 triplets cover ids < 2**24.
    for shift in range(8):
        for channel in range(3):
            cmap[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
    return cmap.astype(np.uint8)


def tensor2label(label_tensor: torch.Tensor, n_label: int) -> np.ndarray:
    """Colourise a label map (HxW, 1xHxW, or CxHxW scores/one-hot) as HxWx3 uint8; n_label 0 means an RGB image."""
    if n_label == 0:
        return tensor2im(label_tensor)
    tensor = label_tensor.detach().cpu()
    if tensor.dim() == 4:
        if tensor.size(0) != 1:
            raise ValueError(f"tensor2label expects a batch of size 1, got shape {tuple(label_tensor.shape)}")
        tensor = tensor[0]
    if tensor.dim() == 3:
        # Several channels means one-hot or per-class scores, as fed to the generator.
        tensor = tensor.argmax(dim=0) if tensor.size(0) > 1 else tensor[0]
    if tensor.dim() != 2:
        raise ValueError(f"tensor2label expects an HxW or 1xHxW label map, got shape {tuple(label_tensor.shape)}")
    if tensor.is_floating_point():
        # Label maps loaded via ToTensor()*255 carry ids as floats like 7.0000001.
        tensor = torch.round(tensor)
    ids = tensor.long().numpy()
    # An extra black row absorbs ids outside [0, n_label) instead of crashing.
    palette = np.concatenate([label_colormap(n_label), np.zeros((1, 3), dtype=np.uint8)])
    ids = np.where((ids >= 0) & (ids < n_label), ids, n_label)
    return palette[ids]


def save_image(image_numpy: np.ndarray, image_path: str) -> None:
    """Save an HxWx3 or HxW uint8 array as a lossless PNG, atomically."""
    if image_numpy.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8, got {image_numpy.dtype}")
    if image_numpy.ndim == 3 and image_numpy.shape[2] == 1:
        image_numpy = image_numpy[:, :, 0]
    if not (image_numpy.ndim == 2 or (image_numpy.ndim == 3 and image_numpy.shape[2] == 3)):
        raise ValueError(f"save_image expects HxW or HxWx3, got shape {image_numpy.shape}")
    image = Image.fromarray(image_numpy)
    # The temp name has no .png suffix, so PIL cannot infer the format from it.
    atomic_write(image_path, lambda tmp_path: image.save(tmp_path, format="PNG"))
