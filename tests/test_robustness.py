"""Bad input, faults and untrusted files: one-line errors, clean stops, nothing saved is lost; a loss or weight that
is not finite stops training naming it, and a finite divergence is warned about once (--no_divergence_check)."""

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
from helpers import REPO_ROOT, TINY, assert_one_line_error, poison, run_tool, run_train, train_args
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import OptionsError
from options.train_options import TrainOptions
from util.divergence import DivergenceMonitor
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
    result = run_train(blocker, dataroot, 'exp')
    assert_one_line_error(result, 'cannot write to', '--checkpoints_dir')
    assert blocker.read_text() == 'a file where the checkpoints folder should be'


def test_failed_save_keeps_previous_files_and_says_so(tmp_path, dataroot, monkeypatch):
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path, dataroot, 'exp'), save=True)
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
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path, dataroot, 'exp'), save=True)
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
    result = run_train(
        tmp_path, dataroot, 'diverge', '--lr', '1e30', '--niter', '3', '--niter_decay', '0', '--print_freq', '1', '--save_epoch_freq', '1'
    )
    assert_one_line_error(result, 'became NaN or Inf at iteration', 'stopped without saving')
    for path in glob.glob(str(tmp_path / 'diverge' / '*_net_G.pth')):
        state = torch.load(path, weights_only=True)
        assert all(torch.isfinite(value).all() for value in state.values())


def test_a_nan_loss_says_the_checkpoint_is_good_only_when_this_run_verified_one(tmp_path, dataroot, loaded_batch):
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path, dataroot, 'exp'))
    trainer = Pix2PixHDTrainer(opt)
    poison(next(trainer.model.netG.parameters()))
    trainer.train_step(loaded_batch, step=5)
    with pytest.raises(TrainingError) as error:
        trainer.check_finite()
    assert 'last good' not in str(error.value) and 'nothing was saved by this run' in str(error.value)


def test_the_weight_check_at_print_time_names_the_tensor(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path, dataroot, 'exp'))
    trainer = Pix2PixHDTrainer(opt)
    key = list(trainer.model.netD.state_dict())[2]
    poison(trainer.model.netD.state_dict()[key], float('-inf'))
    with pytest.raises(TrainingError, match=f'network D, {key}'):
        trainer.check_weights(epoch=1, epoch_iter=2)


def test_finite_divergence_is_warned_about_once_and_can_be_switched_off():
    monitor = DivergenceMonitor()
    for value in (1.0, 0.8, 1.2, 0.9, 1.1, 1.0):
        assert monitor.update({'G_GAN': value, 'D_real': 0.3}, 'epoch 1, iteration 6') == []
    warnings = monitor.update({'G_GAN': 5e11, 'D_real': 0.3}, 'epoch 2, iteration 3')
    assert (
        len(warnings) == 1 and 'G_GAN' in warnings[0] and 'epoch 2, iteration 3' in warnings[0] and '--no_divergence_check' in warnings[0]
    )
    assert monitor.update({'G_GAN': 6e11, 'D_real': 0.3}, 'later') == []  # said once while it stays diverged
    # Small losses that grow to ordinary sizes are not a divergence.
    quiet = DivergenceMonitor()
    for value in (1e-5, 2e-5, 1e-5, 1e-5, 1e-5, 0.5):
        assert quiet.update({'D_fake': value}, 'now') == []


def test_exploding_weights_are_warned_about(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path, dataroot, 'exp'))
    trainer = Pix2PixHDTrainer(opt)
    monitor = DivergenceMonitor()
    for _ in range(6):
        assert monitor.update(trainer.check_weights(1, 1), 'before') == []
    with torch.no_grad():
        next(trainer.model.netG.parameters()).mul_(4e9)
    warnings = monitor.update(trainer.check_weights(1, 2), 'epoch 1, iteration 2')
    assert len(warnings) == 1 and 'weights of G' in warnings[0]


def test_the_opt_out_flag_is_in_the_logging_group():
    help_text = TrainOptions('', METHODS).make_parser().format_help()
    section = help_text.split('logging and saving:')[1].split('\n\n')[0]
    assert '--no_divergence_check' in section


@pytest.mark.parametrize('opt_out', [False, True])
def test_train_py_warns_once_when_a_loss_blows_up_finitely(tmp_path, dataroot, monkeypatch, opt_out):
    original = Pix2PixHDTrainer.train_step

    def blowing_up(self, data, infer=False, step=0):
        losses, generated = original(self, data, infer=infer, step=step)
        if step > 6:  # the last two of 8 iterations: a finite loss of ~5e11, as a diverging lr gives
            losses['G_GAN'] = losses['G_GAN'] * 0 + 5e11
        return losses, generated

    monkeypatch.setattr(Pix2PixHDTrainer, 'train_step', blowing_up)
    args = ['--niter', '2', '--niter_decay', '0', '--print_freq', '1', '--display_freq', '100']
    result = run_train(tmp_path / 'checkpoints', dataroot, 'exp', *args, *(['--no_divergence_check'] if opt_out else []))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith('warning: G_GAN is 5e+11 at epoch 2, iteration 3')]
    assert len(warnings) == (0 if opt_out else 1), result.stdout[-2000:]


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
