"""Shared test fixtures: the repo on sys.path and the Cityscapes samples / reference fixture folders."""

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
def single_thread():
    """One intra-op thread in the test process: tiny networks, two shared cores, bit-exact comparisons."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _required_folder(path: str, what: str) -> str:
    # Fail (not skip): CI must have these folders, and a silently skipped suite proves nothing.
    if not os.path.isdir(path):
        pytest.fail(f"{what} not found at {path}: the tests need ../shared beside the repository", pytrace=False)
    return path


@pytest.fixture(scope='session')
def cityscapes_root() -> str:
    """../shared/datasets/cityscapes_samples (8 train triples, 15 test pairs)."""
    return _required_folder(os.path.join(SHARED, 'datasets', 'cityscapes_samples'), 'Cityscapes samples')


@pytest.fixture(scope='session')
def reference_fixture() -> str:
    """../shared/fixtures/reference_tiny (weights, sample and outputs of the 2018 reference)."""
    return _required_folder(os.path.join(SHARED, 'fixtures', 'reference_tiny'), 'reference fixture')


@pytest.fixture(scope='session')
def reference_step_fixture() -> str:
    """../shared/fixtures/reference_step (two training iterations of the 2018 reference)."""
    return _required_folder(os.path.join(SHARED, 'fixtures', 'reference_step'), 'reference step fixture')


@pytest.fixture(scope='module')
def dataroot(tmp_path_factory) -> str:
    """A small synthetic Cityscapes-layout dataset: 4 training triples and 1 test pair of 128x64."""
    from data.synthetic import make_synthetic_dataset

    root = str(tmp_path_factory.mktemp('synthetic'))
    make_synthetic_dataset(root, n_train=4, n_test=1, width=128, height=64, seed=0)
    return root
