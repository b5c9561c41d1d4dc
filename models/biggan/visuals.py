"""BigGAN's page rows: training's (the G step's fakes beside the real batch) and test time's, one row per class: a grid
of samples, a truncation sweep (the same z at several truncations), and interpolations between two z in the class and
from the class to the next one (the same z, the class embeddings mixed)."""

import argparse

import numpy as np
import torch
import torchvision

from util.images import tensor2im

from .model import BigGANModel

SAMPLES_PER_CLASS = 8
SWEEP = (1.0, 0.8, 0.6, 0.4, 0.2)  # truncations of the sweep, left to right
SWEEP_ROWS = 4  # z per sweep
INTERPOLATION_STEPS = 8


def grid(images: torch.Tensor, per_row: int) -> np.ndarray:
    """A uint8 H x W x 3 picture of B images in [-1, 1], `per_row` to a row, 2 px apart."""
    return tensor2im(torchvision.utils.make_grid(images.float().cpu(), nrow=per_row, padding=2, pad_value=1.0))


def training_visuals(opt: argparse.Namespace, data: dict, generated: torch.Tensor) -> dict[str, np.ndarray]:
    """The G step's fakes and the real images of the batch (up to 8 each)."""
    return {'fakes': grid(generated[:8], 8), 'real': grid(data['image'][:8], 8)}


def test_visuals(opt: argparse.Namespace, model: BigGANModel, data: dict) -> dict[str, np.ndarray]:
    """The row of class data['label'][0]: samples, truncation sweep, interpolation in z, interpolation to the next class."""
    cls = int(data['label'].view(-1)[0])
    n_classes = model.arch.n_classes
    classes = torch.full((SAMPLES_PER_CLASS,), cls, dtype=torch.long)
    samples = model.generate(model.noise(SAMPLES_PER_CLASS), model.embed(classes))
    # The sweep: one truncated-normal draw per row, scaled by each truncation (the TF-hub rule is linear in it).
    base = model.noise(SWEEP_ROWS, truncation=1.0)
    sweep_z = torch.cat([base * t for t in SWEEP]).view(len(SWEEP), SWEEP_ROWS, -1).transpose(0, 1).reshape(len(SWEEP) * SWEEP_ROWS, -1)
    sweep = model.generate(sweep_z, model.embed(torch.full((len(sweep_z),), cls, dtype=torch.long)))
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS, device=model.device).view(-1, 1)
    ends = model.noise(2)
    z_path = ends[:1] * (1 - weights) + ends[1:] * weights
    along_z = model.generate(z_path, model.embed(torch.full((INTERPOLATION_STEPS,), cls, dtype=torch.long)))
    pair = model.embed(torch.tensor([cls, (cls + 1) % n_classes]))
    class_path = pair[:1] * (1 - weights) + pair[1:] * weights
    along_class = model.generate(ends[:1].expand(INTERPOLATION_STEPS, -1), class_path)
    return {
        'samples': grid(samples, SAMPLES_PER_CLASS),
        'truncation_' + '_'.join(f'{t:g}' for t in SWEEP): grid(sweep, len(SWEEP)),
        'interpolation_z': grid(along_z, INTERPOLATION_STEPS),
        'interpolation_to_next_class': grid(along_class, INTERPOLATION_STEPS),
    }
