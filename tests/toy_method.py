"""A fourth method for tests/test_family.py: a 1-conv generator that learns to paint a square's class in its colour,
on data it draws itself (no files: it brings its own dataset and its own page rows). It shows everything a method
needs (models/common/method.py's Method); the test registers it by patching models.MODELS, no other file."""

import argparse
import dataclasses

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.common.labels import one_hot_label
from models.common.method import ArchitectureRecord, Method, arch_field
from models.common.trainer_base import TrainerBase
from util.distributed import bare
from util.errors import OptionsError
from util.images import tensor2im

N_CLASSES = 4
# The colour of each class in [-1, 1]: what the toy learns to paint.
PALETTE = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """The toy's flags, in the help group 'toy model'."""
    add = parser.add_argument_group('toy model').add_argument
    add('--toy_kernel', type=int, default=3, help='kernel size of the one convolution')
    add('--toy_lambda', type=float, default=1.0, help='weight of the L1 loss')
    add('--toy_samples', type=int, default=4, help='squares drawn per epoch')


def validate(opt: argparse.Namespace) -> None:
    """The toy draws its own data: at least one square."""
    if opt.toy_samples < 1:
        raise OptionsError(f"--toy_samples {opt.toy_samples} must be >= 1")


class SquaresDataset(torch.utils.data.Dataset):
    """Sample i: a 16x16 map of class 0 with a square of class 1 + i % 3, and the image of the square in its colour."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.dataset_size = opt.toy_samples

    def __len__(self) -> int:
        return self.dataset_size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index = key[1] if isinstance(key, tuple) else key  # the training sampler gives (epoch, index)
        label = torch.zeros(1, 16, 16, dtype=torch.int32)
        label[:, 4 + index % 5 : 10 + index % 5, 3:9] = 1 + index % 3
        image = PALETTE[label[0].long()].permute(2, 0, 1)
        return {'label': label, 'image': image, 'path': f'square_{index}.png'}

    def name(self) -> str:
        return 'SquaresDataset'

    def check_contents(self) -> None:
        """Drawn, not read: nothing to check."""


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """The toy's one convolution: image channels out, kernel size (the classes are fixed)."""

    model_name = 'toy'

    output_nc: int
    kernel: int = arch_field('toy_kernel')

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the options describe."""
        return cls(opt.output_nc, opt.toy_kernel)


class ToyModel(nn.Module):
    """netG = one convolution on the one-hot label map; the loss is L1 to the painted image."""

    loss_names = ('G_L1',)

    def __init__(self, arch: Architecture, lambda_l1: float) -> None:
        super().__init__()
        self.arch = arch
        self.lambda_l1 = lambda_l1
        self.netG = nn.Conv2d(N_CLASSES, arch.output_nc, arch.kernel, padding=arch.kernel // 2)

    @property
    def device(self) -> torch.device:
        """Where the network lives."""
        return bare(self.netG).weight.device  # under torchrun netG is the trainer's DistributedDataParallel

    def encode_input(self, label: torch.Tensor) -> torch.Tensor:
        """One-hot classes."""
        return one_hot_label(label.to(self.device), N_CLASSES)

    @torch.no_grad()
    def inference(self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None) -> torch.Tensor:
        """The image in [-1, 1]."""
        return self.synthesizer()(self.encode_input(label))

    def synthesizer(self) -> nn.Module:
        """netG followed by tanh."""
        return nn.Sequential(bare(self.netG), nn.Tanh())

    def networks_by_name(self) -> dict:
        """{'G': netG} (unwrapped: the checkpoint's keys are the network's own)."""
        return {'G': bare(self.netG)}


class ToyTrainer(TrainerBase):
    """Adam on the L1 loss."""

    def __init__(self, opt: argparse.Namespace, model: ToyModel) -> None:
        super().__init__(model, opt)
        self.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))

    def optimizers(self) -> dict:
        """{name in the training state: optimiser}."""
        return {'optimizer_G': self.optimizer_G}

    def iterate(self, data: dict) -> tuple[dict, torch.Tensor]:
        """One Adam step on lambda * L1(tanh(G(label)), image)."""
        fake = torch.tanh(self.model.netG(self.model.encode_input(data['label'])))
        loss = F.l1_loss(fake, data['image'].to(fake.device)) * self.model.lambda_l1
        self.optimizer_G.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_G.step()
        return {'G_L1': loss}, fake


def training_visuals(opt: argparse.Namespace, data: dict, generated: torch.Tensor) -> dict[str, np.ndarray]:
    """The painted target and the toy's image."""
    return {'target': tensor2im(data['image'][0]), 'painted': tensor2im(generated[0])}


def test_visuals(opt: argparse.Namespace, model: ToyModel, data: dict) -> dict[str, np.ndarray]:
    """The painted target and the toy's image of one drawn sample."""
    return {'target': tensor2im(data['image'][0]), 'painted': tensor2im(model.inference(data['label'])[0])}


METHOD = Method(
    name='toy',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=lambda opt: ToyModel(Architecture.from_options(opt), opt.toy_lambda),
    build_trainer=ToyTrainer,
    defaults={'niter': 1, 'niter_decay': 0},
    resume_policy={
        'toy_lambda': ('may change', 'the L1 weight changes from the next iteration'),
        'toy_samples': ('may change', 'an epoch draws this many squares from now on'),
    },
    validate=validate,
    dataset=SquaresDataset,
    training_visuals=training_visuals,
    test_visuals=test_visuals,
)
