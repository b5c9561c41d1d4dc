"""Validate a dataset the way train.py (or, for another --phase, test.py) does before running, then summarise it.

    python scripts/check_dataset.py --dataroot DIR [--phase train] [--label_nc 35] [--no_instance] [...train.py flags]

Checks that the label / instance / photo (/ feature) folders pair by file name, that sizes agree and
that label and instance maps hold one channel of ids (headers only, as train.py does), then reads every
label and instance map to report the classes seen and instances per class. Label values >= --label_nc
are collected over the whole dataset and reported once, with the --label_nc that covers every file.
Photos are required for --phase train; for other phases they are optional, as for test.py.
Exit status 0 when the dataset is usable, 1 with a one-line error otherwise.
"""

import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.aligned_dataset import (
    AlignedDataset,  # noqa: E402
    check_label_maxima,  # noqa: E402
)
from data.base_dataset import open_map  # noqa: E402
from models import METHODS  # noqa: E402
from options.base_options import replace  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util import cityscapes  # noqa: E402
from util.cli import run_main  # noqa: E402


def summarise(dataset: AlignedDataset) -> dict:
    """Counts, sizes, pixels and instances per class over every label (and instance) map."""
    sizes: collections.Counter[tuple[int, int]] = collections.Counter()
    pixels: collections.Counter[int] = collections.Counter()
    instances: collections.Counter[int] = collections.Counter()
    maxima: dict[str, int] = {}  # label map -> its largest value
    for index, label_path in enumerate(dataset.A_paths):
        label_image = open_map(label_path)
        sizes[label_image.size] += 1
        if dataset.opt.label_nc == 0:
            continue
        label = np.asarray(label_image)
        values, counts = np.unique(label, return_counts=True)
        maxima[label_path] = int(values.max())
        pixels.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        if dataset.inst_paths:
            # int64: an 8-bit instance map's ids cannot be compared with 1000 in uint8 (numpy 2 refuses)
            ids = np.unique(np.asarray(open_map(dataset.inst_paths[index])).astype(np.int64))
            objects = ids[ids >= 1000]
            instances.update(collections.Counter((objects // 1000).tolist()))
    check_label_maxima(maxima, dataset.opt.label_nc)  # empty with --label_nc 0
    return {'sizes': sizes, 'pixels': pixels, 'instances': instances}


def main() -> None:
    """Validate, summarise, print the table."""
    opt = TrainOptions(
        'Check a dataset as train.py (or, with --phase, test.py) would read it, then print a summary per class.', METHODS
    ).parse(sys.argv[1:] + ['--gpu_ids', '-1'], save=False)
    if opt.phase != 'train':
        opt = replace(opt, isTrain=False)  # checked as test.py reads it: the photos are optional
    dataset = AlignedDataset(opt)  # the label-to-image layout (label / instance / photo folders)
    folders = {
        'label maps' if opt.label_nc else 'inputs (A)': dataset.A_paths,
        'photos': dataset.B_paths,
        'instance maps': dataset.inst_paths,
        'feature maps': dataset.feat_paths,
    }
    summary = summarise(dataset)
    print(
        f'Dataset {opt.dataroot} (phase {opt.phase}, checked for {"train.py" if opt.isTrain else "test.py"}): '
        'files pair by name, sizes agree'
    )
    if dataset.B_paths is None:
        print('  no photos: test.py runs without them (no real image beside the results)')
    for what, paths in folders.items():
        if paths:
            print(f'  {what:<14} {len(paths):>6}  in {os.path.dirname(paths[0])}')
    print('  sizes: ' + ', '.join(f'{w}x{h} ({n})' for (w, h), n in summary['sizes'].most_common()))
    if opt.label_nc:
        total = sum(summary['pixels'].values())
        # --label_nc 35 is the Cityscapes setting (labelIds): name the classes as the official table does.
        names = cityscapes.NAMES if opt.label_nc == cityscapes.NUM_LABELS else ()
        width = max(map(len, names), default=0)
        print(f'\n{"class":>6} {"name" if names else "":<{width}} {"pixels %":>9} {"instances":>10}')
        for class_id in sorted(summary['pixels']):
            name = names[class_id] if class_id < len(names) else ''
            print(
                f'{class_id:>6} {name:<{width}} {100 * summary["pixels"][class_id] / total:>9.2f} '
                f'{summary["instances"].get(class_id, 0):>10}'
            )
        print(f'{len(summary["pixels"])} classes seen, all below --label_nc {opt.label_nc}')


if __name__ == '__main__':
    run_main(main)
