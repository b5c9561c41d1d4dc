"""CRN's training step: one Adam step of the generator on G_loss (the only network and the only loss)."""

import argparse
from collections.abc import Iterable

import torch

from util.errors import OptionsError

from ..common.trainer_base import TrainerBase
from .model import CRNModel


class TFAdam(torch.optim.Optimizer):
    """tf.train.AdamOptimizer's update: var -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).

    torch.optim.Adam adds eps after the bias correction of v instead, which moves weights with gradients below
    about 3e-7 differently (by up to ~25% of lr on the first step); this keeps the official step.
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        super().__init__(params, {'lr': lr, 'betas': betas, 'eps': eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update of every parameter that has a gradient (ApplyAdam's order of operations)."""
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for param in group['params']:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state['step'] = 0
                    state['m'] = torch.zeros_like(param)
                    state['v'] = torch.zeros_like(param)
                state['step'] += 1
                step = state['step']
                # m += (g - m) * (1 - beta1); v += (g^2 - v) * (1 - beta2), as TF's kernel writes them.
                state['m'].lerp_(param.grad, 1 - beta1)
                state['v'].lerp_(param.grad.square(), 1 - beta2)
                lr = group['lr'] * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
                param.addcdiv_(state['m'], state['v'].sqrt().add_(group['eps']), value=-lr)


class CRNTrainer(TrainerBase):
    """Owns the model and Adam over the trained refinement modules; train_step runs one official iteration."""

    def __init__(self, opt: argparse.Namespace, model: CRNModel) -> None:
        """Wrap `model` (built with the VGG19 of its loss: models.crn.read_files reads it) for training."""
        model = model.to(torch.device(opt.device))
        modules = model.netG.refinement_modules()
        if not 0 <= opt.crn_train_modules <= len(modules):
            raise OptionsError(
                f"--crn_train_modules {opt.crn_train_modules}: the generator has {len(modules)} refinement modules; "
                f"give 0 (all) to {len(modules)}"
            )
        super().__init__(model, opt)
        trained = modules[-opt.crn_train_modules :] if opt.crn_train_modules > 0 else modules
        # The modules that do not train get no gradients at all (demo_1024p.py: "due to memory limitation").
        for module in modules:
            module.requires_grad_(any(module is other for other in trained))
        self.params_G = [param for module in trained for param in module.parameters()]
        self.optimizer_G = TFAdam(self.params_G, lr=opt.lr, betas=(opt.beta1, 0.999))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser}."""
        return {'optimizer_G': self.optimizer_G}

    def iterate(self, batch: dict) -> tuple[dict, torch.Tensor]:
        """One iteration on a batch ({'label', 'image', ...} as the data loader gives it): (the losses, p0..p5 averaged;
        the first of the K images, clipped as the demos save them)."""
        losses, images = self.model(batch['label'], batch['image'])
        self.optimizer_G.zero_grad(set_to_none=True)
        losses['G_loss'].backward()
        self.optimizer_G.step()
        return {name: value.mean() for name, value in losses.items()}, images[:, 0].clamp(-1.0, 1.0)
