"""Helpers shared by the end-to-end tests: running the repository's scripts (train.py and test.py on the tiny
configuration: run_train, run_test) and checking their errors, a saved tiny experiment, file-tree snapshots."""

import contextlib
import io
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torchvision

import util.records as records
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.train_options import TrainOptions

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
# test.py's flags in the tests (run_test): the CPU and 64x32 inputs; the architecture comes from the experiment's architecture.json.
TEST_FLAGS = ['--gpu_ids', '-1', '--loadSize', '64']
# The feature scripts' (and TestOptions parsed in-process): TEST_FLAGS and no loader workers (TestOptions.derive sets
# --nThreads 1 whatever it says).
READ = ['--gpu_ids', '-1', '--nThreads', '0', '--loadSize', '64']
ONE_EPOCH = ['--niter', '1', '--niter_decay', '0']


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


def interrupt_job(command: list, env: dict, ready: Callable[[], bool], settle: float = 0.0) -> tuple[int, str]:
    """Run `command` from the repository root as a terminal job (its own process group), wait until `ready()` (then
    `settle` seconds more), Ctrl-C the whole group as a terminal would: (exit status, stderr)."""
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        while process.poll() is None and not ready():
            time.sleep(0.1)
        time.sleep(settle)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, stderr


def run_tool(script: str, *args) -> subprocess.CompletedProcess:
    """`python script args` in this process, output captured, from the repository root: a new interpreter would
    add ~1.6 s of start-up and nothing else where the test needs neither signals sent to it nor its own threads."""
    saved_argv, code = sys.argv, 0
    saved_handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}  # train.py sets them
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [script, *[str(arg) for arg in args]]
    saved_cwd = os.getcwd()
    try:
        os.chdir(REPO_ROOT)  # as run_script's cwd (contextlib.chdir needs Python 3.11)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(os.path.join(REPO_ROOT, script), run_name='__main__')
    except SystemExit as stopped:
        code = stopped.code
        if isinstance(code, str):  # sys.exit('message'): the interpreter prints it and exits 1
            err.write(code + '\n')
            code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())


def train_args(checkpoints, dataroot, name: str, *extra) -> list[str]:
    """train.py's command line of a tiny run: TINY, the experiment `name` under `checkpoints` on `dataroot`, then
    `extra` (a flag of TINY given again in `extra` wins). Also what TrainOptions.parse takes in-process."""
    return [str(arg) for arg in [*TINY, '--name', name, '--checkpoints_dir', checkpoints, '--dataroot', dataroot, *extra]]


def run_train(checkpoints, dataroot, name: str, *extra) -> subprocess.CompletedProcess:
    """train.py on the tiny run of train_args, in this process (run_tool)."""
    return run_tool('train.py', *train_args(checkpoints, dataroot, name, *extra))


def run_test(checkpoints, dataroot, name: str, *extra) -> subprocess.CompletedProcess:
    """test.py on the experiment `name` under `checkpoints` (its architecture from architecture.json) on the CPU at 64x32,
    then `extra` (--results_dir, ...), in this process (run_tool)."""
    return run_tool('test.py', *TEST_FLAGS, '--name', name, '--checkpoints_dir', checkpoints, '--dataroot', dataroot, *extra)


def make_experiment(checkpoints, dataroot, *extra) -> tuple:
    """A trainer of the tiny experiment `exp` whose `latest` set is saved as train.py writes it (options included):
    (trainer, opt, experiment folder)."""
    opt = TrainOptions('', METHODS).parse(train_args(checkpoints, dataroot, 'exp', *extra))
    trainer = Pix2PixHDTrainer(opt)
    trainer.save('latest', 1, 0)
    return trainer, opt, records.experiment_dir(opt)


def tree_bytes(folder) -> dict:
    """{relative path: content} of every file under `folder`, hidden ones included."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, folder)] = handle.read()
    return found


def one_line(error: BaseException) -> str:
    """The message of a user error, asserted to be a single line."""
    message = str(error)
    assert '\n' not in message and message.strip(), message
    return message


def poison(tensor: torch.Tensor, value: float = float('nan')) -> None:
    """Write one non-finite value into a tensor in place."""
    with torch.no_grad():
        tensor.view(-1)[0] = value


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


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


def random_inception_weights(path: str) -> str:
    """A randomly initialised state_dict of torch-fidelity's Inception, saved to `path` (He init keeps the features away
    from 0 / inf): the real loading code runs, nothing is downloaded."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception

    with pytest.MonkeyPatch.context() as patch:  # build the network without its download
        patch.setattr(fidelity_inception, 'load_state_dict_from_url', lambda *args, **kwargs: {})
        patch.setattr(fidelity_inception.FeatureExtractorInceptionV3, 'load_state_dict', lambda self, state: None)
        inception = fidelity_inception.FeatureExtractorInceptionV3('inception-v3-compat', ['2048'])
    torch.manual_seed(0)
    for module in inception.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity='relu')
    torch.save(inception.state_dict(), path)
    return path
