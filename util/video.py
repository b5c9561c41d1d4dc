"""Videos for the results pages: an MP4 (H.264 through PyAV, the `video` install group) that browsers play inline,
or, where PyAV is not installed, an animated WebP (Pillow), which browsers play in an <img> tag."""

import importlib.util

import numpy as np
from PIL import Image

from .files import atomic_write

FPS = 10  # the page's frame rate (a label-map sequence has no rate of its own); Cityscapes was filmed at 17 fps


def has_mp4_encoder() -> bool:
    """True where PyAV (with its bundled H.264 encoder) is installed."""
    return importlib.util.find_spec('av') is not None


def _write_mp4(frames: np.ndarray, path: str, fps: int) -> None:
    """H.264 in yuv420p (what browsers play), odd sides padded by one edge pixel (4:2:0 needs even sides)."""
    import av

    height, width = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode='edge')

    def write(tmp_path: str) -> None:
        with av.open(tmp_path, mode='w', format='mp4') as container:
            stream = container.add_stream('libx264', rate=fps)
            stream.width, stream.height = padded.shape[2], padded.shape[1]
            stream.pix_fmt = 'yuv420p'
            stream.options = {'crf': '18'}  # visually lossless: the page compares videos
            for frame in padded:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    atomic_write(path, write)


def _write_webp(frames: np.ndarray, path: str, fps: int) -> None:
    """An animated, looping, lossless WebP."""
    images = [Image.fromarray(frame) for frame in frames]

    def write(tmp_path: str) -> None:
        images[0].save(tmp_path, format='WEBP', save_all=True, append_images=images[1:], duration=1000 // fps, loop=0, lossless=True)

    atomic_write(path, write)


def write_video(frames: np.ndarray, stem: str, fps: int = FPS) -> str:
    """Write `frames` (T x H x W x 3 uint8) to `stem`.mp4 (PyAV) or `stem`.webp; returns the path written."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"write_video expects T x H x W x 3 uint8 frames, got {frames.dtype} {frames.shape}")
    if has_mp4_encoder():
        path = f'{stem}.mp4'
        _write_mp4(frames, path, fps)
    else:
        path = f'{stem}.webp'
        _write_webp(frames, path, fps)
    return path
