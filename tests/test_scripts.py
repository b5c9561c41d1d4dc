"""The shell recipes stay in sync with the option parsers, every entry point's --help opens with a one-line summary,
and the quickstart runs end to end."""

import argparse
import glob
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from helpers import SUBPROCESS_ENV, TINY, assert_ok, interrupt_job, run_tool
from models import METHODS
from options.test_options import TestOptions as TestOptionsParser
from options.train_options import TrainOptions

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(
    set(
        glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_512p*.sh'))
        + glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_1024p*.sh'))
        + glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_pix2pix_*.sh'))
        + glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_crn_*.sh'))
        + glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_vid2vid_*.sh'))
    )
)
PARSERS = {'train.py': lambda: TrainOptions(methods=METHODS), 'test.py': lambda: TestOptionsParser(methods=METHODS)}


def python_commands(script_path: str) -> list:
    """The `python X.py ...` (or `[srun ...] torchrun ... X.py ...`) command lines of a recipe, continuation lines joined,
    shell variables ("$@", "${RESUME[@]}") dropped and "$NAME" read from the script's NAME=."""
    with open(script_path) as handle:
        text = handle.read().replace('\\\n', ' ')
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == 'srun' and 'torchrun' in words:
            words = words[words.index('torchrun') :]
        if words and words[0] == 'torchrun':
            words = ['python'] + words[next(i for i, word in enumerate(words) if word.endswith('.py')) :]
        if len(words) >= 2 and words[0] == 'python' and words[1].endswith('.py'):
            name = re.search(r'^NAME=(\S+)$', text, re.M)
            words = [name.group(1) if name and word == '$NAME' else word for word in words]
            commands.append([word for word in words[1:] if not word.startswith('$')])
    return commands


def test_every_reference_recipe_exists():
    names = {os.path.basename(path) for path in RECIPES}
    expected = {
        'train_512p.sh',
        'train_512p_feat.sh',
        'train_1024p_24G.sh',
        'train_1024p_12G.sh',
        'train_1024p_feat_24G.sh',
        'train_1024p_feat_12G.sh',
        'test_512p.sh',
        'test_1024p.sh',
        'test_512p_feat.sh',
        'test_1024p_feat.sh',
        'train_pix2pix_256.sh',
        'test_pix2pix_256.sh',
        'train_pix2pix_1024x512.sh',
        'test_pix2pix_1024x512.sh',
        'train_crn_256p.sh',
        'train_crn_512p.sh',
        'train_crn_1024p.sh',
        'test_crn_256p.sh',
        'test_crn_512p.sh',
        'test_crn_1024p.sh',
    }
    assert expected <= names


def parse_recipe(script: str, parser: str = 'train.py') -> argparse.Namespace:
    """The options of a recipe's one train.py (or test.py) command, as that entry point parses them."""
    (command,) = [command for command in python_commands(os.path.join(REPO_ROOT, 'scripts', script)) if command[0] == parser]
    return PARSERS[parser]().parse(command[1:] + ['--gpu_ids', '-1'], save=False)


@pytest.mark.parametrize(
    'script, side, resize, load, fine',
    [('train_pix2pix_256.sh', 256, 'resize_and_crop', 286, 256), ('train_pix2pix_1024x512.sh', 1024, 'scale_width', 1024, 256)],
)
def test_pix2pix_recipes_are_the_authors_settings(script, side, resize, load, fine):
    """U-Net 256, 70x70 PatchGAN, vanilla GAN + 100 L1, Adam 0.0002 / 0.5, 100 + 100 epochs, batch 1, no instance maps."""
    opt = parse_recipe(script)
    expected = ('pix2pix', 'unet_256', 'basic', 'vanilla', 100, 'batch')
    assert (opt.model, opt.netG, opt.netD, opt.gan_mode, opt.lambda_L1, opt.norm) == expected
    assert (opt.lr, opt.beta1, opt.niter, opt.niter_decay, opt.batchSize, opt.no_instance) == (0.0002, 0.5, 100, 100, 1, True)
    assert (opt.resize_or_crop, opt.loadSize) == (resize, load)
    if resize == 'resize_and_crop':
        assert opt.fineSize == fine


