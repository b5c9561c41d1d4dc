"""Data-parallel training over torchrun's processes (one per GPU, gloo on CPU): each trained network wrapped in
torch.nn.parallel.DistributedDataParallel (which averages the gradients), plus what DDP does not do: the
process group, loss averaging for the logs, and agreeing on when to stop."""

import contextlib
import inspect
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import OptionsError

T = TypeVar('T')


def launched_by_torchrun() -> bool:
    """True when torchrun (or torch.distributed.run) started this process as one of several."""
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def init_distributed(opt) -> None:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); nothing for one process.

    The options already hold torchrun's rank, world size and this process's GPU (settled at parse time).
    """
    if opt.world_size == 1 or dist.is_initialized():  # already joined (several runs in one process)
        return
    if opt.gpu_ids:
        torch.cuda.set_device(opt.gpu_ids[0])
    backend = 'nccl' if opt.gpu_ids else 'gloo'
    if not shares_store_across_restarts():
        dist.init_process_group(backend=backend)
        return
    # torchrun's own store outlives its workers: after a restart it still holds the previous attempt's
    # addresses, which the new ranks would read (gloo: "connection refused"; NCCL: a stale unique id)
    # before the peers overwrite them. Each attempt gets its own keys. On one node every worker has
    # the same restart count; across nodes the agents count differently (one restarted by a peer's
    # failure does not count it), so there torchrun must give each attempt a fresh store.
    if int(os.environ.get('LOCAL_WORLD_SIZE', '1')) != opt.world_size:
        raise OptionsError(
            f"torchrun --max-restarts {os.environ.get('TORCHELASTIC_MAX_RESTARTS')} across nodes needs a fresh store per attempt: "
            "set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's environment (scripts/slurm_train_512p.sh does)"
        )
    store, rank, size = next(dist.rendezvous('env://'))
    attempt_store = dist.PrefixStore(f'pix2pixHD_attempt_{elastic_restart()}', store)
    dist.init_process_group(backend=backend, store=attempt_store, rank=rank, world_size=size)


def shares_store_across_restarts() -> bool:
    """True under torchrun --max-restarts N > 0 when the workers use torchrun's store (its default), which restarts keep."""
    return os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True' and int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', '0')) > 0


def data_parallel(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`net` in its own DistributedDataParallel under torchrun (every model's trainer wraps each network it trains); `net` alone otherwise.

    Call it once the network is on `device` and holds the parameters it trains (requires_grad set): DDP
    expects a gradient for exactly those in every synchronised backward. Construction broadcasts rank 0's
    parameters and buffers, so every rank starts from rank 0's weights (with or without --seed). Gradients
    are averaged in buckets while the backward still runs, overlapping communication with computation;
    gradient_as_bucket_view: the gradients are views into the buckets, no extra copy of them per step.
    Buffers are not broadcast before each forward: InstanceNorm has none; SyncBatchNorm (GPUs) computes the
    same running statistics on every rank; per-process BatchNorm on CPUs keeps its own (the checkpoint holds
    rank 0's).
    """
    if world_size() == 1:
        return net
    # torch >= 2.13 names it forward_sync_buffers (its broadcast_buffers=False also skips them at construction).
    no_forward_sync: dict[str, Any] = (
        {'forward_sync_buffers': False}
        if 'forward_sync_buffers' in inspect.signature(DistributedDataParallel).parameters
        else {'broadcast_buffers': False}
    )
    device_ids = [device.index] if device.type == 'cuda' else None
    return DistributedDataParallel(net, device_ids=device_ids, gradient_as_bucket_view=True, **no_forward_sync)


def bare(net: T) -> T:
    """The network inside a DistributedDataParallel (whose state_dict has the reference's keys, no `module.`), else `net`."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def no_sync(nets: Iterable[torch.nn.Module]) -> contextlib.ExitStack:
    """DDP's no_sync on every wrapped network of `nets` (gradients accumulate locally, for --accum_steps); nothing otherwise."""
    stack = contextlib.ExitStack()
    for net in nets:
        if isinstance(net, DistributedDataParallel):
            stack.enter_context(net.no_sync())
    return stack


def world_size() -> int:
    """Number of processes training together (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_values(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over all ranks (for logging losses)."""
    if world_size() > 1:
        values = all_reduce_sum(values.clone())
        values /= world_size()
    return values


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """`values` summed in place over torchrun's processes, returned once the backend no longer holds it.

    gloo runs each collective on a thread of its own, which drops its reference to the tensor only after
    all_reduce has returned, and must take the GIL to do so. A process that exits right after its last
    collective can reach interpreter shutdown first: the thread then cannot take the GIL and the process
    aborts ("terminate called without an active exception", exit -6: 5 of 120 BigGAN torchrun runs
    on a loaded 2-core machine). So wait,
    GIL released, until that reference is gone (the tensor's Python reference count is back where it was).
    """
    held = sys.getrefcount(values)
    dist.all_reduce(values)
    if dist.get_backend() == 'gloo':
        # Released within milliseconds; the deadline only bounds a torch that would keep the tensor.
        deadline = time.monotonic() + 1.0
        while sys.getrefcount(values) > held and time.monotonic() < deadline:
            time.sleep(1e-5)
    return values


def from_rank0(value: T) -> T:
    """Rank 0's `value` on every rank, returned once every rank has reached this call (a barrier)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    dist.barrier()
    return box[0]


def elastic_restart() -> int:
    """How many times torchrun --max-restarts has restarted this job's workers (0: the first start)."""
    return int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0'))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on any rank (so all ranks stop together)."""
    if world_size() == 1:
        return flag
    value = all_reduce_sum(torch.tensor([1.0 if flag else 0.0], device=device))
    return bool(value.item() > 0)


def finish() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
