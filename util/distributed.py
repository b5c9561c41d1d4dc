"""Data-parallel training over torchrun's processes (one per GPU, gloo on CPU)."""

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """True when torchrun (or torch.distributed.run) started this process as one of several."""
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def init_distributed(opt) -> None:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); nothing for one process.

    The options already hold torchrun's rank, world size and this process's GPU (settled at parse time).
    """
    if opt.world_size == 1:
        return
    if opt.gpu_ids:
        torch.cuda.set_device(opt.gpu_ids[0])
    dist.init_process_group(backend='nccl' if opt.gpu_ids else 'gloo')


def world_size() -> int:
    """Number of processes training together (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_state(modules: Iterable[torch.nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers, so all start from the same weights."""
    if world_size() == 1:
        return
    for module in modules:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce the gradients of `parameters` in one flat buffer and divide by the world size.

    Averaging per-process gradients of per-process mean losses equals the gradient of the mean loss
    over the global batch, so N processes with --batchSize B train like one with N*B.
    """
    size = world_size()
    if size == 1:
        return
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat.div_(size)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def average_values(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over all ranks (for logging losses)."""
    if world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world_size()
    return values


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
