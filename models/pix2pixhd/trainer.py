"""pix2pixHD's trainer: its optimisers, --niter_fix_global, fp16 GradScalers and --accum_steps on TrainerBase."""

import argparse
import contextlib
from collections.abc import Sequence

import torch

from util.distributed import no_sync

from ..common.trainer_base import TrainerBase
from .model import Pix2PixHDModel, read_files

# --adam_impl: torch.optim.Adam's keyword arguments for each of its kernels (the same update, up to float rounding).
ADAM_KERNELS: dict[str, dict[str, bool | None]] = {
    'fused': {'fused': True, 'foreach': None},  # one pass over weights, gradients and moments per step
    'foreach': {'fused': None, 'foreach': True},  # one multi-tensor kernel per arithmetic operation (~7 passes)
    'for_loop': {'fused': None, 'foreach': False},  # the reference's: ~7 kernels per parameter tensor
}


def make_adam(params: list, opt: argparse.Namespace) -> torch.optim.Optimizer:
    """The reference's Adam (lr, betas (beta1, 0.999)) with the kernel --adam_impl names (default fused)."""
    # The same update as the reference's for-loop kernel up to float rounding: after one step about 1.5%
    # of the weights differ from it by 1 ulp (measured); the reference-step fixture agrees as before.
    kernel = ADAM_KERNELS[getattr(opt, 'adam_impl', 'fused')]
    return torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999), fused=kernel['fused'], foreach=kernel['foreach'])


