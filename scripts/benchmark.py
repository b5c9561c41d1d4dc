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
measures only that. --json writes the rows to a file (after each row, so a later row's crash or timeout keeps the
earlier ones); --profile writes torch.profiler's table of one more training step of the flagged path (operators by
their own device time on CUDA, CPU time on the CPU) and its summary by kind (convolutions, normalisation, elementwise,
copies / layout changes, optimiser, and idle: the step's wall time that no operator fills), also in the JSON row.
--variant 'LABEL=FLAGS' (repeatable) measures more rows in the same process, each the flagged path plus FLAGS (e.g.
'batch 4=--batchSize 4', 'foreach Adam=--adam_impl foreach'); a row that fails records its error and the next runs.
Inputs are random label/instance maps and images of the given size, so no dataset is needed; but a method trained on
clips (--model vid2vid) reads its first batch from --dataroot (e.g. scripts/make_synthetic_video.py's video): its clips
carry the reference flow, and their length is the training schedule's first. img/s counts the images G makes (for
vid2vid, every frame of a clip it makes; its inference time is a whole clip's); --width/--height are then the clips'.
"""

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import time
import traceback
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
READS_DATAROOT = {'vid2vid', 'biggan'}  # BigGAN's: class-labelled images (--dataset synthetic draws them)
# A method's flag that turns its VGG loss off, where it is not pix2pixHD's --no_vgg_loss ('': pix2pix has no VGG loss).
# CRN's loss is VGG's: it needs --vgg_weights (or --crn_vgg_mat).
NO_VGG = {'vid2vid': '--no_vgg', 'pix2pix': '', 'biggan': ''}

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


# Operator kinds of the profile's summary, by fragments of the operator's (or compiled kernel's) name, first match wins:
# the optimiser before the rest (fused Adam's kernels name no convolution), normalisation before convolutions (cuDNN's
# batch norm is "cudnn_batch_norm"). Whatever matches none is elementwise work (activations, losses, arithmetic).
KINDS = (
    ('optimiser', ('adam', '_foreach_', 'multi_tensor', 'optimizer')),
    ('normalisation', ('norm', 'welford')),
    ('convolutions', ('conv', 'cudnn', 'gemm', 'xmma', 'addmm', 'matmul', 'bmm')),
    (
        'copies / layout changes',
        (
            'copy',
            'contiguous',
            'clone',
            'fill',
            'zero',
            'pad',
            'cat',
            'slice',
            'memcpy',
            'memset',
            'nchw',
            'nhwc',
            'transpose',
            'permute',
            'strided',
            'empty',
        ),
    ),  # fmt: skip
)
ELEMENTWISE = 'elementwise and other'
IDLE = 'idle'


def kind_of(name: str) -> str:
    """The summary's kind of a profiled operator's name (KINDS; elementwise and other when none matches)."""
    lowered = name.lower()
    return next((kind for kind, fragments in KINDS if any(fragment in lowered for fragment in fragments)), ELEMENTWISE)


def summarize_by_kind(times_ms: dict[str, float], wall_ms: float) -> dict[str, float]:
    """{kind: share of the step in %} from {operator: own time in ms}; idle is the wall time that no operator fills."""
    totals = dict.fromkeys([*(kind for kind, _ in KINDS), ELEMENTWISE], 0.0)
    for name, milliseconds in times_ms.items():
        totals[kind_of(name)] += milliseconds
    busy = sum(totals.values())
    # A CPU profile can count more time than the wall clock (several threads); then the shares are of the busy time.
    whole = max(wall_ms, busy)
    return {**{kind: 100 * value / whole for kind, value in totals.items()}, IDLE: 100 * (whole - busy) / whole}


def write_profile(trainer: Any, data: dict, device: torch.device, path: str) -> dict[str, float]:
    """torch.profiler's operator table of one training step, by self device time (CUDA) or self CPU time, and its
    summary by kind, to `path`; returns the summary ({kind: share of the step in %})."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    synchronize(device)
    with torch.profiler.profile(activities=activities) as profiler:
        start = time.perf_counter()
        trainer.train_step(data)
        synchronize(device)
        wall_ms = (time.perf_counter() - start) * 1000
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    averages = profiler.key_averages()
    table = averages.table(sort_by=sort_by, row_limit=40)
    # Host-side operators only: on CUDA each one's own device time is the kernels it launched, and the kernels' own rows
    # would count them twice.
    times_ms = {event.key: getattr(event, sort_by) / 1000 for event in averages if event.device_type == torch.autograd.DeviceType.CPU}
    shares = summarize_by_kind(times_ms, wall_ms)
    lines = [f'{kind:<26}{share:>6.1f}%' for kind, share in shares.items()]
    with open(path, 'w') as handle:
        handle.write(f'one training step, sorted by {sort_by}\n{table}\n')
        handle.write(f'by kind, share of the profiled step ({wall_ms:.1f} ms wall, with the profiler on):\n' + '\n'.join(lines) + '\n')
    print(f'profile of one training step: {path}')
    return shares


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
    by_kind: dict[str, float] = {}
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
            by_kind = write_profile(trainer, data, device, profile)

    model = trainer.model
    autotune_convolutions(replace(opt, isTrain=False))  # as test.py sets it
    # One sample's inputs as test.py gives them (BigGAN's batches hold class ids and images only).
    one = [data[key][:1] if key in data else None for key in ('label', 'inst', 'image')]
    with torch.no_grad(), inference_precision(opt, device):
        for _ in range(args.warmup):
            model.inference(*one)
        inference = []
        for _ in range(args.iters):
            synchronize(device)
            start = time.perf_counter()
            model.inference(*one)
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
        'batch': opt.batchSize,
        **({'profile by kind %': by_kind} if by_kind else {}),
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
    parser.add_argument(
        '--variant',
        action='append',
        default=[],
        metavar='LABEL=FLAGS',
        help='one more row: the flagged path plus FLAGS, measured in the same process (repeatable)',
    )
    args, train_flags = parser.parse_known_args()
    if args.profile and args.inference_only:
        parser.error('--profile profiles a training step; leave out --inference_only')
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument('--model', default=next(iter(METHODS)))
    no_vgg = NO_VGG.get(model.parse_known_args(train_flags)[0].model, '--no_vgg_loss')
    if no_vgg and not any(flag.startswith(('--no_vgg', '--vgg_weights', '--crn_vgg_mat')) for flag in train_flags):
        print('No --vgg_weights given: benchmarking without the VGG loss (its weights would need a download)')
        train_flags = train_flags + [no_vgg]
    opt = TrainOptions('', METHODS).parse(train_flags, save=False)
    if opt.model in READS_DATAROOT:
        shape = first_batch(opt)['image'].shape
        args.width, args.height = shape[-1], shape[-2]
    args.width = args.width or opt.loadSize
    args.height = args.height or args.width // 2

    variants = []
    for variant in args.variant:
        label, separator, flags = variant.partition('=')
        if not separator or not label:
            parser.error(f"--variant {variant!r}: give LABEL=FLAGS, e.g. 'batch 4=--batchSize 4'")
        variants.append((label, TrainOptions('', METHODS).parse(train_flags + shlex.split(flags), save=False)))
    paths = [('as flagged', opt, args.profile), *((label, variant_opt, None) for label, variant_opt in variants)]
    if args.compare:
        paths.insert(0, ('plain fp32', replace(opt, amp='off', channels_last=False, compile=False, data_type=32), None))

    rows: dict[str, dict] = {}
    failed = []
    for label, path_opt, profile in paths:
        try:
            rows[label] = measure(path_opt, args, profile)
        except Exception as error:  # e.g. out of memory at a large batch: say so in the row, measure the next
            traceback.print_exc()
            rows[label] = {'error': f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'}
            failed.append(label)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next row's trainer starts with the memory this one held
        if args.json:
            write_json(args, opt, train_flags, rows)

    print(
        f'\n{args.width}x{args.height}, batch {opt.batchSize}, netG {opt.netG} ngf {opt.ngf}, num_D {getattr(opt, "num_D", "-")}, '
        f'VGG loss {"off" if getattr(opt, "no_vgg_loss", False) or getattr(opt, "no_vgg", False) or opt.model == "pix2pix" else "on"}, '
        f'flags: {" ".join(train_flags)}'
    )
    columns = ['ms/iter', 'img/s', 'peak MiB', 'infer ms/img', 'GFLOP/iter', 'TFLOP/s', 'of peak', 'of bf16 peak', 'precision', 'device']
    print(f'{"path":<12}' + ''.join(f'{column:>14}' for column in columns))
    for label, row in rows.items():
        if 'error' in row:
            print(f'{label:<12} failed: {row["error"]}')
            continue
        cells = [f'{row[column]:>14.2f}' if isinstance(row[column], float) else f'{row[column]:>14}' for column in columns]
        print(f'{label:<12}' + ''.join(cells))
    if args.compare and not failed[:1] == ['plain fp32'] and 'error' not in rows['as flagged']:
        key = 'infer ms/img' if args.inference_only else 'ms/iter'
        print(f'speed-up of the flagged path over plain fp32: {rows["plain fp32"][key] / rows["as flagged"][key]:.2f}x')
    if failed:
        sys.exit(f'failed: {", ".join(failed)}')


def write_json(args: argparse.Namespace, opt: argparse.Namespace, train_flags: list, rows: dict) -> None:
    """The measured rows so far, with the sizes and flags, to --json."""
    record = {'width': args.width, 'height': args.height, 'batch': opt.batchSize, 'model': opt.model, 'flags': train_flags, 'rows': rows}
    with open(args.json, 'w') as handle:
        json.dump(record, handle, indent=1)


if __name__ == '__main__':
    main()
