"""The truncation trade-off of a trained BigGAN (--model biggan): FID and KID against the real images and Inception
Score of samples at several truncations, as a table, a JSON file and a plot (FID against IS, each point a truncation).

    python scripts/biggan_truncation.py --name shapes_biggan --use_ema --real synthetic --n_images 2000 \\
        --inception_weights weights-inception-2015-12-05-6726825d.pth --out results/shapes_biggan/truncation

Every flag test.py takes (--checkpoints_dir, --which_epoch, --use_ema, --G_eval_mode, --gpu_ids, ...) is passed on; the
architecture comes from the experiment's architecture.json. --real: `synthetic` (the built-in shapes) or a folder of
class folders (the training images). FID, KID (subsets of 1000 images, or of the smaller set's size: with 1000 or
fewer every subset is the whole set and KID's std is 0) and IS are torch-fidelity's (util/metrics.py); they are
comparable only at equal image counts. Exit status 0 with the table on stdout, 1 with a one-line error.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from builders import build_model  # noqa: E402
from data.class_dataset import ClassFolderDataset, SyntheticClassDataset  # noqa: E402
from models import METHODS  # noqa: E402
from options.test_options import TestOptions  # noqa: E402
from util import metrics  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.errors import OptionsError  # noqa: E402
from util.records import write_text  # noqa: E402


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """This script's flags, and the rest for test.py's options."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument('--truncations', default='0,1.0,0.8,0.6,0.4,0.2', help='truncations to sample at, comma-separated (0: N(0, z_var))')
    parser.add_argument('--n_images', type=int, default=5000, help='samples per truncation, and real images')
    parser.add_argument('--real', required=True, help='the real images: synthetic, or a folder of class folders')
    parser.add_argument('--inception_weights', default=None, help=f'local {metrics.INCEPTION_WEIGHTS_FILE} (default: download)')
    parser.add_argument('--splits', type=int, default=10, help='Inception Score splits')
    parser.add_argument('--batch', type=int, default=50, help='images per forward')
    parser.add_argument('--out', required=True, help='folder for truncation.json and truncation.png')
    args, rest = parser.parse_known_args(argv)
    try:
        args.truncation_values = [float(value) for value in args.truncations.split(',')]
    except ValueError:
        raise OptionsError(f"--truncations {args.truncations!r}: numbers joined by ',', e.g. 0,1.0,0.5") from None
    if any(value < 0 for value in args.truncation_values) or args.n_images < 2 or args.splits < 1 or args.batch < 1:
        raise OptionsError('--truncations must be >= 0, --n_images >= 2, --splits and --batch >= 1')
    return args, rest


def real_images(args: argparse.Namespace, opt: argparse.Namespace) -> torch.Tensor:
    """n_images uint8 real images (the synthetic shapes, or a seeded choice of the class folders' images)."""
    settings = argparse.Namespace(n_classes=opt.n_classes, resolution=opt.resolution, synthetic_samples=args.n_images, dataroot=args.real)
    dataset = SyntheticClassDataset(settings) if args.real == 'synthetic' else ClassFolderDataset(settings)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: args.n_images]
    return torch.stack([to_uint8(dataset[int(index)]['image']) for index in order])


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 (the page's conversion)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def features_and_logits(inception: torch.nn.Module, images: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inception's 2048-d features and class logits of uint8 images."""
    device = next(inception.parameters()).device
    outputs = [inception(part.to(device)) for part in images.split(batch)]
    return torch.cat([out[0].cpu() for out in outputs]), torch.cat([out[1].cpu() for out in outputs])


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    """Sample at each truncation, score, write the table, JSON and plot."""
    args, rest = parse_args(argv)
    opt = TestOptions('', METHODS).parse([*rest], save=False)
    if opt.model != 'biggan':
        raise OptionsError(f"--name {opt.name} is a --model {opt.model} experiment: the truncation trade-off is BigGAN's")
    if opt.seed is not None:
        torch.manual_seed(opt.seed)
    real = real_images(args, opt)
    if len(real) < 2:
        raise OptionsError(f"--real {args.real}: {len(real)} image; FID and KID need at least 2 real images")
    model = build_model(opt)
    inception = metrics.load_inception(args.inception_weights, 2048, model.device, logits=True)
    real_features, _ = features_and_logits(inception, real, args.batch)
    classes = torch.arange(args.n_images) % opt.n_classes
    rows = []
    for truncation in args.truncation_values:
        fakes = [
            to_uint8(model.generate(model.noise(len(part), truncation=truncation), model.embed(part)).cpu())
            for part in classes.split(args.batch)
        ]
        features, logits = features_and_logits(inception, torch.cat(fakes), args.batch)
        is_mean, is_std = metrics.inception_score(logits, min(args.splits, args.n_images))
        # Subsets no larger than the smaller set: a class folder may hold fewer real images than --n_images.
        subset_size = min(metrics.KID_SUBSET_SIZE, len(features), len(real_features))
        kid, kid_std = metrics.kernel_inception_distance(features, real_features, subset_size=subset_size)
        fid = metrics.frechet_distance(features, real_features)
        rows.append({'truncation': truncation, 'FID': fid, 'KID': kid, 'KID_std': kid_std, 'IS': is_mean, 'IS_std': is_std})
        print(f"truncation {truncation:g}: FID {fid:.2f}, KID {kid:.4f} +- {kid_std:.4f}, IS {is_mean:.3f} +- {is_std:.3f}")
    os.makedirs(args.out, exist_ok=True)
    record = {'experiment': opt.name, 'which_epoch': opt.which_epoch, 'use_ema': opt.use_ema, 'n_images': args.n_images, 'rows': rows}
    write_text(os.path.join(args.out, 'truncation.json'), json.dumps(record, indent=1))
    plot(rows, os.path.join(args.out, 'truncation.png'), f'{opt.name} ({args.n_images} samples per point)')
    print(f"wrote {os.path.join(args.out, 'truncation.json')} and truncation.png")


def plot(rows: list[dict], path: str, title: str) -> None:
    """FID (down is better) against IS (right is better), each point labelled with its truncation."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot([row['IS'] for row in rows], [row['FID'] for row in rows], 'o-')
    for row in rows:
        axes.annotate(
            f"{row['truncation']:g}" if row['truncation'] else 'none', (row['IS'], row['FID']), textcoords='offset points', xytext=(4, 4)
        )
    axes.set_xlabel('Inception Score')
    axes.set_ylabel('FID')
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == '__main__':
    run_main(main)