class Pix2PixHDTrainer(TrainerBase):
    """Runs the reference's iteration: G step on G_GAN + G_GAN_Feat + G_VGG, then D step on (D_fake + D_real) / 2."""

    scales_fp16 = True
    accumulates = True
    opt: argparse.Namespace  # always built from options

    def __init__(self, opt: argparse.Namespace, model: Pix2PixHDModel | None = None) -> None:
        """Wrap `model` (a fresh Pix2PixHDModel when None) for training: devices, processes, optimisers, AMP."""
        device = torch.device(opt.device)
        super().__init__((model if model is not None else Pix2PixHDModel(opt, **read_files(opt))).to(device), opt)
        # A GradScaler per optimiser: fp16 gradients of G and D have different ranges.
        use_scaler = opt.amp == 'fp16'
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.params_D = list(self.model.networks_by_name()['D'].parameters())
        self.optimizer_D = make_adam(self.params_D, opt)
        self.optimizer_G = self._make_optimizer_G(fix_global=opt.niter_fix_global > 0)
        # Wrapped here, not at the first step (train_step is this trainer's own): G by _make_optimizer_G, over the
        # parameters it trains, so that G's DDP follows --niter_fix_global.
        for name in self.model.networks_by_name():
            if name != 'G':
                self.wrap_network(name)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser} (the reference's names)."""
        return {'optimizer_G': self.optimizer_G, 'optimizer_D': self.optimizer_D}

    def _make_optimizer_G(self, fix_global: bool) -> torch.optim.Optimizer:
        """Adam over G (+E); with --niter_fix_global only over the outermost local enhancer (+E)."""
        nets = self.model.networks_by_name()
        prefix = f'model{self.opt.n_local_enhancers}'
        if fix_global:
            print(f'------------- Only training the local enhancer network (for {self.opt.niter_fix_global} epochs) ------------')
        # The fixed part of G takes no gradient at all (as the backward's inputs= did before): DDP then
        # expects none for it, and G's DDP is rebuilt over the whole generator when it is unfixed.
        for key, value in nets['G'].named_parameters():
            value.requires_grad_(not fix_global or key.startswith(prefix))
        params = [value for value in nets['G'].parameters() if value.requires_grad]
        if 'E' in nets:
            params += list(nets['E'].parameters())
        self.params_G = params
        self.fix_global = fix_global
        self.wrap_network('G')
        return make_adam(params, self.opt)

    def _no_sync_all(self) -> contextlib.ExitStack:
        """DDP's no_sync on every network (gradients accumulate locally); nothing for one process."""
        return no_sync(self.model.networks_by_name(wrapped=True).values())

    def train_step(self, data: dict | Sequence[dict], infer: bool = False, step: int = 0) -> tuple:
        """One iteration on a batch, or on --accum_steps micro-batches; returns (detached losses, fake image or None).

        No host sync. The losses are the mean over the micro-batches; the fake image is the last one's.
        `step` (images seen so far) is recorded if a loss turns non-finite, for check_finite().
        """
        batches = [data] if isinstance(data, dict) else list(data)
        self.optimizer_D.zero_grad(set_to_none=True)
        self.optimizer_G.zero_grad(set_to_none=True)
        total: dict = {}
        generated = None
        for index, batch in enumerate(batches):
            # Gradients of all but the last micro-batch accumulate locally; the last one's backward
            # all-reduces the sum (each micro-batch's loss is divided by their number: the mean).
            last = index == len(batches) - 1
            with contextlib.nullcontext() if last else self._no_sync_all():
                losses, generated = self._accumulate(batch, infer and last, step, len(batches))
            for name, value in losses.items():
                total[name] = total.get(name, 0) + value / len(batches)
        self.scaler_G.step(self.optimizer_G)
        self.scaler_G.update()
        self.scaler_D.step(self.optimizer_D)
        self.scaler_D.update()
        return total, generated

    def _accumulate(self, data: dict, infer: bool, step: int, n_batches: int) -> tuple:
        """Forward and both backward passes of one (micro-)batch, adding its gradients / n_batches to the networks'."""
        with self.autocast():
            losses, generated = self.model(data['label'], data['inst'], data['image'], data['feat'], infer=infer)
        self.record_nonfinite(losses, step)
        loss_D = (losses['D_fake'] + losses['D_real']) * 0.5
        loss_G = losses['G_GAN'] + losses.get('G_GAN_Feat', 0) + losses.get('G_VGG', 0)
        if n_batches > 1:
            loss_D, loss_G = loss_D / n_batches, loss_G / n_batches

        # Both backward passes run before either step changes weights in place. Each reaches only its own
        # network's parameters: G's backward gives D no gradients (the reference computes and discards
        # them), and D's stops at D even where D_fake shares G_GAN's pass of D (see shares_fake_pass),
        # whose graph must then survive D's backward for G's. Under DDP this ordering is what its reducers
        # need: every parameter of D gets its gradient in D's backward only, and of G and E in G's only, so
        # each network's all-reduce runs once, during its own backward; G's backward through D's passes
        # (G_GAN, feature matching) reaches no D parameter and so starts no D communication.
        self.scaler_D.scale(loss_D).backward(inputs=self.params_D, retain_graph=self.model.shares_fake_pass)
        self.scaler_G.scale(loss_G).backward(inputs=self.params_G)
        return {name: value.detach() for name, value in losses.items()}, generated

    def end_epoch(self, epoch: int) -> None:
        """After --niter_fix_global epochs the whole generator trains; then the lr schedule moves (TrainerBase)."""
        if self.opt.niter_fix_global != 0 and epoch == self.opt.niter_fix_global:
            self.update_fixed_params()
        super().end_epoch(epoch)

    def update_fixed_params(self) -> None:
        """After --niter_fix_global epochs, train the whole generator (+E) from now on (G's DDP is rebuilt over all of G)."""
        self.optimizer_G = self._make_optimizer_G(fix_global=False)
        print('------------ Now also finetuning global generator -----------')

    # ---------------------------------------------------------------- checkpoints
    def training_state(self, epoch: int = 0, epoch_iter: int = 0) -> dict:
        """TrainerBase's state plus whether the global generator is still fixed and the fp16 scalers."""
        state = super().training_state(epoch, epoch_iter)
        return {**state, 'fix_global': self.fix_global, 'scaler_G': self.scaler_G.state_dict(), 'scaler_D': self.scaler_D.state_dict()}

    def restore_training_state(self, state: dict, changed: dict | None = None) -> None:
        """Inverse of training_state(): G's optimiser rebuilt first if the global generator was still fixed; a change
        of --amp starts fresh GradScalers where the saved run had none (the rest: TrainerBase)."""
        if state['fix_global'] != self.fix_global:
            self.optimizer_G = self._make_optimizer_G(fix_global=state['fix_global'])
        super().restore_training_state(state, changed)
        # A saved optimiser's groups carry the kernel it ran with; the one --adam_impl names now runs from here on.
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group.update(ADAM_KERNELS[getattr(self.opt, 'adam_impl', 'fused')])
        for scaler, saved in ((self.scaler_G, state['scaler_G']), (self.scaler_D, state['scaler_D'])):
            if scaler.is_enabled() and saved:  # a run without fp16 saved no scale: the new scaler starts fresh
                scaler.load_state_dict(saved)