@pytest.mark.parametrize(
    'script, sp, n_images, loss, epochs, modules, pretrain',
    [
        ('train_crn_256p.sh', 256, 9, 'diversity', 200, 0, ''),
        ('train_crn_512p.sh', 512, 1, 'single', 20, 0, 'checkpoints/label2city_crn_256p'),
        ('train_crn_1024p.sh', 1024, 1, 'single', 5, 2, 'checkpoints/label2city_crn_512p'),
    ],
)
def test_crn_recipes_are_the_official_demos(script, sp, n_images, loss, epochs, modules, pretrain):
    """demo_256p.py -> demo_512p.py (fine-tunes 256p) -> demo_1024p.py (the last two modules of 512p); Adam 1e-4, 2sp wide."""
    opt = parse_recipe(script)
    assert (opt.model, opt.crn_sp, opt.crn_n_images, opt.crn_loss, opt.crn_train_modules) == ('crn', sp, n_images, loss, modules)
    assert (opt.niter, opt.niter_decay, opt.lr, opt.loadSize, opt.crn_label_layout) == (epochs, 0, 1e-4, 2 * sp, 'cityscapes')
    assert opt.load_pretrain.rstrip('/') == pretrain and opt.crn_vgg_mat.endswith('imagenet-vgg-verydeep-19.mat')
    test = parse_recipe(script.replace('train_', 'test_'), 'test.py')
    assert (test.model, test.name, test.loadSize) == ('crn', opt.name, 2 * sp)


@pytest.mark.parametrize(
    'script, width, max_frames, n_downsample, num_D', [('train_vid2vid_256.sh', 256, 6, 2, 1), ('train_vid2vid_512.sh', 512, 2, 3, 2)]
)
def test_vid2vid_recipes_are_the_authors_settings(script, width, max_frames, n_downsample, num_D):
    """The authors' street scripts: label_nc 35, instance edges, the car foreground branch, clips of 6 made frames,
    their defaults otherwise (composite G of 128 filters, BatchNorm, n_frames_G 3, 2 temporal scales, 10 + 10 epochs)."""
    opt = parse_recipe(script)
    assert (opt.model, opt.label_nc, opt.loadSize, opt.use_instance, opt.fg, opt.fg_labels) == ('vid2vid', 35, width, True, True, '26')
    assert (opt.max_frames_per_gpu, opt.n_frames_total, opt.n_downsample_G, opt.num_D) == (max_frames, 6, n_downsample, num_D)
    assert (opt.ngf, opt.norm, opt.n_frames_G, opt.n_scales_temporal, opt.niter, opt.niter_decay) == (128, 'batch', 3, 2, 10, 10)
    assert not opt.no_instance and opt.flow_weights
    test = parse_recipe('test_vid2vid_256.sh', 'test.py') if width == 256 else None
    assert test is None or (test.model, test.name) == ('vid2vid', opt.name)


