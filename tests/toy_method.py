"""A fourth method for tests/test_family.py: a 1-conv generator trained on an L1 loss. It shows everything a method
module needs (models/__init__.py's interface); the test registers it by patching models.MODELS, no other file."""

import argparse
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.common.labels import one_hot_label
from models.common.trainer_base import TrainerBase
from util.distributed import bare

DEFAULTS: dict = {'niter': 1, 'niter_decay': 0}
ARCHITECTURE_OPTIONS = ('label_nc', 'output_nc', 'toy_kernel')
RESUME_POLICY = {'toy_lambda': ('may change', 'the L1 weight changes from the next iteration')}
FIELD_FLAGS = {'label_nc': '--label_nc', 'output_nc': '--output_nc', 'kernel': '--toy_kernel'}
INSTANCE_FEATURES = False


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """The toy's flags, in the help group 'toy model'."""
    add = parser.add_argument_group('toy model').add_argument
    add('--toy_kernel', type=int, default=3, help='kernel size of the one convolution')
    add('--toy_lambda', type=float, default=1.0, help='weight of the L1 loss')


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The toy's one convolution: classes in, image channels out, kernel size."""

    label_nc: int
    output_nc: int
    kernel: int

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the options describe."""
        return cls(opt.label_nc, opt.output_nc, opt.toy_kernel)

    def to_dict(self) -> dict:
        """JSON-safe fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'Architecture':
        """Inverse of to_dict()."""
        return cls(**values)


class ToyModel(nn.Module):
    """netG = one convolution on the one-hot label map; the loss is L1 to the photo."""

    loss_names = ('G_L1',)

    def __init__(self, arch: Architecture, lambda_l1: float) -> None:
        super().__init__()
        self.arch = arch
        self.lambda_l1 = lambda_l1
        self.netG = nn.Conv2d(arch.label_nc, arch.output_nc, arch.kernel, padding=arch.kernel // 2)

    @property
    def device(self) -> torch.device:
        """Where the network lives."""
        return bare(self.netG).weight.device  # under torchrun netG is the trainer's DistributedDataParallel

    def encode_input(self, label: torch.Tensor) -> torch.Tensor:
        """One-hot classes."""
        return one_hot_label(label.to(self.device), self.arch.label_nc)

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
        """One Adam step on lambda * L1(tanh(G(label)), photo)."""
        fake = torch.tanh(self.model.netG(self.model.encode_input(data['label'])))
        loss = F.l1_loss(fake, data['image'].to(fake.device)) * self.model.lambda_l1
        self.optimizer_G.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_G.step()
        return {'G_L1': loss}, fake


def build_model(opt: argparse.Namespace, clusters: dict | None = None) -> ToyModel:
    """The toy model for the options."""
    return ToyModel(Architecture.from_options(opt), opt.toy_lambda)


def build_trainer(opt: argparse.Namespace, model: ToyModel) -> ToyTrainer:
    """The toy trainer around `model`."""
    return ToyTrainer(opt, model)
