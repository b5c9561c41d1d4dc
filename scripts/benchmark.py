"""Measure pix2pixHD training and inference speed for given options on this machine.

    python scripts/benchmark.py [--iters 10 --warmup 3 --width W --height H --compare --inference_only --json FILE
                                 --profile FILE] [train.py flags]

Prints train ms/iter (median of timed iterations after warm-up) and img/s, peak memory (CUDA max
allocated, or the process's peak RSS on the CPU), inference ms/image, the FLOPs of one training
iteration counted with torch.utils.flop_counter, achieved TFLOP/s and, on a known GPU, the fraction of
its dense peak. --compare runs the plain float32 path (no --amp, --channels_last, --compile) and the
path the flags ask for, in one run, and prints the speed-up. Inference runs in the precision test.py
uses (--amp, or --data_type 16: float16 on CUDA) and with its cuDNN setting, on the trained networks (so
with --channels_last weights and --compile where flagged, which test.py does not apply); --inference_only
measures only that. --json writes the rows to a file; --profile writes torch.profiler's table of one more
training step of the flagged path (operators by their own device time on CUDA, CPU time on the CPU).
Inputs are random label/instance maps and images of the given size, so no dataset is needed; but a method trained on
clips (--model vid2vid) reads its first batch from --dataroot (e.g. scripts/make_synthetic_video.py's video): its clips
carry the reference flow, and their length is the training schedule's first. img/s counts the images G makes (for
vid2vid, every frame of a clip it makes; its inference time is a whole clip's); --width/--height are then the clips'.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from builders import build_data, build_trainer  # noqa: E402
from models import METHODS
from models.common.precision import inference_precision  # noqa: E402
from options.base_options import replace  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util.devices import autotune_convolutions  # noqa: E402

# Methods whose batches come from --dataroot rather than random maps (clips with their reference flow).
READS_DATAROOT = {'vid2vid'}
# A method's flag that turns its VGG loss off, where it is not pix2pixHD's --no_vgg_loss.
NO_VGG = {'vid2vid': '--no_vgg'}

# Dense peak TFLOP/s by (device name fragment, precision): datasheet figures without sparsity.
GPU_PEAKS = {
    ('H200', 'bf16'): 989.0,
    ('H100', 'bf16'): 989.0,
    ('H200', 'fp16'): 989.0,
    ('H100', 'fp16'): 989.0,
    ('H200', 'fp32'): 67.0,
    ('H100', 'fp32'): 67.0,
    ('A100', 'bf16'): 312.0,
    ('A100', 'fp16'): 312.0,
    ('A100', 'fp32'): 19.5,
}


def synthetic_batch(opt: argparse.Namespace, width: int, height: int) -> dict:
    """A random batch shaped like the dataset's: label ids, instance ids, photo in [-1, 1]."""
    batch = opt.batchSize
    if opt.label_nc:
        label = torch.randint(0, opt.label_nc, (batch, 1, height, width), dtype=torch.int32)
    else:
        label = torch.rand(batch, opt.input_nc, height, width) * 2 - 1
    instance = (label * 1000 + torch.randint(0, 3, label.shape, dtype=torch.int32)) if opt.label_nc else torch.zeros(0)
    image = torch.rand(batch, opt.output_nc, height, width) * 2 - 1
    return {'label': label, 'inst': instance if not opt.no_instance else torch.zeros(0), 'image': image, 'feat': torch.zeros(0)}


def first_batch(opt: argparse.Namespace) -> dict:
    """The first batch train.py reads from --dataroot (epoch 1: for vid2vid, clips of the schedule's first length)."""
    _, loader = build_data(opt)
    loader.sampler.set_epoch(1)
    return next(iter(loader))


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so host clocks measure it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA max allocated, or this process's peak resident set on the CPU, in MiB."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_profile(trainer: Any, data: dict, device: torch.device, path: str) -> None:
    """torch.profiler's operator table of one training step, by self device time (CUDA) or self CPU time, to `path`."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        trainer.train_step(data)
        synchronize(device)
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    table = profiler.key_averages().table(sort_by=sort_by, row_limit=40)
    with open(path, 'w') as handle:
        handle.write(f'one training step, sorted by {sort_by}\n{table}\n')
    print(f'profile of one training step: {path}')


def measure(opt: argparse.Namespace, args: argparse.Namespace, profile: str | None = None) -> dict:
    """Time training steps and inference for one set of options, each with the cuDNN setting its script has;
    with `profile`, write the profiler's table of one more training step there."""
    torch.manual_seed(0)
    trainer = build_trainer(opt)  # cuDNN's autotuner as train.py sets it
    device = trainer.device
    data = first_batch(opt) if opt.model in READS_DATAROOT else synthetic_batch(opt, args.width, args.height)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    step_ms = flops = float('nan')
    made = opt.batchSize
    if not args.inference_only:
        for _ in range(args.warmup):
            trainer.train_step(data)
        times = []
        for _ in range(args.iters):
            synchronize(device)
            start = time.perf_counter()
            trainer.train_step(data)
            synchronize(device)
            times.append(time.perf_counter() - start)
        step_ms = statistics.median(times) * 1000
        with FlopCounterMode(display=False) as counter:
            _, generated = trainer.train_step(data, infer=True)
        flops = counter.get_total_flops()
        made = generated.shape[0]  # images per iteration: the batch's, or every frame G made of vid2vid's clips
        memory = peak_memory_mib(device)
        if profile:
            write_profile(trainer, data, device, profile)

    model = trainer.model
    autotune_convolutions(replace(opt, isTrain=False))  # as test.py sets it
    with torch.no_grad(), inference_precision(opt, device):
        for _ in range(args.warmup):
            model.inference(data['label'][:1], data['inst'][:1], data['image'][:1])
        inference = []
        for _ in range(args.iters):
            synchronize(device)
            start = time.perf_counter()
            model.inference(data['label'][:1], data['inst'][:1], data['image'][:1])
            synchronize(device)
            inference.append(time.perf_counter() - start)
    if args.inference_only:
        memory = peak_memory_mib(device)
    tflops = flops / (step_ms / 1000) / 1e12
    precision = opt.amp if opt.amp != 'off' else 'fp32'
    if args.inference_only and opt.amp == 'off' and opt.data_type == 16 and device.type == 'cuda':
        precision = 'fp16'  # test.py's --data_type 16
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    peak = next((value for (fragment, kind), value in GPU_PEAKS.items() if fragment in name and kind == precision), None)
    bf16_peak = next((value for (fragment, kind), value in GPU_PEAKS.items() if fragment in name and kind == 'bf16'), None)
    return {
        'ms/iter': step_ms,
        'img/s': made / (step_ms / 1000),
        'img/iter': made,
        'peak MiB': memory,
        'infer ms/img': statistics.median(inference) * 1000,
        'GFLOP/iter': flops / 1e9,
        'TFLOP/s': tflops,
        'of peak': f'{100 * tflops / peak:.1f}%' if peak and not args.inference_only else 'n/a',
        # the card's dense bf16 peak, whatever the precision: how much of the tensor cores any path uses
        'of bf16 peak': f'{100 * tflops / bf16_peak:.1f}%' if bf16_peak and not args.inference_only else 'n/a',
        'device': name,
        'precision': precision,
    }


