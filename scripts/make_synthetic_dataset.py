#!/usr/bin/env python
"""Generate the built-in synthetic street-scene dataset (Cityscapes layout).

Usage (from the repo root):
    python scripts/make_synthetic_dataset.py --dataroot ./datasets/synthetic
"""

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from data.synthetic import make_synthetic_dataset  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Write a small synthetic Cityscapes-style dataset.")
    parser.add_argument("--dataroot", default="./datasets/synthetic", help="output folder")
    parser.add_argument("--n_train", type=int, default=24, help="number of training images")
    parser.add_argument("--n_test", type=int, default=6, help="number of test images")
    parser.add_argument("--width", type=int, default=256, help="image width in pixels")
    parser.add_argument("--height", type=int, default=128, help="image height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
    args = parser.parse_args(argv)

    counts = make_synthetic_dataset(
        args.dataroot,
        n_train=args.n_train,
        n_test=args.n_test,
        width=args.width,
        height=args.height,
        seed=args.seed,
    )
    root = os.path.abspath(args.dataroot)
    print(f"Synthetic dataset ({args.width}x{args.height}, seed {args.seed}) written to {root}")
    for folder, n in counts.items():
        print(f"  {folder:<12s} {n:4d} files")
    print(f"  {'styles.json':<12s} car instance styles per image")
    return counts


if __name__ == "__main__":
    main()
