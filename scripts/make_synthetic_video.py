#!/usr/bin/env python
"""Generate the built-in synthetic street-scene video with exact optical flow (layout: docs/VIDEO.md).

Usage (from the repo root):
    python scripts/make_synthetic_video.py --dataroot ./datasets/synthetic_video
"""

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from data.synthetic_video import make_synthetic_video  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, write the sequences and print what was written."""
    parser = argparse.ArgumentParser(description="Write a small synthetic street-scene video dataset with exact flow.")
    parser.add_argument("--dataroot", default="./datasets/synthetic_video", help="output folder")
    parser.add_argument("--n_train", type=int, default=4, help="number of training sequences")
    parser.add_argument("--n_test", type=int, default=2, help="number of test sequences")
    parser.add_argument("--n_frames", type=int, default=8, help="frames per sequence")
    parser.add_argument("--width", type=int, default=128, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=64, help="frame height in pixels")
    parser.add_argument("--max_pan", type=int, default=2, help="largest camera pan, whole pixels per frame (0: still camera)")
    parser.add_argument("--max_speed", type=int, default=3, help="largest car speed, whole pixels per frame")
    parser.add_argument(
        "--label_jitter",
        type=float,
        default=0.0,
        help="probability that a 4x4 tile of a frame's label and instance maps moves by a pixel, per frame "
        "(a per-frame segmentation network's boundary jitter; photos and flow stay exact); default 0: exact maps",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
    args = parser.parse_args(argv)

    counts = make_synthetic_video(
        args.dataroot,
        n_train=args.n_train,
        n_test=args.n_test,
        n_frames=args.n_frames,
        width=args.width,
        height=args.height,
        seed=args.seed,
        max_pan=args.max_pan,
        max_speed=args.max_speed,
        label_jitter=args.label_jitter,
    )
    root = os.path.abspath(args.dataroot)
    print(f"Synthetic video ({args.width}x{args.height}, {args.n_frames} frames, seed {args.seed}) written to {root}")
    for folder, n in counts.items():
        print(f"  {folder:<12s} {n:4d} sequences")
    print(f"  {'video.json':<12s} camera pan and car speeds per sequence")
    return counts


if __name__ == "__main__":
    main()
