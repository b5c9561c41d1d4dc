"""pix2pix's optimisers, its order of updates (D first, then G against the updated D) and its lr schedule."""

import argparse

import torch

from util.errors import ModelError

from ..common.trainer_base import TrainerBase
from .model import Pix2PixModel


class Pix2PixTrainer(TrainerBase):
    """Runs the authors' optimize_parameters: fake = G(A); D step on the detached fake and the real; G step with D frozen."""

    def __init__(
        self,
        model: Pix2PixModel,
        lr: float = 0.0002,
        beta1: float = 0.5,
        niter: int = 100,
        niter_decay: int = 100,
        opt: argparse.Namespace | None = None,
    ) -> None:
        """Adam for G and D; `opt` (train.py's options) for --amp and the experiment folder (None: driven by hand)."""
        if model.netD is None:
            raise ModelError("pix2pix trainer: the model has no discriminator; build it with is_train=True")
        super().__init__(model.train(), opt, lr)
        self.netD: torch.nn.Module = model.netD
        self.niter = niter
        self.niter_decay = niter_decay
        self.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, 0.999))

    @classmethod
    def from_options(cls, opt: argparse.Namespace, model: Pix2PixModel | None = None) -> 'Pix2PixTrainer':
        """A trainer on `model` (a fresh one from the options when None), moved to opt.device."""
        model = (model if model is not None else Pix2PixModel.from_options(opt)).to(torch.device(opt.device))
        return cls(model, opt.lr, opt.beta1, opt.niter, opt.niter_decay, opt)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser}."""
        return {'optimizer_G': self.optimizer_G, 'optimizer_D': self.optimizer_D}

    def iterate(self, batch: dict) -> tuple[dict, torch.Tensor]:
        """One iteration on the project's batch dict: (the four losses, the fake)."""
        model = self.model
        netD = self.netD
        input_A = model.encode_input(batch['label'], batch.get('inst'))
        real_B = batch['image'].to(model.device, non_blocking=True)
        fake_B = model(input_A)

        netD.requires_grad_(True)
        self.optimizer_D.zero_grad()
        losses_D = model.discriminator_losses(input_A, fake_B, real_B)
        ((losses_D['D_fake'] + losses_D['D_real']) * 0.5).backward()
        self.optimizer_D.step()

        # G's step scores the fake with the D just updated; frozen, D gets no gradients from it (so, under
        # torchrun, its DDP waits for none).
        netD.requires_grad_(False)
        self.optimizer_G.zero_grad()
        with self.no_sync(model.netD):
            losses_G = model.generator_losses(input_A, fake_B, real_B)
        (losses_G['G_GAN'] + losses_G['G_L1']).backward()
        self.optimizer_G.step()
        return {**losses_G, **losses_D}, fake_B

    def _schedule(self) -> tuple[int, int]:
        """(niter, niter_decay) as given to the constructor."""
        return self.niter, self.niter_decay

    def lr_after(self, epoch: int) -> float:
        """The authors' linear policy for the epoch after `epoch`: lr until niter, then linearly towards 0 over niter_decay."""
        return self.lr * max(0.0, 1.0 - max(0, epoch + 1 - self.niter) / float(self.niter_decay + 1))
