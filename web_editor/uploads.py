"""Uploaded label and instance PNGs, checked by the dataset's own rules before they reach the editor."""

import argparse
import io
import os
import tempfile

import numpy as np
from PIL import Image

from data.aligned_dataset import AlignedDataset
from data.base_dataset import DatasetError
from options.base_options import replace

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
INSTANCE_MODES = ('L', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N')


def display_name(name: str) -> str:
    """The base name of an uploaded file, printable and short, for messages."""
    base = os.path.basename(str(name).replace('\\', '/')) or 'upload'
    return ''.join(char if char.isprintable() else '?' for char in base)[:80]


def _check_png(data: bytes, name: str, what: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """The header of an uploaded PNG: the file must be a PNG within the size limits (a small PNG can hold a
    huge blank map, whose decoding would exhaust memory: the size is checked before any decoding)."""
    if len(data) > max_bytes:
        raise DatasetError(
            f"{name}: the {what} is {len(data) / 2**20:.1f} MB, above the {max_bytes / 2**20:g} MB upload limit (--max_upload_mb)"
        )
    if not data.startswith(PNG_SIGNATURE):
        raise DatasetError(
            f"{name}: the {what} is not a PNG; label and instance maps must be lossless PNGs of ids "
            f"(e.g. Cityscapes *_gtFine_labelIds.png and *_gtFine_instanceIds.png)"
        )
    try:
        header = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # PIL's own guard, for sizes far above any limit of ours
        raise DatasetError(f"{name}: the {what} has far more than the editor's limit of {max_pixels} pixels (--max_pixels)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{name}: cannot read the {what} ({error}); re-export it as a PNG") from None
    width, height = header.size
    if width * height > max_pixels:
        raise DatasetError(f"{name}: the {what} is {width}x{height}, above the editor's limit of {max_pixels} pixels (--max_pixels)")
    return header


def resized_size(opt: argparse.Namespace, size: tuple) -> tuple:
    """The (width, height) that the dataset's --resize_or_crop makes of a map of `size` (data/base_dataset.transform's rules)."""
    width, height = size
    mode = opt.resize_or_crop
    if 'resize' in mode:
        width, height = opt.loadSize, opt.loadSize
    elif 'scale_width' in mode and width != opt.loadSize:
        width, height = opt.loadSize, int(opt.loadSize * height / width)
    if 'crop' in mode and (width > opt.fineSize or height > opt.fineSize):
        width, height = opt.fineSize, opt.fineSize
    if mode == 'none':
        width, height = int(round(width / opt.size_base) * opt.size_base), int(round(height / opt.size_base) * opt.size_base)
    return width, height


def load_upload(
    opt: argparse.Namespace,
    label_name: str,
    label_data: bytes,
    inst_name: str | None,
    inst_data: bytes | None,
    max_bytes: int,
    max_pixels: int,
) -> tuple:
    """(label, inst or None) as HxW arrays after the dataset's preprocessing, or DatasetError with a message naming the file.

    The files go through AlignedDataset itself, from a temporary dataroot, so an upload passes exactly
    the checks (and resizing) a test.py input would: ids not colours, values below --label_nc, paired
    sizes, sizes the generator can take.
    """
    label_name = display_name(label_name)
    header = _check_png(label_data, label_name, 'label map', max_bytes, max_pixels)
    width, height = resized_size(opt, header.size)
    if width * height > max_pixels:  # what the document would be: a small tall map is resized to a huge one
        raise DatasetError(
            f"{label_name}: the {header.size[0]}x{header.size[1]} label map becomes {width}x{height} at --loadSize {opt.loadSize} "
            f"(--resize_or_crop {opt.resize_or_crop}), above the editor's limit of {max_pixels} pixels (--max_pixels)"
        )
    if inst_data is not None:
        inst_name = display_name(inst_name or 'instances.png')
        inst_header = _check_png(inst_data, inst_name, 'instance map', max_bytes, max_pixels)
        if inst_header.mode not in INSTANCE_MODES:
            raise DatasetError(
                f"{inst_name}: the instance map has mode {inst_header.mode}; it must be a single-channel PNG of "
                f"instance ids, 16-bit for object ids >= 1000 (Cityscapes *_gtFine_instanceIds.png)"
            )
    with tempfile.TemporaryDirectory(prefix='pix2pixhd-upload-') as root:
        files = {
            os.path.join(root, f'{opt.phase}_label', 'upload.png'): (label_data, f'{label_name} (label map)'),
            os.path.join(root, f'{opt.phase}_inst', 'upload.png'): (inst_data, f'{inst_name} (instance map)'),
        }
        for path, (data, _) in files.items():
            if data is not None:
                os.makedirs(os.path.dirname(path))
                with open(path, 'wb') as handle:
                    handle.write(data)
        try:
            sample = AlignedDataset(replace(opt, dataroot=root, no_instance=inst_data is None, load_features=False))[0]
        except (DatasetError, ValueError) as error:  # ValueError: a label map with several channels
            # The dataset names its (temporary) files: name the user's instead.
            message = str(error)
            for path, (_, name) in files.items():
                message = message.replace(path, name)
            raise DatasetError(message if message.startswith((label_name, str(inst_name))) else f"{label_name}: {message}") from None
    label = np.ascontiguousarray(sample['label'][0].numpy())
    return label, (np.ascontiguousarray(sample['inst'][0].numpy()) if inst_data is not None else None)
