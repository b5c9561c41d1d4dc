"""Built-in synthetic street-scene video with its exact optical flow and visibility masks (docs/VIDEO.md).

Each sequence is one street scene of data/synthetic.py seen by a camera that pans sideways by ``pan`` whole pixels
per frame, while each car moves sideways across the view at its own whole-pixel speed. The background is painted
once on a panorama as wide as the pan needs and every car once on a sprite of its own; a frame is the panorama's
window at the camera's position with the car sprites pasted far to near. Every frame is therefore made of exact
integer translations of the same pixels, so the flow is exact, and so is its check: warping the previous frame by the
flow (util/flow.py's convention) gives the current frame wherever the mask says the pixel was visible before.

Flow of frame t (t >= 1), in pixels (channel 0 = x, 1 = y): where frame t's pixel content is in frame t-1. The
background's content moves left on screen when the camera pans right, so its flow is ``+pan``; a car's is
``pan - speed``. The mask is 1 where that place lies inside frame t-1 and shows the same surface (the background, or
the same car) there, 0 where the pixel was hidden by a car or outside the frame in frame t-1 (disoccluded).

Layout under ``root`` (per split ``train`` / ``test``, per sequence ``seq_NNNN``, frames ``frame_NNNN``)::

    train_label/seq_0000/frame_0000.png    8-bit 'L', Cityscapes labelIds
    train_inst/seq_0000/frame_0000.png     16-bit instance ids (cars 26000 + k, constant over the sequence)
    train_img/seq_0000/frame_0000.png      RGB photo
    train_flow/seq_0000/frame_0001.npz     'flow' float32 2 x H x W, 'mask' uint8 H x W (1: visible in frame t-1);
                                           one file per frame from frame 1 on
    video.json                             {split/sequence: {"pan", "cars": [{"instance_id", "style", "speed"}]}}
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np
from PIL import Image

from .flow_files import save_flow
from .synthetic import _Canvas, _car_specs, _paint_background, _paint_car

__all__ = ["VideoSequence", "generate_sequence", "jitter_label_boundaries", "make_synthetic_video"]

_SPLITS = ("train", "test")
_KINDS = ("label", "inst", "img", "flow")
_SEQUENCE_RE = re.compile(r"^seq_\d{4}$")
_FRAME_RE = re.compile(r"^frame_\d{4}\.(png|npz)$")


@dataclasses.dataclass(frozen=True)
class VideoSequence:
    """One rendered sequence of T frames: maps, photos, the exact flows and masks, and how it moves."""

    labels: np.ndarray  # T x H x W uint8 labelIds
    insts: np.ndarray  # T x H x W uint16 instance ids
    photos: np.ndarray  # T x H x W x 3 uint8
    flows: np.ndarray  # T-1 x 2 x H x W float32: flows[t - 1] is frame t's flow into frame t-1
    masks: np.ndarray  # T-1 x H x W uint8: 1 where frame t's pixel is visible in frame t-1
    pan: int  # camera pan, pixels per frame (positive: the camera turns right, the scene moves left)
    cars: list  # [{"instance_id", "style", "speed"}]: sideways speed in pixels per frame over the ground (positive: right)


def _paste(target: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x: int) -> None:
    """Copy ``sprite`` (H x w ...) where ``mask`` is set into ``target`` (H x W ...) with its left column at ``x``."""
    width, sprite_width = target.shape[1], sprite.shape[1]
    lo, hi = max(x, 0), min(x + sprite_width, width)
    if lo >= hi:
        return
    window = mask[:, lo - x : hi - x]
    target[:, lo:hi][window] = sprite[:, lo - x : hi - x][window]


def generate_sequence(
    width: int, height: int, n_frames: int, rng: np.random.Generator, max_pan: int = 2, max_speed: int = 3
) -> VideoSequence:
    """Render one sequence: a pan of 1..max_pan pixels per frame (either way; 0 with max_pan 0) and cars whose speeds
    lie in -max_speed..max_speed, never equal to the pan, so each car moves against the background."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    W, H, T = int(width), int(height), int(n_frames)
    pan = int(rng.integers(1, max_pan + 1)) * (1 if rng.random() < 0.5 else -1) if max_pan > 0 else 0
    travel = abs(pan) * (T - 1)
    panorama = _Canvas(H, W + travel)
    ground = _paint_background(panorama, rng)
    # The camera's left column on the panorama, per frame: the whole travel lies inside it.
    camera = [pan * t + (travel if pan < 0 else 0) for t in range(T)]

    speeds_allowed = [s for s in range(-max_speed, max_speed + 1) if s != pan]
    sprites = []  # (label, inst, photo, mask, left column on the panorama at frame 0, speed)
    cars = []
    for k, spec in enumerate(_car_specs(rng, ground)):
        x0, _, x1, _ = spec["box"]
        left = int(np.floor(x0)) - 2
        sprite = _Canvas(H, int(np.ceil(x1)) - left + 2)
        _paint_car(sprite, spec, 26000 + k, dx=-left)
        speed = int(speeds_allowed[rng.integers(len(speeds_allowed))])
        photo = np.clip(np.rint(sprite.img), 0, 255).astype(np.uint8)
        sprites.append((sprite.label, sprite.inst.astype(np.uint16), photo, sprite.inst == 26000 + k, left, speed))
        cars.append({"instance_id": 26000 + k, "style": spec["style"], "speed": speed})

    background_photo = np.clip(np.rint(panorama.img), 0, 255).astype(np.uint8)
    background_inst = panorama.inst.astype(np.uint16)
    labels = np.empty((T, H, W), np.uint8)
    insts = np.empty((T, H, W), np.uint16)
    photos = np.empty((T, H, W, 3), np.uint8)
    layers = np.zeros((T, H, W), np.int32)  # 0: background, k + 1: car k (what surface each pixel shows)
    for t in range(T):
        columns = slice(camera[t], camera[t] + W)
        labels[t], insts[t], photos[t] = panorama.label[:, columns], background_inst[:, columns], background_photo[:, columns]
        for k, (label, inst, photo, mask, left, speed) in enumerate(sprites):  # far to near: nearer cars hide farther ones
            x = left + speed * t - camera[t]
            _paste(labels[t], label, mask, x)
            _paste(insts[t], inst, mask, x)
            _paste(photos[t], photo, mask, x)
            _paste(layers[t], np.full(mask.shape, k + 1, np.int32), mask, x)

    # Flow per surface: the background moved by the pan, car k by the pan less its own speed.
    surface_flow = np.array([pan] + [pan - car["speed"] for car in cars], np.int64)
    flows = np.zeros((max(T - 1, 0), 2, H, W), np.float32)
    masks = np.zeros((max(T - 1, 0), H, W), np.uint8)
    rows, cols = np.mgrid[0:H, 0:W]
    for t in range(1, T):
        flow_x = surface_flow[layers[t]]
        source = cols + flow_x
        inside = (source >= 0) & (source < W)
        same = layers[t - 1][rows, np.clip(source, 0, W - 1)] == layers[t]
        flows[t - 1, 0] = flow_x
        masks[t - 1] = inside & same
    return VideoSequence(labels, insts, photos, flows, masks, pan, cars)


