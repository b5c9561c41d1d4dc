"""Bad input, faults and untrusted files: one-line errors, clean stops, nothing saved is lost."""

import collections
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from builders import build_data
from helpers import REPO_ROOT, TINY, assert_one_line_error, run_tool
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import OptionsError
from options.train_options import TrainOptions
from util.errors import TrainingError


def snapshot(folder) -> dict:
    return {path: open(path, 'rb').read() for path in sorted(glob.glob(os.path.join(folder, '*'))) if os.path.isfile(path)}


@pytest.mark.parametrize(
    'flag,value', [('--name', '../escape'), ('--name', '/abs/path'), ('--which_epoch', '../../x'), ('--phase', '../train')]
)
def test_path_building_flags_cannot_escape(tmp_path, dataroot, flag, value):
    result = run_tool(*['train.py', '--dataroot', dataroot, '--checkpoints_dir', str(tmp_path)] + TINY + [flag, value])
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    assert flag in result.stderr and 'plain' in result.stderr
    assert not os.path.exists(os.path.join(os.path.dirname(str(tmp_path)), 'escape'))


def test_unwritable_checkpoint_dir_is_reported_before_training(tmp_path, dataroot):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the checkpoints folder should be')
    result = run_tool(*['train.py', '--name', 'exp', '--dataroot', dataroot, '--checkpoints_dir', str(blocker)] + TINY)
    assert_one_line_error(result, 'cannot write to', '--checkpoints_dir')
    assert blocker.read_text() == 'a file where the checkpoints folder should be'


def test_failed_save_keeps_previous_files_and_says_so(tmp_path, dataroot, monkeypatch):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp'], save=True)
    trainer = Pix2PixHDTrainer(opt)
    trainer.save('latest', 1, 0)
    before = snapshot(tmp_path / 'exp')
    trainer.train_step(next(iter(build_data(opt)[1])))

    def disk_full(obj, path, *args, **kwargs):
        with open(path, 'wb') as handle:
            handle.write(b'partial')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', disk_full)
    with pytest.raises(TrainingError, match='No space left on device.*previous checkpoint files are intact'):
        trainer.save('latest', 1, 1)
    assert snapshot(tmp_path / 'exp') == before


def test_nan_loss_stops_with_its_name_and_iteration_without_saving(tmp_path, dataroot, monkeypatch):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp'], save=True)
    trainer = Pix2PixHDTrainer(opt)
    trainer.save('latest', 1, 0)
    before = snapshot(tmp_path / 'exp')
    batches = iter(build_data(opt)[1])
    trainer.train_step(next(batches), step=1)
    trainer.check_finite()  # all finite so far

    original = trainer.model.forward

    def nan_feature_matching(*args, **kwargs):
        losses, generated = original(*args, **kwargs)
        losses['G_GAN_Feat'] = losses['G_GAN_Feat'] * float('nan')
        return losses, generated

    monkeypatch.setattr(trainer.model, 'forward', nan_feature_matching)
    trainer.train_step(next(batches), step=2)
    trainer.train_step(next(batches), step=3)
    with pytest.raises(TrainingError, match=r'loss G_GAN_Feat became NaN or Inf at iteration 2\b'):
        trainer.check_finite()
    with pytest.raises(TrainingError, match='stopped without saving'):
        trainer.save('latest', 1, 3)
    assert snapshot(tmp_path / 'exp') == before


def test_nan_from_a_diverging_run_stops_train_py_cleanly(tmp_path, dataroot):
    result = run_tool(
        *[
            'train.py',
            '--name',
            'diverge',
            '--dataroot',
            dataroot,
            '--checkpoints_dir',
            str(tmp_path),
            '--lr',
            '1e30',
            '--niter',
            '3',
            '--niter_decay',
            '0',
            '--print_freq',
            '1',
            '--save_epoch_freq',
            '1',
        ]
        + TINY
    )
    assert_one_line_error(result, 'became NaN or Inf at iteration', 'stopped without saving')
    for path in glob.glob(str(tmp_path / 'diverge' / '*_net_G.pth')):
        state = torch.load(path, weights_only=True)
        assert all(torch.isfinite(value).all() for value in state.values())


