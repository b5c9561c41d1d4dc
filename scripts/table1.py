"""The pix2pixHD paper's Table 1 on the built-in synthetic street scenes, in one command and without a download.

    python scripts/table1.py --out results/table1

1. makes the synthetic scenes (data/synthetic.py) at --width x --height;
2. trains pix2pix, CRN and pix2pixHD on the training scenes through train.py with the same budget: the same
   images at the same size, batch 1, for the same number of epochs (--epochs), so every method takes the same
   number of iterations. Iterations, not CPU seconds, because they make the table a pure function of the flags
   and the seed, the same on a loaded or an idle machine; each method's CPU seconds are reported beside it;
3. synthesizes every test layout through test.py;
4. trains the small segmentation network of scripts/train_seg_net.py on the training renders;
5. scores each method's synthesis and the real test renders with scripts/evaluate.py (pixel accuracy and mean
   IoU; FID and KID with --inception_weights), prints the table in the paper's layout and writes OUT/table1.json
   and OUT/index.html (per test layout: the label map, the real render, pix2pix, CRN and pix2pixHD side by side).

Each method runs at a small configuration of its own flags (method_args below). CRN's loss needs VGG19's
ImageNet weights, which nothing here downloads: pass --vgg_weights (torchvision's VGG19 state_dict) or
--crn_vgg_mat (the CRN code's imagenet-vgg-verydeep-19.mat); without them CRN's loss runs on a randomly
initialised VGG19 (seeded; the table marks the row), and pix2pixHD trains without its VGG loss (the quickstart's
choice). Logs of every step are in OUT/logs. Exit status 0, or 1 with a one-line error.
"""

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from data.synthetic import make_synthetic_dataset  # noqa: E402
from options.base_options import OptionsError  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.errors import DatasetError, TrainingError  # noqa: E402
from util.files import atomic_write  # noqa: E402
from util.html import HTML, display_width  # noqa: E402
from util.records import load_saved_options  # noqa: E402

# (--model value, the row's name in the table and on the page), in the paper's order.
METHODS = (('pix2pix', 'pix2pix'), ('crn', 'CRN'), ('pix2pixHD', 'pix2pixHD (ours)'))
ORACLE = 'Oracle (real images)'
RANDOM_VGG_NOTE = (
    "CRN's VGG19 loss ran on randomly initialised weights (no ImageNet weights offline); "
    "pass --vgg_weights or --crn_vgg_mat for the loss network its authors used"
)


