"""What DDP does not do for data-parallel training over torchrun's processes (one per GPU, gloo on CPU): the
process group, loss averaging for the logs, and agreeing on when to stop. Gradients are averaged by
torch.nn.parallel.DistributedDataParallel (models/pix2pixHD_trainer.py)."""

import os
from typing import TypeVar

import torch
import torch.distributed as dist

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
    dist.init_process_group(backend='nccl' if opt.gpu_ids else 'gloo')


def world_size() -> int:
    """Number of processes training together (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_values(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over all ranks (for logging losses)."""
    if world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world_size()
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
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def finish() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
