"""The shell recipes stay in sync with the option parsers, and the quickstart runs end to end."""

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import SUBPROCESS_ENV, TINY, assert_ok, run_script
from options.test_options import TestOptions as TestOptionsParser
from options.train_options import TrainOptions

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_512p*.sh')) + glob.glob(os.path.join(REPO_ROOT, 'scripts', '*_1024p*.sh')))
PARSERS = {'train.py': TrainOptions, 'test.py': TestOptionsParser}


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
    }
    assert expected <= names


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
    opt = TrainOptions().parse(command[1:] + ['--gpu_ids', '-1'], save=False)
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
    opt = TrainOptions().parse(command[1:] + ['--gpu_ids', '-1'], save=False)
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


def test_benchmark_runs_a_feature_model_and_prints_its_row():
    """scripts/benchmark.py on a model with instance features: a training model has E and no clusters, so its
    inference encodes the photo (this crashed on the test-only --use_encoded_image flag)."""
    result = run_script('scripts/benchmark.py', '--iters', 1, '--warmup', 0, *TINY, '--instance_feat', '--nef', 4)
    assert_ok(result)
    row = next(line for line in result.stdout.splitlines() if line.startswith('as flagged'))
    assert float(row.split()[2]) > 0 and float(row.split()[5]) > 0  # ms/iter and inference ms/img measured
