"""DistributedDataParallel against the hand-written gradient all-reduce it replaced, in alternating pairs.

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 scripts/bench_ddp.py [--pairs 6 --warmup 1 --vgg_random] [train.py flags]

Every process builds the model twice from the same seed: once as train.py does (each network in its own DDP:
bucketed all-reduce during the backward) and once bare, stepped as before DDP: both backward passes, then one
flat all-reduce of all of G's gradients and one of D's (a copy into one buffer, all_reduce, divide, copy
back). Steps alternate DDP / hand-written, hand-written / DDP, ...; all processes start each step together
(a barrier) and rank 0 prints each step's wall time, the pair's ratio and the medians. Then one step of each
under torch.profiler: the time the backward waits for communication is, with DDP, the backward's time over
the same backward without DDP hooks (the bare model), and, hand-written, the all-reduce after it.
--vgg_random gives the VGG loss random weights (no download): the same work as ImageNet's, no communication.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from unittest import mock

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmark import synthetic_batch  # noqa: E402  (scripts/benchmark.py, next to this file)

import models.common.trainer_base as trainer_module  # noqa: E402
from builders import build_trainer  # noqa: E402
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util.distributed import init_distributed, world_size  # noqa: E402


def all_reduce_flat(parameters: list) -> None:
    """The hand-written averaging DDP replaced: one flat buffer of all gradients, all-reduced, divided, copied back."""
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat.div_(world_size())
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def backward_timed(trainer: Pix2PixHDTrainer, data: dict) -> float:
    """train.py's forward and both backward passes (gradients of the step to come); returns the backward's seconds."""
    trainer.optimizer_D.zero_grad(set_to_none=True)
    trainer.optimizer_G.zero_grad(set_to_none=True)
    with trainer.autocast():
        losses, _ = trainer.model(data['label'], data['inst'], data['image'], data['feat'])
    loss_D = (losses['D_fake'] + losses['D_real']) * 0.5
    loss_G = losses['G_GAN'] + losses.get('G_GAN_Feat', 0) + losses.get('G_VGG', 0)
    start = time.perf_counter()
    loss_D.backward(inputs=trainer.params_D, retain_graph=trainer.model.shares_fake_pass)
    loss_G.backward(inputs=trainer.params_G)
    return time.perf_counter() - start


def hand_step(trainer: Pix2PixHDTrainer, data: dict, timings: dict) -> None:
    """The step before DDP: both backward passes on the bare networks, then the two flat all-reduces, then Adam."""
    timings['backward'] = backward_timed(trainer, data)
    start = time.perf_counter()
    all_reduce_flat(trainer.params_G)
    all_reduce_flat(trainer.params_D)
    timings['communication'] = time.perf_counter() - start
    trainer.optimizer_G.step()
    trainer.optimizer_D.step()


def ddp_step(trainer: Pix2PixHDTrainer, data: dict, timings: dict) -> None:
    """train.py's step (DDP), with the backward passes timed: their all-reduce runs inside them."""
    timings['backward'] = backward_timed(trainer, data)
    trainer.optimizer_G.step()
    trainer.optimizer_D.step()


def timed(step: Callable[[Pix2PixHDTrainer, dict, dict], None], trainer: Pix2PixHDTrainer, data: dict) -> dict:
    """One step started together on all ranks: {'step', 'backward', 'communication'?, 'cpu'} in seconds."""
    timings: dict = {}
    dist.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    step(trainer, data, timings)
    timings['step'], timings['cpu'] = time.perf_counter() - start, time.process_time() - cpu
    return timings


def profiled_communication(step: Callable[[Pix2PixHDTrainer, dict, dict], None], trainer: Pix2PixHDTrainer, data: dict) -> float:
    """Milliseconds of all_reduce events (on any thread) in one profiled step."""
    dist.barrier()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step(trainer, data, {})
    return sum(event.cpu_time_total for event in profiler.key_averages() if 'all_reduce' in event.key) / 1000


def main() -> None:
    """Build both models on every rank, time alternating pairs, profile one step of each; rank 0 prints."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--pairs', type=int, default=6)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--vgg_random', action='store_true')
    args, flags = parser.parse_known_args()
    defaults = ['--gpu_ids', '-1', '--loadSize', '128', '--seed', '0', '--name', 'bench_ddp', '--checkpoints_dir', '/tmp/bench_ddp']
    if args.vgg_random:
        path = f'/tmp/bench_ddp_vgg19_random_{os.getpid()}.pth'
        from torchvision.models import vgg19

        torch.save(vgg19(weights=None).state_dict(), path)
        defaults += ['--vgg_weights', path]
    opt = TrainOptions('', METHODS).parse(defaults + flags, save=False)
    init_distributed(opt)
    rank0 = opt.rank == 0
    torch.manual_seed(0)
    wrapped = build_trainer(opt)
    torch.manual_seed(0)
    with mock.patch.object(trainer_module, 'world_size', lambda: 1):  # the same model, no DDP
        hand = build_trainer(opt)
    if args.vgg_random:
        os.remove(opt.vgg_weights)  # loaded into both models
    data = synthetic_batch(opt, opt.loadSize, opt.loadSize // 2)
    sides = {'DDP': (ddp_step, wrapped), 'hand-written': (hand_step, hand)}
    for _ in range(args.warmup):
        for step, trainer in sides.values():
            timed(step, trainer, data)
    rows: dict = {name: [] for name in sides}
    for pair in range(args.pairs):
        order = list(sides) if pair % 2 == 0 else list(sides)[::-1]
        for name in order:
            rows[name].append(timed(*sides[name], data))
        ratio = rows['hand-written'][-1]['step'] / rows['DDP'][-1]['step']
        if rank0:
            steps = ', '.join(f"{name} {rows[name][-1]['step'] * 1000:.0f} ms" for name in order)
            print(f'pair {pair + 1}: {steps}: hand-written / DDP {ratio:.3f}', flush=True)
    comm = {name: profiled_communication(*sides[name], data) for name in sides}
    if rank0:
        median = {name: {key: statistics.median(row[key] for row in rows[name]) * 1000 for key in rows[name][0]} for name in rows}
        ratios = [h['step'] / d['step'] for h, d in zip(rows['hand-written'], rows['DDP'])]
        parameters = {name: sum(p.numel() for p in net.parameters()) for name, net in hand.model.networks_by_name().items()}
        print(f"flags: {' '.join(flags)}; {opt.loadSize}x{opt.loadSize // 2}, batch {opt.batchSize} per process, {world_size()} processes")
        print(f'parameters: {parameters} ({4 * sum(parameters.values()) / 2**20:.0f} MiB of float32 gradients per step)')
        for name, values in median.items():
            print(f'{name}: median ' + ', '.join(f'{key} {value:.0f} ms' for key, value in values.items()))
        print(
            f'step time hand-written / DDP: median of {args.pairs} pairs {statistics.median(ratios):.3f} '
            f'(pairs {min(ratios):.3f}-{max(ratios):.3f})'
        )
        exposed = median['DDP']['backward'] - median['hand-written']['backward']
        print(
            f"communication the step waits for: hand-written {median['hand-written']['communication']:.0f} ms after the backward; "
            f"DDP {exposed:.0f} ms (its backward {median['DDP']['backward']:.0f} ms vs the bare backward "
            f"{median['hand-written']['backward']:.0f} ms)"
        )
        print(f"profiler, all_reduce events in one step: DDP {comm['DDP']:.0f} ms, hand-written {comm['hand-written']:.0f} ms")
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
