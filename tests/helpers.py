"""Helpers shared by the end-to-end tests: running the repository's scripts and checking their errors."""

import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CI must have everything a test needs (../shared beside the clone, Chromium): a silently skipped test proves nothing there.
UNDER_CI = os.environ.get('CI', '').lower() == 'true'

# The networks in tests are tiny: one thread per process avoids oversubscribing CI's two cores
# (several OpenMP threads per process on a busy machine make a 64x32 convolution ~50x slower).
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

# The flags of every tiny run in the tests: CPU, seeded, no loader workers, no VGG loss (no download) and
# a tiny global model on 64x32 inputs (CPU steps of a few milliseconds). A test that needs another size
# or architecture puts its own flags after these (argparse keeps the last value).
TINY = [
    '--gpu_ids',
    '-1',
    '--seed',
    '0',
    '--nThreads',
    '0',
    '--no_vgg_loss',
    '--loadSize',
    '64',
    '--ngf',
    '4',
    '--ndf',
    '4',
    '--n_blocks_global',
    '1',
    '--n_downsample_global',
    '2',
]


def run_script(script, *args, timeout=300) -> subprocess.CompletedProcess:
    """Run a script of the repository (or `-m module`) as the user would, from the repository root."""
    return subprocess.run(
        [sys.executable, script, *[str(a) for a in args]],
        cwd=REPO_ROOT,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_ok(result: subprocess.CompletedProcess) -> None:
    """Exit 0, else show the end of both streams."""
    assert result.returncode == 0, f'exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}'


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 1 and a single `error: ...` line on stderr naming every fragment; no stack dump."""
    assert result.returncode == 1, f'exit {result.returncode}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-3000:]}'
    assert 'Traceback' not in result.stderr and 'Traceback' not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('error: '), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def run_in_process(capsys, script: str, *args) -> subprocess.CompletedProcess:
    """`python script args` run in this process (no interpreter start-up; for runs that stop before training)."""
    saved_argv, code = sys.argv, 0
    sys.argv = [script, *[str(arg) for arg in args]]
    try:
        runpy.run_path(os.path.join(REPO_ROOT, script), run_name='__main__')
    except SystemExit as stopped:
        code = stopped.code
    finally:
        sys.argv = saved_argv
    output = capsys.readouterr()
    return subprocess.CompletedProcess([script, *args], code, output.out, output.err)


def reference_vgg19_state_dict() -> dict:
    """meta.json's recipe: He-normal features weights from default_rng(1234) in state_dict order, zero biases."""
    with torch.device('meta'):  # only the keys and shapes: no 140M-parameter initialisation
        shapes = {key: value.shape for key, value in torchvision.models.vgg19(weights=None).state_dict().items()}
    rng = np.random.default_rng(1234)
    state_dict = {}
    for key, shape in shapes.items():
        if key.startswith('features.') and key.endswith('.weight'):
            fan_in = int(np.prod(shape[1:]))
            state_dict[key] = torch.from_numpy((rng.standard_normal(tuple(shape)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif key.startswith('features.'):
            state_dict[key] = torch.zeros(shape)
        else:
            # The classifier is unused: a stride-0 view of one zero saves as a single number.
            state_dict[key] = torch.zeros(1).expand(shape)
    return state_dict


def skip_unless_ci(reason: str) -> None:
    """A test whose prerequisite is missing: skipped with `reason`, except under CI, where it fails."""
    if UNDER_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
