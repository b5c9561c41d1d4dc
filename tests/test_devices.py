"""util/devices.py: cuDNN's autotuner follows the reference's rule, set through the trainer and the model builder."""

import pytest
import torch

from helpers import TINY
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import replace
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.devices import autotune_convolutions
from util.errors import OptionsError


@pytest.mark.parametrize(
    ('train', 'resize_or_crop', 'expected'),
    [
        (True, 'scale_width', True),
        (True, 'resize_and_crop', True),
        (True, 'none', False),
        (False, 'none', True),
        (False, 'scale_width', True),
    ],
)
def test_autotuner_follows_the_reference_rule_on_cuda(tmp_path, train, resize_or_crop, expected):
    # On for one-size inputs (crops, rescaled images, inference); off for full-resolution training (its trial
    # runs can run out of memory), also after an earlier model turned it on. Only the option values matter,
    # so a CPU machine checks the rule (conftest.py restores the setting after each test).
    options = TrainOptions('', METHODS) if train else TestOptions('', METHODS)
    opt = options.parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), '--resize_or_crop', resize_or_crop], save=False)
    torch.backends.cudnn.benchmark = not expected
    autotune_convolutions(replace(opt, device='cuda:0'))
    assert torch.backends.cudnn.benchmark is expected


@pytest.mark.parametrize('before', [False, True])
def test_the_cpu_leaves_the_autotuner_alone(tmp_path, before):
    opt = TestOptions('', METHODS).parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path)], save=False)
    torch.backends.cudnn.benchmark = before
    autotune_convolutions(opt)
    assert torch.backends.cudnn.benchmark is before


def test_trainers_and_built_models_apply_the_rule(tmp_path, dataroot, monkeypatch):
    # train.py, test.py, the editor build through builders.build_model; a benchmark's trainer may not (step_time.py).
    import builders
    import models.common.trainer_base

    seen = []
    monkeypatch.setattr(models.common.trainer_base, 'autotune_convolutions', seen.append)
    monkeypatch.setattr(builders, 'autotune_convolutions', seen.append)
    opt = TrainOptions('', METHODS).parse([*TINY, '--dataroot', dataroot, '--checkpoints_dir', str(tmp_path)], save=False)
    Pix2PixHDTrainer(opt)
    assert seen == [opt]
    builders.build_model(opt)
    assert seen == [opt, opt]


def test_cpu_threads_sets_the_threads_of_the_process_that_builds_the_model(tmp_path):
    """--cpu_threads N: the process runs its CPU operations on N threads once its model is built (train.py, test.py,
    the feature scripts and the editor all build through builders.build_model); 0 keeps PyTorch's default."""
    from builders import build_model

    before = torch.get_num_threads()
    args = [*TINY, '--checkpoints_dir', str(tmp_path)]
    try:
        torch.set_num_threads(2)
        build_model(TrainOptions('', METHODS).parse(args, save=False))
        assert torch.get_num_threads() == 2
        build_model(TrainOptions('', METHODS).parse([*args, '--cpu_threads', '1'], save=False))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(OptionsError, match=r"--cpu_threads -1 must be >= 0"):
        TrainOptions('', METHODS).parse([*args, '--cpu_threads', '-1'], save=False)
