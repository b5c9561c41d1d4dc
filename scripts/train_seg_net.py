"""Train a small segmentation network on a dataset's training photos, for scripts/evaluate.py's --seg_model.

    python scripts/train_seg_net.py --dataroot datasets/synthetic --out seg_synthetic.pt

The pix2pixHD paper scores synthesized Cityscapes images with PSPNet; on the built-in synthetic street scenes
(data/synthetic.py, no download) this script makes the counterpart (200 iterations take about 50 s of CPU, one
thread): a fully-convolutional net (full-resolution stem, two stride-2 stages, dilated context, a skip back to full
resolution) trained with cross-entropy on DATAROOT/train_img against DATAROOT/train_label. The synthetic label
maps hold Cityscapes labelIds, so the targets are their trainIds (util/metrics.py) and the saved TorchScript
file meets evaluate.py's contract as it is: ImageNet-normalised RGB in, 19 trainId logits out at the input's size.
Exit status 0 (the accuracy on DATAROOT/test_img is printed), 1 with a one-line error.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.aligned_dataset import pair_key  # noqa: E402
from data.base_dataset import DatasetError, open_map  # noqa: E402
from data.image_folder import make_dataset  # noqa: E402
from options.base_options import OptionsError  # noqa: E402
from util import metrics  # noqa: E402
from util.cli import run_main  # noqa: E402


def _block(in_nc: int, out_nc: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_nc, out_nc, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_nc),
        nn.ReLU(inplace=True),
    )


class TinySegNet(nn.Module):
    """Bx3xHxW normalised RGB -> Bx19xHxW trainId logits (any H, W); dilated convolutions see whole objects."""

    def __init__(self, width: int = 16, num_classes: int = metrics.NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(_block(3, width), _block(width, width))
        self.down = nn.Sequential(_block(width, 2 * width, stride=2), _block(2 * width, 4 * width, stride=2))
        self.context = nn.Sequential(_block(4 * width, 4 * width, dilation=2), _block(4 * width, 4 * width, dilation=4))
        self.head = nn.Sequential(_block(5 * width, 2 * width), nn.Conv2d(2 * width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input's size: the context upsampled (bilinear) beside the full-resolution stem."""
        fine = self.stem(x)
        coarse = self.context(self.down(fine))
        coarse = F.interpolate(coarse, size=fine.shape[2:], mode='bilinear', align_corners=False)
        return self.head(torch.cat([fine, coarse], 1))


def load_split(dataroot: str, phase: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 Nx3xHxW photos, int64 NxHxW trainIds) of DATAROOT/<phase>_img and <phase>_label, paired by name."""
    folders = {kind: os.path.join(dataroot, f'{phase}_{kind}') for kind in ('img', 'label')}
    for folder in folders.values():
        if not os.path.isdir(folder):
            raise DatasetError(f"{folder}: folder not found; pass --dataroot holding {phase}_img/ and {phase}_label/")
    photos = {pair_key(path): path for path in make_dataset(folders['img'])}
    labels = {pair_key(path): path for path in make_dataset(folders['label'])}
    keys = sorted(photos.keys() & labels.keys())
    if not keys:
        raise DatasetError(f"{folders['img']}: no photo pairs by name with a label map in {folders['label']}")
    images, targets = [], []
    for key in keys:
        with Image.open(photos[key]) as img:
            photo = np.array(img.convert('RGB'), dtype=np.uint8)
        label = np.asarray(open_map(labels[key]))
        if label.shape != photo.shape[:2]:
            raise DatasetError(f"{labels[key]}: label map {label.shape[::-1]} differs in size from its photo {photo.shape[1::-1]}")
        images.append(torch.from_numpy(photo).permute(2, 0, 1))
        targets.append(metrics.label_to_train_id(label))
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise DatasetError(f"{folders['img']}: photos of several sizes {sorted(shapes)}; make the dataset at one size")
    return torch.stack(images), torch.stack(targets)


@torch.no_grad()
def pixel_accuracy(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of labelled pixels the model classifies right (eval mode)."""
    model.eval()
    confusion = metrics.ConfusionMatrix()
    for start in range(0, len(images), 8):
        prediction = model(metrics.segmentation_input(images[start : start + 8])).argmax(1)
        confusion.update(prediction, targets[start : start + 8])
    return confusion.pixel_accuracy()


def train(images: torch.Tensor, targets: torch.Tensor, iters: int, batch_size: int, seed: int, width: int = 16) -> TinySegNet:
    """A TinySegNet trained with cross-entropy (Adam, cosine lr) on random batches with horizontal flips."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinySegNet(width)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iters)
    inputs = metrics.segmentation_input(images)  # evaluate.py's default --seg_input_range imagenet
    model.train()
    for _ in range(iters):
        index = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
        x, y = inputs[index], targets[index]
        flip = torch.rand(len(index), generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        y = torch.where(flip.view(-1, 1, 1), y.flip(2), y)
        loss = F.cross_entropy(model(x), y, ignore_index=metrics.IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def save(model: nn.Module, path: str) -> None:
    """TorchScript archive, as evaluate.py's load_seg_model reads it (written whole or not at all)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch >= 2.10 marks TorchScript deprecated
        scripted = torch.jit.script(model.eval())
        tmp_path = f'{path}.tmp{os.getpid()}'
        scripted.save(tmp_path)
    os.replace(tmp_path, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The script's flags (default sys.argv), checked: a bad count or --out folder raises OptionsError."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='dataset root with train_img/, train_label/ (labelIds)')
    parser.add_argument('--out', required=True, help='TorchScript file to write, e.g. seg_synthetic.pt (evaluate.py --seg_model)')
    parser.add_argument('--iters', type=int, default=200, help='training iterations (default 200)')
    parser.add_argument('--batch_size', type=int, default=8, help='images per iteration (default 8)')
    parser.add_argument('--width', type=int, default=16, help='channels of the first stage (default 16)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    opt = parser.parse_args(argv)
    if opt.iters < 1 or opt.batch_size < 1 or opt.width < 1:
        raise OptionsError(f"--iters {opt.iters}, --batch_size {opt.batch_size}, --width {opt.width}: each must be at least 1")
    folder = os.path.dirname(os.path.abspath(opt.out))
    if not os.path.isdir(folder):
        raise OptionsError(f"--out {opt.out}: folder {folder} does not exist; create it or pass another path")
    return opt


def main(argv: list[str] | None = None) -> dict:
    """Train, save, and return {'train_accuracy', 'test_accuracy' (None without test renders), 'cpu_seconds'}."""
    opt = parse_args(argv)
    images, targets = load_split(opt.dataroot, 'train')
    start = time.process_time()
    model = train(images, targets, opt.iters, opt.batch_size, opt.seed, opt.width)
    seconds = time.process_time() - start
    save(model, opt.out)
    scores: dict = {'train_accuracy': pixel_accuracy(model, images, targets), 'test_accuracy': None, 'cpu_seconds': seconds}
    if os.path.isdir(os.path.join(opt.dataroot, 'test_img')):
        scores['test_accuracy'] = pixel_accuracy(model, *load_split(opt.dataroot, 'test'))
    test = '-' if scores['test_accuracy'] is None else f"{scores['test_accuracy']:.2%}"
    print(
        f"segmentation net written to {opt.out}: pixel accuracy {scores['train_accuracy']:.2%} on the {len(images)} training "
        f"photos, {test} on the test photos ({opt.iters} iterations, {seconds:.0f} s of CPU time)"
    )
    return scores


def cli() -> None:
    """The command line: main() on sys.argv, its result printed already."""
    main()


if __name__ == '__main__':
    run_main(cli)
