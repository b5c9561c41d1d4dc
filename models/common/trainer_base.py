"""What every method's trainer shares with train.py's loop: AMP autocast, NaN/Inf tracking of the losses, weight
checks, the lr schedule's bookkeeping, the training state and saving a checkpoint through util/checkpoint.py.

A method's trainer subclasses TrainerBase and writes `iterate(data)` (its own order of G and D updates),
`optimizers()` and, if its schedule is not pix2pixHD's linear decay, `lr_after(epoch)`. Under torchrun the first
train_step puts every network with trained parameters in its own DistributedDataParallel (which averages the
gradients during each backward); a forward pass whose backward gives that network no gradients (a frozen D
scoring G's fake) runs inside `self.no_sync(net)`.
"""

import argparse
import contextlib
import os
from typing import Any

import torch
import torch._functorch.config as functorch_config

from util.checkpoint import rng_state, save_checkpoint, set_rng_state
from util.devices import autotune_convolutions
from util.distributed import bare, data_parallel, no_sync, world_size
from util.errors import OptionsError, TrainingError
from util.health import first_nonfinite, largest_magnitudes
from util.records import experiment_dir

from .normalization import InstanceNorm2d

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class TrainerBase:
    """train.py's side of a trainer: train_step, check_finite, check_weights, update_learning_rate, save, resume."""

    # What a subclass that does more declares: GradScalers for --amp fp16, micro-batches for --accum_steps.
    scales_fp16 = False
    accumulates = False

    def __init__(self, model: Any, opt: argparse.Namespace | None = None, lr: float = 0.0002) -> None:
        """`model` on its device; `opt` (None for a trainer driven by hand, e.g. a fixture test) gives --amp, the lr
        schedule (--lr, --niter, --niter_decay, --beta1) and the experiment folder checkpoints go to."""
        # Typed Any: each method's model has its own networks (netG, netD, ...) beside the common interface.
        self.model: Any = model
        self.opt = opt
        self.device = next(model.parameters()).device
        if opt is not None and opt.amp == 'fp16' and not self.scales_fp16:
            # fp16 needs a GradScaler per optimiser, which only pix2pixHD's trainer has; bf16 has float32's range.
            raise OptionsError(f"--amp fp16: --model {opt.model} trains in float32 or with --amp bf16; pass --amp bf16 or --amp off")
        self.amp_dtype = AMP_DTYPES.get(opt.amp) if opt is not None else None
        self.lr = opt.lr if opt is not None else lr
        self.current_lr = self.lr
        # Which checkpoint this run last saved (or resumed from), all of it checked finite; None: none yet.
        self.last_good: str | None = None
        # Per loss, the first step at which it was NaN/Inf (-1: never), kept on the device (no host sync per step).
        self.first_nonfinite_step = torch.full((len(model.loss_names),), -1, dtype=torch.long, device=self.device)
        if opt is not None and getattr(opt, 'accum_steps', 1) > 1 and not self.accumulates:
            # The method's iterate() steps its optimisers itself; only pix2pixHD's trainer accumulates micro-batches.
            raise OptionsError(f"--accum_steps {opt.accum_steps}: --model {opt.model} steps once per batch; use --accum_steps 1")
        self.data_parallel = False
        if opt is not None:
            self.prepare_networks(opt)

    def prepare_networks(self, opt: argparse.Namespace) -> None:
        """What every method's networks get from the options: cuDNN autotuning, SyncBatchNorm under torchrun on GPUs,
        --channels_last, --compile (also for a trainer built without builders.build_model, e.g. by a benchmark)."""
        autotune_convolutions(opt)
        has_batch_norm = any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in self.model.modules())
        if world_size() > 1 and has_batch_norm:
            if self.device.type == 'cuda':
                # Parameters are kept (the optimisers' stay valid) and state_dict keys are BatchNorm's.
                for name, net in self.model.networks_by_name().items():
                    setattr(self.model, f'net{name}', torch.nn.SyncBatchNorm.convert_sync_batchnorm(net))
            elif opt.rank == 0:
                print('batch normalisation on CPU processes: batch statistics are per process (SyncBatchNorm needs CUDA)')
        decomposed = getattr(opt, 'instance_norm_impl', 'native') == 'decomposed'
        for module in self.model.modules():
            if isinstance(module, InstanceNorm2d):
                module.decomposed = decomposed
        if opt.channels_last:
            # torch 2.13's type stubs lack the memory_format overload of Module.to (the call itself works from 1.5 on).
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload,unused-ignore]
            for module in self.model.modules():
                if isinstance(module, InstanceNorm2d):
                    # PyTorch's backward is wrong otherwise (normalization.py); the decomposed one is autograd's
                    module.contiguous_gradient = not decomposed
        if opt.compile:
            # A method's backward may keep its graph for a second one (pix2pixHD's D and G share one pass of D over the
            # fakes: retain_graph=True). A compiled backward that donates its buffers refuses that, as torch compiles
            # one once a new input size recompiles with dynamic shapes; without donation it only frees them later.
            if hasattr(functorch_config, 'donated_buffer'):  # torch 2.6 and later
                functorch_config.donated_buffer = False
            if os.environ.get('ATEN_CPU_CAPABILITY') and self.device.type == 'cpu':
                # torch 2.14's inductor reuses compiled graphs from its on-disk cache whatever ATEN_CPU_CAPABILITY says:
                # code of one vector width then runs under another (NaN losses, or a crash; docs/TROUBLESHOOTING.md).
                # Without the graph caches it compiles afresh for the capability in force.
                import torch._inductor.config as inductor_config  # only here: importing inductor costs every other run

                inductor_config.fx_graph_cache = False
                if hasattr(functorch_config, 'enable_autograd_cache'):  # torch 2.6 and later
                    functorch_config.enable_autograd_cache = False
            for net in self.model.networks_by_name().values():
                # in place: state_dict keys stay the reference's; reduce-overhead records CUDA graphs (skipped on the CPU)
                net.compile(mode=getattr(opt, 'compile_mode', 'default'))

    # ---------------------------------------------------------------- what a method writes
    def iterate(self, data: dict) -> tuple[dict, torch.Tensor]:
        """One iteration of the method on a batch: ({loss name: tensor}, the synthesized images B x C x H x W)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser}."""
        raise NotImplementedError

    def lr_after(self, epoch: int) -> float:
        """The lr once `epoch` has ended: --lr for --niter epochs, then linearly down to 0 over --niter_decay (pix2pixHD's)."""
        niter, niter_decay = self._schedule()
        decayed = max(0, epoch - niter)
        if decayed == 0:
            return self.lr
        return self.lr * max(0.0, 1.0 - decayed / niter_decay) if niter_decay > 0 else 0.0

    def _schedule(self) -> tuple[int, int]:
        """(--niter, --niter_decay)."""
        if self.opt is None:
            raise TrainingError('this trainer was built without options: it has no lr schedule')
        return self.opt.niter, self.opt.niter_decay

    # ---------------------------------------------------------------- train.py's interface
    def autocast(self) -> contextlib.AbstractContextManager:
        """torch.autocast in the --amp dtype, or nothing for float32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def wrap_networks(self) -> None:
        """Under torchrun, each network with trained parameters in its own DistributedDataParallel (in the model, for its forward).

        Run at the first step, once the method has chosen what trains (requires_grad): DDP expects a gradient for
        each of those in every synchronised backward. Construction gives every rank rank 0's weights.
        """
        self.data_parallel = True
        for name, net in self.model.networks_by_name().items():
            if any(param.requires_grad for param in net.parameters()):
                self.wrap_network(name)

    def wrap_network(self, name: str) -> None:
        """Under torchrun, the model's net<name> in its own DistributedDataParallel (for its forward); nothing in one process."""
        if world_size() > 1:
            setattr(self.model, f'net{name}', data_parallel(self.model.networks_by_name()[name], self.device))

    def networks(self) -> dict[str, torch.nn.Module]:
        """The model's networks by checkpoint name, outside any DistributedDataParallel (the reference's keys, no `module.`)."""
        return {name: bare(net) for name, net in self.model.networks_by_name().items()}

    def no_sync(self, net: torch.nn.Module) -> contextlib.AbstractContextManager:
        """A pass of `net` whose backward gives it no gradients (nothing for DDP to wait for); nothing in one process."""
        return no_sync([net])

    def train_step(self, data: dict, infer: bool = False, step: int = 0) -> tuple[dict, torch.Tensor | None]:
        """One iteration: (detached losses, the synthesized images if `infer` else None); no host sync.

        `step` (images seen so far) is recorded if a loss turns non-finite, for check_finite().
        """
        if not self.data_parallel:
            self.wrap_networks()
        with self.autocast():
            losses, generated = self.iterate(data)
        detached = {name: losses[name].detach() for name in self.model.loss_names}
        self.record_nonfinite(detached, step)
        return detached, (generated.detach() if infer else None)

    def record_nonfinite(self, losses: dict, step: int) -> None:
        """Note `step` for every loss that is NaN/Inf for the first time (on the device: no host sync per step)."""
        nonfinite = ~torch.isfinite(torch.stack([losses[name].detach().float() for name in self.model.loss_names]))
        first_time = nonfinite & (self.first_nonfinite_step < 0)
        self.first_nonfinite_step = torch.where(first_time, torch.full_like(self.first_nonfinite_step, step), self.first_nonfinite_step)

    def check_finite(self) -> None:
        """Raise TrainingError naming the first loss that became NaN/Inf and when (one host sync)."""
        steps = self.first_nonfinite_step.tolist()
        bad = [(step, name) for step, name in zip(steps, self.model.loss_names) if step >= 0]
        if bad:
            step, name = min(bad)
            raise TrainingError(
                f"loss {name} became NaN or Inf at iteration {step} (images seen); stopped without saving ({self.saved_note()}); "
                f"try a lower --lr, --amp off, or check the data"
            )

    def saved_note(self) -> str:
        """What this run can truthfully say about the checkpoints on disk when it stops on a non-finite value."""
        if self.last_good is None:
            return 'nothing was saved by this run'
        return f'{self.last_good} was checked and holds only finite values'

    def check_weights(self, epoch: int, epoch_iter: int) -> dict:
        """{'weights of X': largest |weight|} per network (one host sync); TrainingError on NaN/Inf."""
        magnitudes = largest_magnitudes({f'network {name}': net.state_dict() for name, net in self.networks().items()})
        bad = first_nonfinite(magnitudes)
        if bad is not None:
            raise TrainingError(
                f"{bad} holds NaN or Inf values at epoch {epoch}, iteration {epoch_iter}; stopped without saving ({self.saved_note()}); "
                f"try a lower --lr or --amp off"
            )
        return {
            f'weights of {group.split()[-1]}': max((value for _, value in entries), default=0.0) for group, entries in magnitudes.items()
        }

    def end_epoch(self, epoch: int) -> None:
        """`epoch` has ended: set up the next one (a method adds what its schedule changes, e.g. which parameters train)."""
        self.update_learning_rate(epoch)

    def update_learning_rate(self, epoch: int) -> None:
        """`epoch` has ended: set the lr the next one runs with."""
        lr = self.lr_after(epoch)
        if lr != self.current_lr:
            print(f'update learning rate: {self.current_lr:f} -> {lr:f}')
        self._set_lr(lr)

    def _set_lr(self, lr: float) -> None:
        self.current_lr = lr
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group['lr'] = lr

    # ---------------------------------------------------------------- checkpoints
    def training_state(self, epoch: int = 0, epoch_iter: int = 0) -> dict:
        """Optimisers, the current lr and RNG states: what --continue_train needs besides the weights."""
        state = {'epoch': epoch, 'epoch_iter': epoch_iter, 'lr': self.current_lr, 'rng': rng_state()}
        return {**state, **{name: optimizer.state_dict() for name, optimizer in self.optimizers().items()}}

    def restore_training_state(self, state: dict, changed: dict | None = None) -> None:
        """Inverse of training_state(). `changed` ({flag: (saved, now)}): a new --lr/--niter/--niter_decay recomputes the
        lr at the resumed epoch, a new --beta1 replaces the saved one."""
        changed = changed or {}
        for name, optimizer in self.optimizers().items():
            optimizer.load_state_dict(state[name])
        if {'lr', 'niter', 'niter_decay'} & set(changed):
            self._set_lr(self.lr_after(state['epoch'] - 1))
            print(f'--continue_train: the lr schedule follows the new flags: lr {self.current_lr:g} from epoch {state["epoch"]}')
        else:
            self._set_lr(state['lr'])
        if 'beta1' in changed and self.opt is not None:
            for optimizer in self.optimizers().values():
                for group in optimizer.param_groups:
                    group['betas'] = (self.opt.beta1, group['betas'][1])
        set_rng_state(state['rng'])

    def save(self, which_epoch: str, epoch: int, epoch_iter: int) -> None:
        """Write the checkpoint `which_epoch` (iter.txt too for 'latest') as one transaction; never after a NaN/Inf loss."""
        if self.opt is None:
            raise TrainingError('this trainer was built without options: it has no experiment folder to save to')
        self.check_finite()
        save_checkpoint(
            experiment_dir(self.opt),
            which_epoch,
            self.networks(),
            self.training_state(epoch, epoch_iter),
            (epoch, epoch_iter) if which_epoch == 'latest' else None,
        )
        self.last_good = f"the '{which_epoch}' checkpoint saved at epoch {epoch}, iteration {epoch_iter}"