def main() -> None:
    """Parse benchmark flags, then train.py flags; print one row per measured path."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=10, help='timed iterations (median reported)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first (compilation, allocator, cudnn autotune)')
    parser.add_argument('--width', type=int, default=None, help='input width (default: --loadSize)')
    parser.add_argument('--height', type=int, default=None, help='input height (default: half the width, as Cityscapes)')
    parser.add_argument('--compare', action='store_true', help='also run the plain float32 path and print the speed-up')
    parser.add_argument('--inference_only', action='store_true', help='measure inference only (no training steps, no FLOP count)')
    parser.add_argument('--json', default=None, help='also write the measured rows, with the sizes and flags, to this JSON file')
    parser.add_argument('--profile', default=None, help="write torch.profiler's operator table of one training step (flagged path) here")
    args, train_flags = parser.parse_known_args()
    if args.profile and args.inference_only:
        parser.error('--profile profiles a training step; leave out --inference_only')
    if not any(flag.startswith(('--no_vgg', '--vgg_weights')) for flag in train_flags):  # --no_vgg_loss, vid2vid's --no_vgg
        print('No --vgg_weights given: benchmarking without the VGG loss (its weights would need a download)')
        model = argparse.ArgumentParser(add_help=False)
        model.add_argument('--model', default=next(iter(METHODS)))
        train_flags = train_flags + [NO_VGG.get(model.parse_known_args(train_flags)[0].model, '--no_vgg_loss')]
    opt = TrainOptions('', METHODS).parse(train_flags, save=False)
    if opt.model in READS_DATAROOT:
        shape = first_batch(opt)['image'].shape
        args.width, args.height = shape[-1], shape[-2]
    args.width = args.width or opt.loadSize
    args.height = args.height or args.width // 2

    rows = {}
    if args.compare:
        rows['plain fp32'] = measure(replace(opt, amp='off', channels_last=False, compile=False, data_type=32), args)
    rows['as flagged'] = measure(opt, args, args.profile)

    print(
        f'\n{args.width}x{args.height}, batch {opt.batchSize}, netG {opt.netG} ngf {opt.ngf}, num_D {opt.num_D}, '
        f'VGG loss {"off" if getattr(opt, "no_vgg_loss", False) or getattr(opt, "no_vgg", False) else "on"}, '
        f'flags: {" ".join(train_flags)}'
    )
    columns = ['ms/iter', 'img/s', 'peak MiB', 'infer ms/img', 'GFLOP/iter', 'TFLOP/s', 'of peak', 'of bf16 peak', 'precision', 'device']
    print(f'{"path":<12}' + ''.join(f'{column:>14}' for column in columns))
    for label, row in rows.items():
        cells = [f'{row[column]:>14.2f}' if isinstance(row[column], float) else f'{row[column]:>14}' for column in columns]
        print(f'{label:<12}' + ''.join(cells))
    if args.compare:
        key = 'infer ms/img' if args.inference_only else 'ms/iter'
        print(f'speed-up of the flagged path over plain fp32: {rows["plain fp32"][key] / rows["as flagged"][key]:.2f}x')
    if args.json:
        with open(args.json, 'w') as handle:
            record = {
                'width': args.width,
                'height': args.height,
                'batch': opt.batchSize,
                'model': opt.model,
                'flags': train_flags,
                'rows': rows,
            }
            json.dump(record, handle, indent=1)


if __name__ == '__main__':
    main()
