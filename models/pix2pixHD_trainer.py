"""One object that owns the optimisers, the lr schedule, mixed precision and the training state."""
import argparse
import contextlib
import os
import random

import numpy as np
import torch

from util.distributed import average_gradients, broadcast_state, world_size
from util.util import atomic_write

from .pix2pixHD_model import Pix2PixHDModel, device_of
from .networks import ModelError

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a failed save); the message says what is intact."""


def make_adam(params: list, opt: argparse.Namespace) -> torch.optim.Optimizer:
    """The reference's Adam (lr, betas (beta1, 0.999)), fused: one pass over the weights per step instead of ~7."""
    # The same update as the reference's for-loop kernel up to float rounding: after one step about 1.5%
    # of the weights differ from it by 1 ulp (measured); the reference-step fixture agrees as before.
    return torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999), fused=True)


class Pix2PixHDTrainer:
    """Runs the reference's iteration: G step on G_GAN + G_GAN_Feat + G_VGG, then D step on (D_fake + D_real) / 2."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.device = device_of(opt)
        self.model = Pix2PixHDModel(opt).to(self.device)
        if world_size() > 1:
            if opt.norm == 'batch' and self.device.type == 'cuda':
                for label, net in self.model.networks_by_label().items():
                    setattr(self.model, f'net{label}', torch.nn.SyncBatchNorm.convert_sync_batchnorm(net))
            elif opt.norm == 'batch':
                print('--norm batch on CPU processes: batch statistics are per process (SyncBatchNorm needs CUDA)')
        nets = list(self.model.networks_by_label().values())
        broadcast_state(nets)
        if opt.channels_last and self.device.type == 'cpu':
            # Measured on torch 2.14 CPU: InstanceNorm2d's backward in channels-last gives wrong gradients
            # (relative error ~1e-2 to ~1 in the generator's first conv), so the CPU keeps NCHW.
            print('--channels_last is ignored on the CPU: PyTorch\'s CPU InstanceNorm backward is wrong in channels-last')
            opt.channels_last = False
        if opt.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if opt.compile:
            for net in nets:
                net.compile()  # in place: state_dict keys stay the reference's
        self.amp_dtype = AMP_DTYPES.get(opt.amp)
        # A GradScaler per optimiser: fp16 gradients of G and D have different ranges.
        use_scaler = opt.amp == 'fp16'
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.old_lr = opt.lr
        # Per loss, the first step at which it was NaN/Inf (-1: never), kept on the device so that
        # checking costs no host sync per step; check_finite() reads it at print and save time.
        self.first_nonfinite_step = torch.full((len(self.model.loss_names),), -1, dtype=torch.long, device=self.device)
        self.optimizer_G = self._make_optimizer_G(fix_global=opt.niter_fix_global > 0)
        self.params_D = list(self.model.netD.parameters())
        self.optimizer_D = make_adam(self.params_D, opt)

    def _make_optimizer_G(self, fix_global: bool) -> torch.optim.Optimizer:
        """Adam over G (+E); with --niter_fix_global only over the outermost local enhancer (+E)."""
        model = self.model
        if fix_global:
            prefix = f'model{self.opt.n_local_enhancers}'
            params = [value for key, value in model.netG.named_parameters() if key.startswith(prefix)]
            print(f'------------- Only training the local enhancer network (for {self.opt.niter_fix_global} epochs) ------------')
        else:
            params = list(model.netG.parameters())
        if model.netE is not None:
            params += list(model.netE.parameters())
        self.params_G = params
        self.fix_global = fix_global
        return make_adam(params, self.opt)

    def autocast(self) -> contextlib.AbstractContextManager:
        """torch.autocast in the --amp dtype, or nothing for float32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, data: dict, infer: bool = False, step: int = 0) -> tuple:
        """One iteration on a batch; returns (detached losses, fake image or None). No host sync.

        `step` (images seen so far) is recorded if a loss turns non-finite, for check_finite().
        """
        with self.autocast():
            losses, generated = self.model(data['label'], data['inst'], data['image'], data['feat'], infer=infer)
        nonfinite = ~torch.isfinite(torch.stack([losses[name].detach().float() for name in self.model.loss_names]))
        first_time = nonfinite & (self.first_nonfinite_step < 0)
        self.first_nonfinite_step = torch.where(first_time, torch.full_like(self.first_nonfinite_step, step), self.first_nonfinite_step)
        loss_D = (losses['D_fake'] + losses['D_real']) * 0.5
        loss_G = losses['G_GAN'] + losses.get('G_GAN_Feat', 0) + losses.get('G_VGG', 0)

        # Both backward passes run before either step changes weights in place. Each reaches only its own
        # network's parameters: G's backward gives D no gradients (the reference computes and discards
        # them), and D's stops at D even where D_fake shares G_GAN's pass of D (see shares_fake_pass),
        # whose graph must then survive D's backward for G's.
        self.optimizer_D.zero_grad(set_to_none=True)
        self.scaler_D.scale(loss_D).backward(inputs=self.params_D, retain_graph=self.model.shares_fake_pass)
        self.optimizer_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(loss_G).backward(inputs=self.params_G)

        average_gradients(self.params_G)
        self.scaler_G.step(self.optimizer_G)
        self.scaler_G.update()
        average_gradients(self.params_D)
        self.scaler_D.step(self.optimizer_D)
        self.scaler_D.update()
        return {name: value.detach() for name, value in losses.items()}, generated

    def check_finite(self) -> None:
        """Raise TrainingError naming the first loss that became NaN/Inf and when (one host sync)."""
        steps = self.first_nonfinite_step.tolist()
        bad = [(step, name) for step, name in zip(steps, self.model.loss_names) if step >= 0]
        if bad:
            step, name = min(bad)
            raise TrainingError(f"loss {name} became NaN or Inf at iteration {step} (images seen); stopped without saving, so the "
                                f"latest checkpoint on disk is the last good one; try a lower --lr, --amp off, or check the data")

    def update_fixed_params(self) -> None:
        """After --niter_fix_global epochs, train the whole generator (+E) from now on."""
        self.optimizer_G = self._make_optimizer_G(fix_global=False)
        print('------------ Now also finetuning global generator -----------')

    def update_learning_rate(self) -> None:
        """Linear decay: lr drops by lr / niter_decay after each epoch past niter."""
        lrd = self.opt.lr / self.opt.niter_decay
        lr = self.old_lr - lrd
        for optimizer in (self.optimizer_D, self.optimizer_G):
            for param_group in optimizer.param_groups:
                param_group['lr'] = lr
        print(f'update learning rate: {self.old_lr:f} -> {lr:f}')
        self.old_lr = lr

    # ---------------------------------------------------------------- saving
    def save(self, which_epoch: str, epoch: int, epoch_iter: int) -> None:
        """Reference-format weights plus `{which_epoch}_train_state.pth` (optimisers, scalers, lr, RNG).

        Never saves weights that went through a non-finite loss; a failed write leaves the previous files intact.
        """
        self.check_finite()
        try:
            self._write(which_epoch, epoch, epoch_iter)
        except OSError as error:
            raise TrainingError(f"saving the '{which_epoch}' checkpoint in {self.model.save_dir} failed ({error.strerror or error}); "
                                f"the previous checkpoint files are intact") from None

    def _write(self, which_epoch: str, epoch: int, epoch_iter: int) -> None:
        self.model.save(which_epoch)
        if which_epoch == 'latest':
            write_iter_file(self.model.save_dir, epoch, epoch_iter)
        state = {
            'epoch': epoch, 'epoch_iter': epoch_iter, 'lr': self.old_lr,
            'fix_global': self.fix_global,
            'optimizer_G': self.optimizer_G.state_dict(), 'optimizer_D': self.optimizer_D.state_dict(),
            'scaler_G': self.scaler_G.state_dict(), 'scaler_D': self.scaler_D.state_dict(),
            'rng': rng_state(),
        }
        path = os.path.join(self.model.save_dir, f'{which_epoch}_train_state.pth')
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load_training_state(self, which_epoch: str) -> bool:
        """Restore optimisers, scalers, lr and RNGs saved with the weights; False when there is no state file."""
        path = os.path.join(self.model.save_dir, f'{which_epoch}_train_state.pth')
        if not os.path.isfile(path):
            return False
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as error:  # truncated or pickle-bearing files alike
            raise ModelError(f"{path}: cannot read the training state ({str(error).splitlines()[0]}); delete it to resume from the weights only") from None
        if state['fix_global'] != self.fix_global:
            self.optimizer_G = self._make_optimizer_G(fix_global=state['fix_global'])
        self.optimizer_G.load_state_dict(state['optimizer_G'])
        self.optimizer_D.load_state_dict(state['optimizer_D'])
        self.scaler_G.load_state_dict(state['scaler_G'])
        self.scaler_D.load_state_dict(state['scaler_D'])
        self.old_lr = state['lr']
        for optimizer in (self.optimizer_D, self.optimizer_G):
            for param_group in optimizer.param_groups:
                param_group['lr'] = self.old_lr
        set_rng_state(state['rng'])
        return True


def read_iter_file(save_dir: str) -> tuple:
    """(start_epoch, epoch_iter) from save_dir/iter.txt ("epoch,epoch_iter"), or (1, 0) when absent/unreadable."""
    try:
        start_epoch, epoch_iter = np.loadtxt(os.path.join(save_dir, 'iter.txt'), delimiter=',', dtype=int)
        return int(start_epoch), int(epoch_iter)
    except (OSError, ValueError):
        return 1, 0


def write_iter_file(save_dir: str, epoch: int, epoch_iter: int) -> None:
    """iter.txt in the reference's format, written atomically."""
    atomic_write(os.path.join(save_dir, 'iter.txt'), lambda tmp: np.savetxt(tmp, (epoch, epoch_iter), delimiter=',', fmt='%d'))


def rng_state() -> dict:
    """Python, numpy and torch RNG states in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of rng_state()."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