def test_second_signal_exits_at_once_without_corrupting_files(tmp_path, dataroot):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    process = subprocess.Popen(
        [
            sys.executable,
            'train.py',
            '--name',
            'sig',
            '--dataroot',
            dataroot,
            '--checkpoints_dir',
            str(tmp_path),
            '--niter',
            '50',
            '--niter_decay',
            '0',
            '--save_latest_freq',
            '1',
            '--print_freq',
            '1',
        ]
        + TINY,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / 'sig' / 'latest_net_G.pth').exists():
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode in (0, 128 + signal.SIGTERM), output[-2000:]
    assert not glob.glob(str(tmp_path / 'sig' / '*.tmp-*'))
    for path in glob.glob(str(tmp_path / 'sig' / '*.pth')):
        torch.load(path, weights_only=True)  # every checkpoint on disk is whole


def test_check_dataset_summarises_cityscapes(cityscapes_root):
    result = run_tool(*['scripts/check_dataset.py', '--dataroot', cityscapes_root])
    assert result.returncode == 0, result.stderr[-2000:]
    assert '2048x1024 (8)' in result.stdout
    expected = collections.Counter()
    for path in sorted(glob.glob(os.path.join(cityscapes_root, 'train_inst', '*.png'))):
        ids = np.unique(np.asarray(Image.open(path)))
        expected.update(collections.Counter((ids[ids >= 1000] // 1000).tolist()))
    # Rows: class id, official class name (--label_nc 35 is the Cityscapes setting), pixels %, instances.
    rows = {
        int(line.split()[0]): (' '.join(line.split()[1:-2]), int(line.split()[-1]))
        for line in result.stdout.splitlines()
        if len(line.split()) >= 4 and line.split()[0].isdigit()
    }
    assert expected[26] > 0 and rows[26] == ('car', expected[26])
    assert rows[19][0] == 'traffic light' and rows[7][0] == 'road'
    assert all(rows[class_id][1] == count for class_id, count in expected.items())


def test_check_dataset_reports_label_values_above_label_nc(cityscapes_root):
    result = run_tool(*['scripts/check_dataset.py', '--dataroot', cityscapes_root, '--label_nc', '20'])
    assert_one_line_error(result, '>= --label_nc 20', '--label_nc 34')


def test_check_dataset_reports_unpaired_files(tmp_path, cityscapes_root):
    root = tmp_path / 'data'
    for folder in ('train_label', 'train_inst', 'train_img'):
        os.makedirs(root / folder)
        for path in sorted(glob.glob(os.path.join(cityscapes_root, folder, '*.png')))[:2]:
            os.symlink(path, root / folder / os.path.basename(path))
    os.remove(sorted(glob.glob(str(root / 'train_img' / '*.png')))[1])
    result = run_tool(*['scripts/check_dataset.py', '--dataroot', str(root)])
    assert_one_line_error(result, 'does not pair by name', 'aachen_000001_000019_gtFine_labelIds.png')


def test_malformed_gpu_ids_is_an_options_error():
    with pytest.raises(OptionsError):
        TrainOptions('', METHODS).parse(['--gpu_ids', 'zero'], save=False)


def test_tf_log_without_tensorboard_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorboard', None)  # as if not installed: find_spec gives None
    with pytest.raises(OptionsError, match=r"--tf_log needs tensorboard, which is not installed: pip install '\.\[tensorboard\]'"):
        TrainOptions('', METHODS).parse(['--tf_log', '--gpu_ids', '-1'], save=False)
    TrainOptions('', METHODS).parse(['--gpu_ids', '-1'], save=False)  # without --tf_log, tensorboard is not needed