def _script(name: str) -> types.ModuleType:
    """A module of the repository's entry points (train.py, test.py, scripts/*.py), imported once."""
    path = os.path.join(REPO_ROOT, name)
    module_name = 'table1_' + os.path.splitext(os.path.basename(name))[0]
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def crn_widths(height: int) -> str:
    """Refinement-module widths from 4x8 up to height: the official taper (wide at coarse scales), scaled down to 32..256."""
    heights = [4 * 2**index for index in range(int(math.log2(height // 4)) + 1)]
    return ','.join(str(min(256, max(32, 2048 // h))) for h in heights)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The script's flags (default sys.argv), checked: a bad size, count or weights file raises OptionsError."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--out', default='results/table1', help='output folder: data, checkpoints, results, table1.json, index.html')
    parser.add_argument('--width', type=int, default=128, help='scene width, twice the height (default 128)')
    parser.add_argument('--height', type=int, default=64, help='scene height, a power of two >= 32 (default 64)')
    parser.add_argument('--n_train', type=int, default=32, help='training scenes (default 32)')
    parser.add_argument('--n_test', type=int, default=8, help='test layouts (default 8)')
    parser.add_argument('--epochs', type=int, default=24, help='training epochs of every method, batch 1 (default 24)')
    parser.add_argument('--seg_iters', type=int, default=200, help='iterations of the segmentation network (default 200)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the data, every training and the test-time noise')
    parser.add_argument('--vgg_weights', default=None, help="torchvision VGG19 state_dict for CRN's loss and pix2pixHD's VGG loss")
    parser.add_argument('--crn_vgg_mat', default=None, help="the CRN code's imagenet-vgg-verydeep-19.mat for CRN's loss")
    parser.add_argument('--inception_weights', default=None, help='torch-fidelity Inception weights: adds FID and KID columns')
    parser.add_argument('--skip_train', action='store_true', help="rescore: reuse OUT's checkpoints and segmentation net, train nothing")
    opt = parser.parse_args(argv)
    h, w = opt.height, opt.width
    if h < 32 or h & (h - 1) or w != 2 * h:
        raise OptionsError(
            f"--width {w} --height {h}: CRN makes sp x 2sp images from 4x8 up and pix2pix's U-Net needs sides divisible by 32, "
            f"so the height must be a power of two >= 32 and the width twice it; e.g. --width 128 --height 64"
        )
    for flag in ('n_train', 'n_test', 'epochs', 'seg_iters'):
        if getattr(opt, flag) < 1:
            raise OptionsError(f"--{flag} {getattr(opt, flag)} must be at least 1")
    if opt.n_test < 2 and opt.inception_weights:
        raise OptionsError(f"--n_test {opt.n_test}: FID and KID need at least 2 test layouts")
    for flag in ('vgg_weights', 'crn_vgg_mat', 'inception_weights'):
        path = getattr(opt, flag)
        if path is not None and not os.path.isfile(path):
            raise OptionsError(f"--{flag} {path}: file not found")
    return opt


def method_args(method: str, opt: argparse.Namespace, vgg: list[str]) -> list[str]:
    """Each method's own flags at a small size (the same epochs for all; each keeps its own lr schedule)."""
    half = opt.epochs // 2
    if method == 'pix2pix':
        # The authors' U-Net, 70x70 PatchGAN and losses; the U-Net with as many levels as the sides allow (a 2x1
        # bottleneck), half their widths; whole scenes (no 286 -> 256 crop), no instance maps as in their paper.
        return ['--netG', f'unet_{min(256, opt.height)}', '--ngf', '32', '--ndf', '32', '--no_instance', '--resize_or_crop', 'scale_width',
                '--niter', str(half), '--niter_decay', str(opt.epochs - half)]  # fmt: skip
    if method == 'crn':
        # demo_512p.py's single-image loss (demo_256p.py's 9-image diversity loss costs 9 VGG passes per
        # iteration), narrower modules, the official constant lr for every epoch.
        return ['--crn_sp', str(opt.height), '--crn_widths', crn_widths(opt.height), '--crn_n_images', '1',
                '--crn_loss', 'single', '--niter', str(opt.epochs), '--niter_decay', '0', *vgg]  # fmt: skip
    # pix2pixHD: the quickstart's measured small configuration (scripts/quickstart.sh, --netG_init delta included),
    # without instance features.
    vgg_loss = ['--vgg_weights', opt.vgg_weights] if opt.vgg_weights else ['--no_vgg_loss']
    return ['--ngf', '16', '--n_downsample_global', '0', '--n_blocks_global', '6', '--netG_init', 'delta', '--ndf', '16',
            '--n_layers_D', '1', '--lambda_feat', '30', *vgg_loss,
            '--niter', str(half), '--niter_decay', str(opt.epochs - half)]  # fmt: skip


def random_vgg19(path: str, seed: int) -> None:
    """A torchvision VGG19 state_dict with torchvision's random initialisation (seeded) of the convolutions."""
    import torchvision

    torch.manual_seed(seed)
    state_dict = torchvision.models.vgg19(weights=None).state_dict()
    for key, value in state_dict.items():
        if key.startswith('classifier.'):  # unused by the loss: one zero, expanded, saves as one number
            state_dict[key] = torch.zeros(1).expand(value.shape)

    def write(tmp_path: str) -> None:
        torch.save(state_dict, tmp_path)

    atomic_write(path, write)


class Steps:
    """Runs the steps with their output in OUT/logs/<step>.log, one line each on the console, and their CPU seconds."""

    def __init__(self, out: str) -> None:
        self.log_dir = os.path.join(out, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.cpu_seconds: dict[str, float] = {}

    def run(self, name: str, what: str, function: Callable, *args: Any) -> Any:
        """function(*args) with stdout and stderr in the step's log; a failure names the log."""
        log = os.path.join(self.log_dir, f'{name}.log')
        start = time.process_time()
        with open(log, 'w') as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            result = function(*args)
        self.cpu_seconds[name] = time.process_time() - start
        print(f'[table1] {what}: {self.cpu_seconds[name]:.0f} s of CPU time (log: {log})', flush=True)
        return result


def call_main(script: str, argv: list[str]) -> Any:
    """`python SCRIPT ARGV` in this process: the entry point's own main(), reading sys.argv as it does; what it returns."""
    module = _script(script)
    saved = sys.argv
    sys.argv = [script, *argv]
    try:
        return module.main()
    finally:
        sys.argv = saved


def check_recorded_settings(opt: argparse.Namespace, checkpoints: str) -> None:
    """--skip_train rescores the saved models: refuse flags that say they were trained otherwise than their records
    (opt.json) say, so that the published table states what was run."""
    for method, name in METHODS:
        saved = load_saved_options(os.path.join(checkpoints, method))
        if saved is None:
            raise OptionsError(f"--skip_train: {os.path.join(checkpoints, method)} holds no trained {name}; run without --skip_train")
        recorded = {
            '--epochs': saved.get('niter', 0) + saved.get('niter_decay', 0),
            '--seed': saved.get('seed'),
            '--width': saved.get('loadSize'),
        }
        given = {'--epochs': opt.epochs, '--seed': opt.seed, '--width': opt.width}
        differing = [f'{flag} {recorded[flag]} (trained) vs {given[flag]} (given)' for flag in given if recorded[flag] != given[flag]]
        if differing:
            raise OptionsError(
                f"--skip_train: {name} in {checkpoints} was trained otherwise: {'; '.join(differing)}; "
                f"pass the trained values, or run without --skip_train"
            )


def scored_rows(scores: dict) -> dict:
    """The table's rows from evaluate.py's JSON per method."""
    rows = {}
    for method, name in METHODS:
        rows[name] = {key: scores[method]['synthesized'].get(key) for key in ('pixel_accuracy', 'mean_iou', 'fid', 'kid')}
    rows[ORACLE] = {key: (scores[METHODS[0][0]]['real'] or {}).get(key) for key in ('pixel_accuracy', 'mean_iou')}
    return rows


def json_safe(value: Any) -> Any:
    """NaN and infinities (a class never seen, a metric not computed) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def format_table(rows: dict, train_seconds: dict, fid: bool, header: str, notes: list[str]) -> str:
    """The table as the paper lays it out (a row per method, the oracle last), with each method's training CPU time."""

    def number(value, fmt: str) -> str:
        return '-' if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

    columns = f"{'':<24}{'Pixel acc (%)':>14}{'Mean IoU':>10}" + (f"{'FID':>9}{'KID':>9}" if fid else '') + f"{'train CPU s':>13}"
    lines = [header, columns]
    for name, row in rows.items():
        accuracy = None if row.get('pixel_accuracy') is None else 100 * row['pixel_accuracy']
        line = f"{name:<24}{number(accuracy, '.2f'):>14}{number(row.get('mean_iou'), '.4f'):>10}"
        if fid:
            line += f"{number(row.get('fid'), '.2f'):>9}{number(row.get('kid'), '.4f'):>9}"
        lines.append(line + f"{number(train_seconds.get(name), '.0f'):>13}")
    return '\n'.join(lines + [f'* {note}' for note in notes])


def write_page(out: str, results: dict, rows_text: str, title: str) -> str:
    """OUT/index.html: the table, then per test layout the label map, the real render and each method's synthesis."""
    reference = os.path.join(results[METHODS[-1][0]], 'images')
    bases = sorted(name[: -len('_synthesized_image.png')] for name in os.listdir(reference) if name.endswith('_synthesized_image.png'))
    staging = os.path.join(out, 'page_staging')
    shutil.rmtree(staging, ignore_errors=True)  # what a failed run left
    page = HTML(staging, title)
    page.add_markup('<pre>' + rows_text.replace('&', '&amp;').replace('<', '&lt;') + '</pre>')
    columns = [('', 'label map'), ('', 'real render'), *(('synthesized', name) for _, name in METHODS)]
    for base in bases:
        sources = [os.path.join(reference, f'{base}_input_label.png'), os.path.join(reference, f'{base}_real_image.png')]
        sources += [os.path.join(results[method], 'images', f'{base}_synthesized_image.png') for method, _ in METHODS]
        names = [f'{base}_label.png', f'{base}_real.png', *(f'{base}_{method}.png' for method, _ in METHODS)]
        for source, name in zip(sources, names, strict=True):
            if not os.path.isfile(source):
                raise DatasetError(f"{source}: missing; test.py did not write it (see {os.path.join(out, 'logs')})")
            shutil.copyfile(source, os.path.join(page.get_image_dir(), name))
        with Image.open(sources[0]) as image:
            width = image.size[0]
        page.add_image_row(base, columns, names, [display_width(width, len(columns))] * len(columns))
    page.save()
    # Built aside, so a failure above leaves the previous page whole; then the images, then the page, move in.
    final_images = os.path.join(out, 'images')
    shutil.rmtree(final_images, ignore_errors=True)
    os.replace(page.get_image_dir(), final_images)
    os.replace(os.path.join(page.web_dir, 'index.html'), os.path.join(out, 'index.html'))
    shutil.rmtree(page.web_dir, ignore_errors=True)
    return os.path.join(out, 'index.html')


def main(argv: list[str] | None = None) -> dict:
    """Run the whole table; return what table1.json holds."""
    opt = parse_args(argv)
    wall_start = time.time()
    out = os.path.abspath(opt.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OptionsError(
            f"--out {opt.out} is a file: table1 writes a folder (data, checkpoints, results, the table); choose another --out"
        )
    os.makedirs(out, exist_ok=True)
    dataroot, checkpoints, results_root = (os.path.join(out, name) for name in ('data', 'checkpoints', 'results'))
    seg_model = os.path.join(out, 'seg_net.pt')
    steps = Steps(out)
    if opt.skip_train:  # before the data is drawn again: with other flags it would be other scenes
        check_recorded_settings(opt, checkpoints)

    steps.run('data', 'synthetic scenes', make_synthetic_dataset, dataroot, opt.n_train, opt.n_test, opt.width, opt.height, opt.seed)
    notes = []
    if opt.crn_vgg_mat:
        crn_vgg = ['--crn_vgg_mat', opt.crn_vgg_mat]
    elif opt.vgg_weights:
        crn_vgg = ['--vgg_weights', opt.vgg_weights]
    else:
        random_vgg = os.path.join(out, 'vgg19_random_init.pth')
        if not opt.skip_train:
            steps.run('vgg', 'randomly initialised VGG19 for CRN', random_vgg19, random_vgg, opt.seed)
        crn_vgg = ['--vgg_weights', random_vgg]
        notes.append(RANDOM_VGG_NOTE)
    common = ['--dataroot', dataroot, '--checkpoints_dir', checkpoints, '--gpu_ids', '-1', '--seed', str(opt.seed),
              '--loadSize', str(opt.width), '--nThreads', '0']  # fmt: skip
    train_seconds = {}
    results = {}
    for method, name in METHODS:
        own = method_args(method, opt, crn_vgg)
        if not opt.skip_train:
            finished = steps.run(f'train_{method}', f'training {name}', call_main, 'train.py',
                                 ['--model', method, '--name', method, *common, *own, '--no_html', '--print_freq', str(opt.n_train),
                                  '--save_epoch_freq', str(opt.epochs), '--save_latest_freq', str(10**9)])  # fmt: skip
            if not finished:  # a signal stopped it (Ctrl-C): a table of a shorter run would claim the full one
                raise TrainingError(
                    f"training {name} was stopped before its {opt.epochs} epochs (log: {steps.log_dir}/train_{method}.log); "
                    f"nothing was scored or published: run the same command again"
                )
            train_seconds[name] = steps.cpu_seconds[f'train_{method}']
        steps.run(f'test_{method}', f'synthesizing the test layouts with {name}', call_main, 'test.py',
                  ['--model', method, '--name', method, *common, '--results_dir', results_root, '--how_many', str(opt.n_test)])  # fmt: skip
        results[method] = os.path.join(results_root, method, 'test_latest')
    if not opt.skip_train:
        seg = steps.run('seg_net', 'segmentation network', _script('scripts/train_seg_net.py').main,
                        ['--dataroot', dataroot, '--out', seg_model, '--iters', str(opt.seg_iters), '--seed', str(opt.seed)])  # fmt: skip
    elif not os.path.isfile(seg_model):
        raise OptionsError(f"--skip_train: {seg_model} not found; run without --skip_train")
    else:
        seg = None
    evaluate = _script('scripts/evaluate.py')
    scores = {}
    for index, (method, name) in enumerate(METHODS):
        json_path = os.path.join(out, 'scores', f'{method}.json')
        os.makedirs(os.path.dirname(json_path), exist_ok=True)
        argv_eval = ['--results_dir', results[method], '--dataroot', dataroot, '--seg_model', seg_model, '--method', name,
                     '--json', json_path, '--gpu_ids', '-1', '--nThreads', '0']  # fmt: skip
        if index == 0:
            argv_eval.append('--real')
        if opt.inception_weights:
            argv_eval += ['--fid', '--inception_weights', opt.inception_weights]
        steps.run(f'score_{method}', f'scoring {name}', evaluate.main, argv_eval)
        with open(json_path) as handle:
            scores[method] = json.load(handle)
    rows = scored_rows(scores)
    header = (
        f"Table 1 on the synthetic street scenes: {opt.width}x{opt.height}, {opt.n_train} training scenes, {opt.n_test} test layouts, "
        f"{opt.epochs} epochs ({opt.epochs * opt.n_train} iterations) per method, seed {opt.seed}"
    )
    text = format_table(rows, train_seconds, bool(opt.inception_weights), header, notes)
    page = write_page(out, results, text, header)
    report = {
        'settings': {key: value for key, value in vars(opt).items() if key != 'out'},
        'iterations_per_method': opt.epochs * opt.n_train,
        'method_flags': {method: method_args(method, opt, crn_vgg) for method, _ in METHODS},
        'rows': rows,
        'train_cpu_seconds': train_seconds,
        'step_cpu_seconds': steps.cpu_seconds,
        'wall_seconds': time.time() - wall_start,
        'segmentation_net': seg,
        'notes': notes,
        'table': text,
    }

    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as handle:
            json.dump(json_safe(report), handle, indent=2, allow_nan=False)
            handle.write('\n')

    atomic_write(os.path.join(out, 'table1.json'), write)
    print()
    print(text)
    print(f"\n{os.path.join(out, 'table1.json')}\n{page}\n[table1] total: {report['wall_seconds']:.0f} s wall clock")
    return report


def cli() -> None:
    """The command line: main() on sys.argv, its result printed already."""
    main()


if __name__ == '__main__':
    run_main(cli)