@pytest.mark.parametrize('script_path', RECIPES, ids=os.path.basename)
def test_recipe_flags_parse(script_path, tmp_path):
    commands = [command for command in python_commands(script_path) if command[0] in PARSERS]
    assert commands, f'{script_path} runs no train.py/test.py'
    for command in commands:
        opt = PARSERS[command[0]]().parse(command[1:] + ['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path)], save=False)
        assert opt.name.startswith('label2city')
        if '--netG' in command:
            assert opt.netG == 'local' and opt.ngf == 32


def test_1024p_recipe_matches_the_paper_schedule():
    (command,) = python_commands(os.path.join(REPO_ROOT, 'scripts', 'train_1024p_24G.sh'))
    opt = TrainOptions('', METHODS).parse(command[1:] + ['--gpu_ids', '-1'], save=False)
    assert (opt.netG, opt.ngf, opt.num_D, opt.niter, opt.niter_decay, opt.niter_fix_global, opt.resize_or_crop) == (
        'local',
        32,
        3,
        50,
        50,
        10,
        'none',
    )
    assert opt.load_pretrain.rstrip('/') == 'checkpoints/label2city_512p'


@pytest.mark.parametrize(
    'script, name, fine_size', [('train_1024p_12G.sh', 'label2city_1024p', 1024), ('train_1024p_feat_12G.sh', 'label2city_1024p_feat', 896)]
)
def test_12G_recipes_are_the_reference_ones(script, name, fine_size):
    command = python_commands(os.path.join(REPO_ROOT, 'scripts', script))[-1]
    opt = TrainOptions('', METHODS).parse(command[1:] + ['--gpu_ids', '-1'], save=False)
    assert (opt.name, opt.netG, opt.ngf, opt.num_D, opt.niter, opt.niter_decay, opt.niter_fix_global, opt.resize_or_crop, opt.fineSize) == (
        name,
        'local',
        32,
        3,
        100,
        100,
        20,
        'crop',
        fine_size,
    )


@pytest.mark.parametrize(
    'script, summary',
    [
        ('train.py', 'Train a method of the family'),
        ('test.py', 'Synthesize images'),
        ('encode_features.py', 'Encode every training photo'),
        ('precompute_feature_maps.py', "Write E's feature maps"),
        ('scripts/editor.py', 'Serve the interactive editor'),
        ('scripts/check_dataset.py', 'Check a dataset'),
    ],
)
def test_help_opens_with_one_line_saying_what_the_script_does(script, summary):
    result = run_tool(script, '--help')
    assert result.returncode == 0
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith(summary) and second == ''
    if script == 'test.py':
        flat = ' '.join(result.stdout.split())
        assert '--netG' in flat and 'opt.json' in flat and 'unless given on the command line' in flat


def test_quickstart_stops_when_a_signal_stops_its_training(tmp_path):
    """Ctrl-C during the quickstart's training: train.py saves and returns, and the quickstart stops there (exit 130)
    instead of clustering and synthesizing from the half-trained model."""
    env = dict(
        SUBPROCESS_ENV, NITER='500', NITER_DECAY='0', WIDTH='64', HEIGHT='32', N_TRAIN='4', N_TEST='2', PYTHON=sys.executable,
        DATAROOT=str(tmp_path / 'data'), CHECKPOINTS_DIR=str(tmp_path / 'ck'), RESULTS_DIR=str(tmp_path / 'res'),
    )  # fmt: skip
    # Ctrl-C once training has started and logged (its signal handlers are in place).
    returncode, stderr = interrupt_job(
        ['bash', 'scripts/quickstart.sh'], env, ready=(tmp_path / 'ck' / 'quickstart' / 'loss_log.txt').exists
    )
    assert returncode == 130, stderr[-2000:]
    assert 'stopped by a signal: the later steps did not run' in stderr
    assert (tmp_path / 'ck' / 'quickstart' / 'latest_net_G.pth').is_file()  # train.py saved where it stopped
    assert not list((tmp_path / 'ck' / 'quickstart').glob('features_clustered_*')) and not (tmp_path / 'res').exists()


def test_quickstart_runs_end_to_end(tmp_path):
    # The quickstart's recipe at a smaller size (64x32, 4+2 layouts, one epoch): the pieces connect, the
    # figures are printed, and the results page names its columns; the figures themselves are the
    # quickstart's own business (README).
    env = dict(
        SUBPROCESS_ENV,
        NITER='1',
        NITER_DECAY='0',
        WIDTH='64',
        HEIGHT='32',
        N_TRAIN='4',
        N_TEST='2',
        PYTHON=sys.executable,
        DATAROOT=str(tmp_path / 'data'),
        CHECKPOINTS_DIR=str(tmp_path / 'ck'),
        RESULTS_DIR=str(tmp_path / 'res'),
    )
    result = subprocess.run(['bash', 'scripts/quickstart.sh'], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    last_line = result.stdout.strip().splitlines()[-1]
    results = tmp_path / 'res' / 'quickstart' / 'test_latest'
    assert last_line.endswith(str(results / 'index.html'))
    for phase in ('synthetic data', 'training', 'encoding and clustering features', 'synthesizing the test layouts'):
        assert re.search(rf'^\[quickstart\] {phase}: \d+ s$', result.stdout, re.M), phase
    for figure in (
        r'synthesized vs real render, mean \|difference\| \(0-255\): \d+\.\d \(outside the cars: \d+\.\d\)',
        r'car paint between styles: ',
        r'speckle, mean \|grey - its 3x3 mean\| \(0-255\), synthesized vs real: on flat road \d+\.\d\d vs \d+\.\d\d; '
        r'everywhere 2 px from an edge \d+\.\d\d vs \d+\.\d\d',
        r'halos, mean \|difference\| on road, sidewalk and sky 1-3 px from an edge vs 4 px or more: \d+\.\d vs \d+\.\d',
        r'fringes, how much the road changes between styles \(std, 0-255\) 1-2 px from a car vs 8 px or more: \d+\.\d vs \d+\.\d',
        r'car features \(\d+ training cars\): variance share per principal axis [\d. ]+; \d+ clusters, paint purity \d+%',
    ):
        assert re.search(figure, result.stdout), figure
    page = (results / 'index.html').read_text()
    synthesized = glob.glob(str(results / 'images' / '*_synthesized_image_style*.png'))
    assert len(synthesized) == 2 * 3  # 2 test layouts, --n_styles 3
    assert all(os.path.basename(path) in page for path in synthesized)
    headers = re.findall(r'<th[^>]*>([^<]*)</th>', page)
    assert headers[0] == 'input' and headers[1].startswith('synthesized: 3 styles') and headers[2] == 'real photo'
    assert headers[3:] == ['style 0', 'style 1', 'style 2']
    assert os.path.isfile(tmp_path / 'ck' / 'quickstart' / 'features_clustered_010.npz')
    assert os.path.isfile(tmp_path / 'ck' / 'quickstart' / 'latest_net_G.pth')
    assert json.loads((tmp_path / 'ck' / 'quickstart' / 'opt.json').read_text())['netG_init'] == 'delta'  # the fringes' fix


def test_benchmark_runs_a_feature_model_and_prints_its_row(tmp_path):
    """scripts/benchmark.py on a model with instance features: a training model has E and no clusters, so its
    inference encodes the photo (this crashed on the test-only --use_encoded_image flag); --profile writes the
    operator table of one step."""
    profile = tmp_path / 'profile.txt'
    result = run_tool('scripts/benchmark.py', '--iters', 1, '--warmup', 0, '--profile', profile, *TINY, '--instance_feat', '--nef', 4)
    assert_ok(result)
    row = next(line for line in result.stdout.splitlines() if line.startswith('as flagged'))
    assert float(row.split()[2]) > 0 and float(row.split()[5]) > 0  # ms/iter and inference ms/img measured
    table = profile.read_text()
    assert table.startswith('one training step, sorted by self_cpu_time_total') and 'aten::convolution_backward' in table


def _write_styled_results(root, leak: bool) -> str:
    """A 32x32 road with one 8x8 car drawn red in style 0 and blue in style 1; with `leak` the car's
    paint also covers the road ring 1 px around it (a coloured fringe). Returns the results folder."""
    from PIL import Image

    name, stem = 'synthval_000000_000019_gtFine_labelIds', 'synthval_000000_000019'
    label = np.full((32, 32), 7, np.uint8)  # road
    label[12:20, 12:20] = 26  # car
    inst = label.astype(np.uint16)
    inst[label == 26] = 26000
    for folder, image in (('test_label', Image.fromarray(label)), ('test_inst', Image.fromarray(inst))):
        os.makedirs(root / 'data' / folder, exist_ok=True)
        image.save(root / 'data' / folder / (f'{name}.png' if folder == 'test_label' else f'{stem}_gtFine_instanceIds.png'))
    images = root / 'res' / 'images'
    os.makedirs(images)
    road = np.full((32, 32, 3), 90, np.uint8)
    Image.fromarray(road).save(images / f'{name}_real_image.png')
    painted = slice(11, 21) if leak else slice(12, 20)
    for style, paint in enumerate(((200, 30, 35), (35, 75, 205))):
        fake = road.copy()
        fake[painted, painted] = paint
        Image.fromarray(fake).save(images / f'{name}_synthesized_image_style{style}.png')
    return str(root / 'res')


@pytest.mark.parametrize('leak', [False, True])
def test_quickstart_report_fringe_figure_reads_paint_leaking_past_a_car(tmp_path, leak):
    # The fringes figure: the road next to a car changes between styles only where the car's paint leaks out.
    spec = importlib.util.spec_from_file_location('quickstart_report', os.path.join(REPO_ROOT, 'scripts', 'quickstart_report.py'))
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    figures = report.image_figures(_write_styled_results(tmp_path, leak), str(tmp_path / 'data'))
    assert figures['far_from_car'] == 0
    if leak:
        assert figures['next_to_car'] > 20  # the 1 px ring (a third of the 1-2 px band) swings between red and blue
    else:
        assert figures['next_to_car'] == 0
