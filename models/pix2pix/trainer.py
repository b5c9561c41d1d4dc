"""pix2pix's optimisers, its order of updates (D first, then G against the updated D) and its lr schedule."""

import argparse

import torch

from util.errors import ModelError

from .model import Pix2PixModel


class Pix2PixTrainer:
    """Runs the authors' optimize_parameters: fake = G(A); D step on the detached fake and the real; G step with D frozen."""

    def __init__(self, model: Pix2PixModel, lr: float = 0.0002, beta1: float = 0.5, niter: int = 100, niter_decay: int = 100) -> None:
        if model.netD is None:
            raise ModelError("pix2pix trainer: the model has no discriminator; build it with is_train=True")
        self.model = model.train()
        self.netD: torch.nn.Module = model.netD
        self.lr = lr
        self.niter = niter
        self.niter_decay = niter_decay
        self.current_lr = lr
        self.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, 0.999))
        # The latest iteration's fake (detached), for display.
        self.generated: torch.Tensor | None = None

    @classmethod
    def from_options(cls, opt: argparse.Namespace, model: Pix2PixModel | None = None) -> 'Pix2PixTrainer':
        """A trainer on `model` (a fresh one from the options when None), moved to opt.device."""
        model = (model if model is not None else Pix2PixModel.from_options(opt)).to(torch.device(opt.device))
        return cls(model, opt.lr, opt.beta1, opt.niter, opt.niter_decay)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One iteration on the project's batch dict; returns the four losses, detached (no host sync)."""
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

        # G's step scores the fake with the D just updated; frozen, D gets no gradients from it.
        netD.requires_grad_(False)
        self.optimizer_G.zero_grad()
        losses_G = model.generator_losses(input_A, fake_B, real_B)
        (losses_G['G_GAN'] + losses_G['G_L1']).backward()
        self.optimizer_G.step()

        self.generated = fake_B.detach()
        losses = {**losses_G, **losses_D}
        return {name: losses[name].detach() for name in model.loss_names}

    def update_learning_rate(self, epoch: int) -> None:
        """The authors' linear policy for the 1-based `epoch` about to run: lr until niter, then linearly towards 0 over niter_decay."""
        self._set_lr(self.lr * (1.0 - max(0, epoch - self.niter) / float(self.niter_decay + 1)))

    def _set_lr(self, lr: float) -> None:
        self.current_lr = lr
        for optimizer in (self.optimizer_G, self.optimizer_D):
            for group in optimizer.param_groups:
                group['lr'] = lr

    def training_state(self) -> dict:
        """Optimisers and the current lr: what resuming needs besides the weights."""
        return {'lr': self.current_lr, 'optimizer_G': self.optimizer_G.state_dict(), 'optimizer_D': self.optimizer_D.state_dict()}

    def restore_training_state(self, state: dict) -> None:
        """Inverse of training_state()."""
        self.optimizer_G.load_state_dict(state['optimizer_G'])
        self.optimizer_D.load_state_dict(state['optimizer_D'])
        self._set_lr(state['lr'])
