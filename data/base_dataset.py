"""Preprocessing (README, "Training on your own data"): the five --resize_or_crop modes, flip, and tensor conversion."""

import argparse
import random
import types

import numpy as np
import torch
from PIL import Image

from util.errors import DatasetError


def size_before_crop(opt: argparse.Namespace, size: tuple) -> tuple:
    """(width, height) of an image of `size` once --resize_or_crop has resized it, before its crop."""
    width, height = size
    if opt.resize_or_crop == 'resize_and_crop':
        return opt.loadSize, opt.loadSize
    if opt.resize_or_crop == 'scale_width_and_crop':
        return opt.loadSize, opt.loadSize * height // width
    return width, height


def get_params(opt: argparse.Namespace, size: tuple, rng: random.Random | types.ModuleType = random) -> dict:
    """Draw the crop position and flip shared by label, instance, image and feature map."""
    new_w, new_h = size_before_crop(opt, size)
    x = rng.randint(0, max(0, new_w - opt.fineSize))
    y = rng.randint(0, max(0, new_h - opt.fineSize))
    flip = rng.random() > 0.5
    return {'crop_pos': (x, y), 'flip': flip}


def _resize(img: Image.Image, size: tuple, method: int) -> Image.Image:
    """img.resize, refusing a size with an empty side (which PIL would report as a bare ValueError)."""
    if size[0] < 1 or size[1] < 1:
        raise DatasetError(f"a {img.size[0]}x{img.size[1]} image would shrink to {size[0]}x{size[1]} pixels")
    return img.resize(size, method)


def _scale_width(img: Image.Image, target_width: int, method: int) -> Image.Image:
    width, height = img.size
    if width == target_width:
        return img
    return _resize(img, (target_width, int(target_width * height / width)), method)


def _crop(img: Image.Image, pos: tuple, size: int) -> Image.Image:
    width, height = img.size
    if width < size or height < size:  # PIL would pad the crop with black photo pixels and label 0
        raise DatasetError(
            f"a {width}x{height} image is smaller than the --fineSize {size} crop (use --fineSize {min(width, height)} or less)"
        )
    x1, y1 = pos
    return img.crop((x1, y1, x1 + size, y1 + size))


def _make_power_2(img: Image.Image, base: int, method: int) -> Image.Image:
    width, height = img.size
    new_h = int(round(height / base) * base)
    new_w = int(round(width / base) * base)
    if new_h == height and new_w == width:
        return img
    return _resize(img, (new_w, new_h), method)


def transform(img: Image.Image, opt: argparse.Namespace, params: dict, method: int) -> Image.Image:
    """Resize / crop / round / flip one PIL image as --resize_or_crop says (same params for all maps)."""
    mode = opt.resize_or_crop
    if 'resize' in mode:
        img = _resize(img, (opt.loadSize, opt.loadSize), method)
    elif 'scale_width' in mode:
        img = _scale_width(img, opt.loadSize, method)
    if 'crop' in mode:
        img = _crop(img, params['crop_pos'], opt.fineSize)
    if mode == 'none':
        img = _make_power_2(img, opt.size_base, method)
    if opt.isTrain and not opt.no_flip and params['flip']:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def to_rgb(img: Image.Image, path: str) -> Image.Image:
    """A photo (or RGB input) as 8-bit RGB. PIL's convert('RGB') clips 16-bit greyscale (mode I;16) to white: those
    are scaled to 8 bits (/257); 32-bit integer and float images, whose range a file does not say, are refused."""
    if img.mode.startswith('I;16') or (img.mode == 'I' and img.format == 'PNG'):  # PNG stores 16-bit grey as mode I
        values = np.asarray(img).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DatasetError(
                f"{path}: a {img.mode} image with values {values.min():g}..{values.max():g} is not a photo; save it as 8- or 16-bit"
            )
        return Image.fromarray(np.round(values / 257).astype(np.uint8), 'L').convert('RGB')
    if img.mode in ('I', 'F'):
        raise DatasetError(
            f"{path}: a {img.mode} ({'32-bit integer' if img.mode == 'I' else 'float'}) image has no known range; save it as 8- or 16-bit"
        )
    return img.convert('RGB')


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a CxHxW float tensor normalised to [-1, 1] ((x - 0.5) / 0.5)."""
    array = np.asarray(img, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.transpose(2, 0, 1).copy())
    return tensor.div_(255.0).sub_(0.5).div_(0.5)


def map_to_tensor(img: Image.Image) -> torch.Tensor:
    """A label or instance map as a 1xHxW int32 tensor, values read losslessly (16-bit ids kept)."""
    array = np.asarray(img)
    if array.ndim != 2:
        raise ValueError(f"expected a single-channel map, got shape {array.shape}")
    return torch.from_numpy(array.astype(np.int32))[None]


def lossy_encoding(path: str, img: Image.Image) -> str | None:
    """The name of the lossy encoding an opened image file uses (JPEG, lossy WebP, JPEG 2000, JPEG in TIFF), else None."""
    if img.format in ('JPEG', 'MPO'):
        return 'JPEG'
    if img.format == 'JPEG2000':
        return 'JPEG 2000'  # lossless JPEG 2000 exists but cannot be told from the header
    if img.format == 'TIFF' and img.info.get('compression') in ('jpeg', 'tiff_jpeg'):
        return 'JPEG-compressed TIFF'
    if img.format == 'WEBP':
        with open(path, 'rb') as file:
            head = file.read(4096)
        return None if b'VP8L' in head else 'lossy WebP'  # VP8L is WebP's lossless bitstream
    return None


def check_lossless_map(path: str, img: Image.Image, what: str) -> None:
    """Refuse a label or instance map stored with lossy compression, whose noise would read as ids."""
    encoding = lossy_encoding(path, img)
    if encoding:
        raise DatasetError(
            f"{path}: this {what} is a {encoding} file; lossy compression changes the ids (its noise reads as label "
            f"values), so label and instance maps must be lossless: export it as PNG"
        )


def open_map(path: str, what: str = 'label or instance map') -> Image.Image:
    """Open a label/instance PNG as a PIL image whose nearest-neighbour resize keeps exact ids.

    16-bit PNGs open as 'I;16'; converting through numpy to 'I' (int32) keeps values up to 65535
    exactly, where torchvision's ToTensor reads 'I;16' as int16 and wraps ids above 32767.
    """
    img = Image.open(path)
    check_lossless_map(path, img, what)
    img.load()
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N'):
        return Image.fromarray(np.asarray(img).astype(np.int32))  # int32 arrays become mode 'I'
    if img.mode in ('I', 'F'):  # 32-bit maps (TIFF) may hold what an id cannot be: negative or fractional values
        values = np.asarray(img)
        bad = values[(values < 0) | (values != np.round(values))]
        if bad.size:
            raise DatasetError(
                f"{path}: {what} value {bad.flat[0]:g}: ids are whole numbers from 0 ({bad.size} pixels are not); fix the map"
            )
        if img.mode == 'F':
            return Image.fromarray(values.astype(np.int32))
    return img
