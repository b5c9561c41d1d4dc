"""pix2pix's computations: input encoding, G, the four losses and inference (no optimisers, no file I/O)."""

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.distributed import bare
from util.errors import ModelError
from util.image_pool import ImagePool

from ..common.labels import get_edges, one_hot_label
from ..common.losses import GANLoss
from .options import Architecture, build_networks


class Pix2PixModel(nn.Module):
    """Owns netG (and netD when training) and computes pix2pix's losses G_GAN, G_L1, D_real, D_fake."""

    loss_names = ('G_GAN', 'G_L1', 'D_real', 'D_fake')

    def __init__(
        self,
        arch: Architecture,
        is_train: bool = True,
        gan_mode: str = 'vanilla',
        lambda_L1: float = 100.0,
        pool_size: int = 0,
        eval_mode: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.lambda_L1 = lambda_L1
        self.eval_mode = eval_mode
        nets = build_networks(arch)
        self.netG = nets['G']
        # The authors build and load only G at test time; typed Any so the training paths read without None checks.
        self.netD: Any = nets['D'] if is_train else None
        self.fake_pool = ImagePool(pool_size)
        # The authors' GANLoss: 'vanilla' is BCE on logits, 'lsgan' MSE; one D output, so one "scale".
        self.criterionGAN = GANLoss(use_lsgan=gan_mode == 'lsgan')

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Pix2PixModel':
        """The model the parsed options describe (training flags only when opt.isTrain)."""
        if opt.isTrain:
            return cls(Architecture.from_options(opt), True, opt.gan_mode, opt.lambda_L1, opt.pool_size, opt.eval)
        return cls(Architecture.from_options(opt), False, eval_mode=opt.eval)

    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return next(self.netG.parameters()).device

    def synthesizer(self) -> nn.Module:
        """The network test.py's images come from, on what inference() feeds it (--export_onnx exports it)."""
        return bare(self.netG)

    def networks_by_name(self) -> dict:
        """{'G': netG, 'D': netD} for the networks this model has (the names in checkpoint files)."""
        nets = {'G': self.netG, 'D': self.netD}
        return {name: bare(net) for name, net in nets.items() if net is not None}  # the trainer's DDP (torchrun) unwrapped

    # ---------------------------------------------------------------- inputs
    def encode_input(self, label: torch.Tensor, inst: torch.Tensor | None = None) -> torch.Tensor:
        """G's input on the model's device: one-hot label (or the RGB/--input_nc image with --label_nc 0) plus the edge map."""
        size = 2**self.arch.num_downs
        height, width = label.shape[-2:]
        if height % size or width % size:
            raise ModelError(
                f"pix2pix U-Net with {self.arch.num_downs} levels: input {width}x{height} must be a multiple of {size} in both "
                f"sides; resize (--loadSize/--fineSize) or use a --netG U-Net whose size divides both (unet_32 ... unet_256)"
            )
        label = label.to(self.device, non_blocking=True)
        encoded = label.float() if self.arch.label_nc == 0 else one_hot_label(label, self.arch.label_nc)
        if not self.arch.no_instance:
            inst_map = cast(torch.Tensor, inst).to(self.device, non_blocking=True)  # given whenever --no_instance is off
            encoded = torch.cat((encoded, get_edges(inst_map)), dim=1)
        return encoded

    # ---------------------------------------------------------------- losses
    def forward(self, input_A: torch.Tensor) -> torch.Tensor:
        """G(A): the fake image."""
        return self.netG(input_A)

    def discriminator_losses(self, input_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor) -> dict:
        """D_fake on the (pooled) fake, detached from G, then D_real; D runs in that order, as the authors' backward_D."""
        fake_AB = self.fake_pool.query(torch.cat((input_A, fake_B), 1))
        loss_D_fake = self.criterionGAN([[self.netD(fake_AB.detach())]], False)
        loss_D_real = self.criterionGAN([[self.netD(torch.cat((input_A, real_B), 1))]], True)
        return {'D_fake': loss_D_fake, 'D_real': loss_D_real}

    def generator_losses(self, input_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor) -> dict:
        """G_GAN (D should call the fake real) and lambda_L1 * L1(fake, real)."""
        loss_G_GAN = self.criterionGAN([[self.netD(torch.cat((input_A, fake_B), 1))]], True)
        loss_G_L1 = F.l1_loss(fake_B, real_B) * self.lambda_L1
        return {'G_GAN': loss_G_GAN, 'G_L1': loss_G_L1}

    # ---------------------------------------------------------------- inference
    @contextlib.contextmanager
    def _test_mode(self) -> Iterator[None]:
        """G in the authors' test mode: train mode (batch statistics, dropout) unless --eval; restored afterwards."""
        was_training = self.netG.training
        self.netG.train(not self.eval_mode)
        try:
            yield
        finally:
            self.netG.train(was_training)

    @torch.no_grad()
    def inference(self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None) -> torch.Tensor:
        """Synthesize images from label maps (and instance maps) as the authors' test.py does (`image` is unused)."""
        input_A = self.encode_input(label, inst)
        with self._test_mode():
            return self.netG(input_A)