def jitter_label_boundaries(
    labels: np.ndarray, insts: np.ndarray, rng: np.random.Generator, probability: float, block: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Label and instance maps (T x H x W) as a segmentation network run per frame would give them: in each frame,
    independently, each ``block`` x ``block`` tile is displaced with ``probability`` by one pixel in one of the 8
    directions (label and instance map alike), so the boundaries inside it move by a pixel; a tile off a boundary
    stays as it is. Photos and flow are not touched: they stay exact, only the maps jitter from frame to frame."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"label jitter must lie in [0, 1], got {probability}")
    T, H, W = labels.shape
    labels, insts = labels.copy(), insts.copy()
    if probability == 0.0:
        return labels, insts
    tiles = (-(-H // block), -(-W // block))
    rows, cols = np.mgrid[0:H, 0:W]
    steps = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    for t in range(T):
        moved = rng.random(tiles) < probability
        step = steps[rng.integers(len(steps), size=tiles)] * moved[..., None]
        step = step.repeat(block, 0).repeat(block, 1)[:H, :W]
        source_rows = np.clip(rows + step[..., 0], 0, H - 1)
        source_cols = np.clip(cols + step[..., 1], 0, W - 1)
        labels[t] = labels[t][source_rows, source_cols]
        insts[t] = insts[t][source_rows, source_cols]
    return labels, insts


def _clear_generated(folder: str) -> None:
    """Remove the sequences this generator wrote before (only its own folder and file names)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        sequence = os.path.join(folder, name)
        if _SEQUENCE_RE.match(name) and os.path.isdir(sequence):
            for frame in os.listdir(sequence):
                if _FRAME_RE.match(frame):
                    os.remove(os.path.join(sequence, frame))
            if not os.listdir(sequence):
                os.rmdir(sequence)


def make_synthetic_video(
    root: str,
    n_train: int = 4,
    n_test: int = 2,
    n_frames: int = 8,
    width: int = 128,
    height: int = 64,
    seed: int = 0,
    max_pan: int = 2,
    max_speed: int = 3,
    label_jitter: float = 0.0,
) -> dict[str, int]:
    """Write n_train / n_test sequences of n_frames frames under ``root`` (layout: this module's docstring); returns
    the number of sequences written per folder. Output is byte-identical for the same arguments. ``label_jitter`` > 0
    moves label and instance boundaries by a pixel here and there, independently per frame
    (``jitter_label_boundaries``: the per-frame segmentation maps vid2vid trains on), photos and flow untouched; 0
    (the default) writes the exact maps."""
    if width < 32 or height < 16:
        raise ValueError(f"width/height too small: {width}x{height} (need >= 32x16)")
    if n_train < 0 or n_test < 0 or n_frames < 2:
        raise ValueError("n_train and n_test must be >= 0 and n_frames >= 2")
    if not 0.0 <= label_jitter <= 1.0:
        raise ValueError(f"label_jitter must lie in [0, 1], got {label_jitter}")
    counts: dict[str, int] = {}
    record: dict[str, dict] = {}
    for split_index, (split, n) in enumerate(zip(_SPLITS, (n_train, n_test), strict=True)):
        folders = {kind: os.path.join(root, f"{split}_{kind}") for kind in _KINDS}
        for kind, folder in folders.items():
            _clear_generated(folder)
            counts[f"{split}_{kind}"] = 0
        for i in range(n):
            # Its own seed per sequence, apart from the still dataset's ([seed, split, i]) by a fourth entry.
            rng = np.random.default_rng([int(seed), split_index, i, 1])
            sequence = generate_sequence(width, height, n_frames, rng, max_pan=max_pan, max_speed=max_speed)
            if label_jitter > 0:
                # Its own generator, so the scene and its motion are those of the exact maps.
                jitter_rng = np.random.default_rng([int(seed), split_index, i, 2])
                labels, insts = jitter_label_boundaries(sequence.labels, sequence.insts, jitter_rng, label_jitter)
                sequence = dataclasses.replace(sequence, labels=labels, insts=insts)
            name = f"seq_{i:04d}"
            paths = {kind: os.path.join(folder, name) for kind, folder in folders.items()}
            for path in paths.values():
                os.makedirs(path, exist_ok=True)
            for t in range(n_frames):
                frame = f"frame_{t:04d}"
                Image.fromarray(sequence.labels[t]).save(os.path.join(paths["label"], frame + ".png"))
                Image.fromarray(sequence.insts[t]).save(os.path.join(paths["inst"], frame + ".png"))
                Image.fromarray(sequence.photos[t]).save(os.path.join(paths["img"], frame + ".png"))
                if t >= 1:
                    save_flow(os.path.join(paths["flow"], frame + ".npz"), sequence.flows[t - 1], sequence.masks[t - 1])
            for kind in _KINDS:
                counts[f"{split}_{kind}"] += 1
            record[f"{split}/{name}"] = {"pan": sequence.pan, "cars": sequence.cars}
    with open(os.path.join(root, "video.json"), "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    return counts
