"""Listing image files in a folder."""

import os

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff', '.webp')


def is_image_file(filename: str) -> bool:
    """True for the image extensions the datasets read."""
    return filename.lower().endswith(IMG_EXTENSIONS)


def make_dataset(directory: str) -> list:
    """Sorted paths of every image under `directory` (recursively)."""
    images: list[str] = []
    for root, _, fnames in sorted(os.walk(directory)):
        images.extend(os.path.join(root, fname) for fname in fnames if is_image_file(fname))
    return sorted(images)
