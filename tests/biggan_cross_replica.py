"""Run under torchrun (2 processes, gloo): BigGAN's cross-replica batch norm on each process's half of a batch gives
what one process gets on the whole batch (outputs, stored statistics, gradients), and the all-reduce under it returns
only once gloo has let go of the tensor (else a process exiting right after can abort); exit 0 when both hold."""

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models.biggan.layers import BN  # noqa: E402
from util.distributed import all_reduce_sum  # noqa: E402


def main() -> None:
    """Compare the two halves' results with the whole batch's, on every rank."""
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    weights = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    whole = BN(3)
    reference = whole(x.requires_grad_(True))
    (reference * weights).sum().backward()
    part = BN(3)
    part.cross_replica = True
    half = x.detach()[rank * 4 : rank * 4 + 4].clone().requires_grad_(True)
    out = part(half)
    (out * weights[rank * 4 : rank * 4 + 4]).sum().backward()
    torch.testing.assert_close(out, reference[rank * 4 : rank * 4 + 4], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(half.grad, x.grad[rank * 4 : rank * 4 + 4], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(part.stored_mean, whole.stored_mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(part.stored_var, whole.stored_var, atol=1e-6, rtol=1e-6)
    # The gain's gradient is per process (DDP averages it); summed over processes it is the whole batch's.
    gain_grad = part.gain.grad.clone()
    dist.all_reduce(gain_grad)
    torch.testing.assert_close(gain_grad, whole.gain.grad, atol=1e-5, rtol=1e-5)
    assert world == 2
    check_all_reduce_lets_go()
    dist.destroy_process_group()


def check_all_reduce_lets_go() -> None:
    """After all_reduce_sum returns, gloo's thread holds no reference to the tensor (plain dist.all_reduce leaves one
    behind in a good share of calls: its thread drops it later, which at interpreter shutdown aborts the process)."""
    for call in range(200):
        values = torch.full((3,), float(call))
        held = sys.getrefcount(values)
        all_reduce_sum(values)
        assert sys.getrefcount(values) == held, f'call {call}: gloo still holds the tensor'
        assert values.tolist() == [2.0 * call] * 3


if __name__ == '__main__':
    main()
