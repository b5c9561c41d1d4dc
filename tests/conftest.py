"""Shared test fixtures: the repo on sys.path, the reference fixtures in tests/fixtures, the optional Cityscapes samples."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(REPO_ROOT), 'shared')
for path in (REPO_ROOT, TESTS_DIR):  # the project, and tests/helpers.py
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(autouse=True, scope='session')
def private_cache(tmp_path_factory):
    """The label-range cache of data/aligned_dataset.py in a folder of this run, never the user's ~/.cache."""
    os.environ['PIX2PIXHD_CACHE'] = str(tmp_path_factory.mktemp('cache'))  # subprocesses inherit it
    yield
    os.environ.pop('PIX2PIXHD_CACHE', None)


@pytest.fixture(autouse=True, scope='session')
def single_thread():
    """One intra-op thread in the test process: tiny networks, two shared cores, bit-exact comparisons."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def cudnn_autotuner():
    """cuDNN's autotuner as each test found it: building a CUDA model sets it (util/devices.py), which would
    otherwise carry over into later tests."""
    import torch

    previous = torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.benchmark = previous


FIXTURES = os.path.join(TESTS_DIR, 'fixtures')
SAMPLES_VARIABLE = 'PIX2PIXHD_CITYSCAPES_SAMPLES'


@pytest.fixture(scope='session')
def cityscapes_root() -> str:
    """The Cityscapes samples (8 train triples, 15 test pairs) at $PIX2PIXHD_CITYSCAPES_SAMPLES, else ../shared beside the
    checkout. They are licensed, so a clone does not carry them: a test that needs them skips (fails under CI).
    """
    path = os.environ.get(SAMPLES_VARIABLE) or os.path.join(SHARED, 'datasets', 'cityscapes_samples')
    if not os.path.isdir(path):
        reason = (
            f'needs the Cityscapes samples (licensed, not in the repository): not found at {path}; '
            f'set {SAMPLES_VARIABLE}=DIR (train_label/, train_inst/, train_img/, test_label/, test_inst/, test_img/)'
        )
        from helpers import skip_unless_ci

        skip_unless_ci(reason)
    return path


@pytest.fixture(scope='session')
def reference_fixture() -> str:
    """tests/fixtures/reference_tiny: weights, sample and outputs of the 2018 reference (see its meta.json)."""
    return os.path.join(FIXTURES, 'reference_tiny')


@pytest.fixture(scope='session')
def reference_step_fixture() -> str:
    """tests/fixtures/reference_step: two training iterations of the 2018 reference (see its meta.json)."""
    return os.path.join(FIXTURES, 'reference_step')


@pytest.fixture(scope='module')
def dataroot(tmp_path_factory) -> str:
    """A small synthetic Cityscapes-layout dataset: 4 training triples and 1 test pair of 128x64."""
    from data.synthetic import make_synthetic_dataset

    root = str(tmp_path_factory.mktemp('synthetic'))
    make_synthetic_dataset(root, n_train=4, n_test=1, width=128, height=64, seed=0)
    return root


@pytest.fixture
def loaded_batch(dataroot):
    """One training batch of the tiny configuration on `dataroot`."""
    from builders import build_data
    from helpers import train_args
    from models import METHODS
    from options.train_options import TrainOptions

    opt = TrainOptions('', METHODS).parse(train_args('/nonexistent', dataroot, 'exp'), save=False)
    _, loader = build_data(opt)
    return next(iter(loader))
