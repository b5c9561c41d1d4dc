"""Issue #19: nothing saved that is broken, resume says what changed, one run per experiment folder, outputs
are transactions, and a diverging loss does not crash the training page."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import util.records as records
from builders import build_model, build_trainer
from helpers import REPO_ROOT, SUBPROCESS_ENV, TINY, assert_one_line_error, run_tool
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import replace
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions
from test_checkpoint_faults import tree_bytes
from util.divergence import DivergenceMonitor
from util.errors import ModelError, TrainingError
from util.visualizer import loss_curve_svg, nice_ticks

# test.py and the feature scripts: the architecture comes from the experiment's opt.json.
READ = ['--gpu_ids', '-1', '--nThreads', '0', '--loadSize', '64']


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def exp_args(tmp_path, dataroot, *extra) -> list:
    """train.py's flags for the tiny experiment `exp` under tmp_path/checkpoints."""
    return TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path / 'checkpoints'), '--name', 'exp', *extra]


def make_experiment(tmp_path, dataroot, *extra) -> tuple:
    """A trainer whose `latest` set is saved as train.py writes it (options included): (trainer, opt, folder)."""
    opt = TrainOptions('', METHODS).parse(exp_args(tmp_path, dataroot, *extra))
    trainer = Pix2PixHDTrainer(opt)
    trainer.save('latest', 1, 0)
    return trainer, opt, records.experiment_dir(opt)


def poison(tensor: torch.Tensor, value: float = float('nan')) -> None:
    """Write one non-finite value into a tensor in place."""
    with torch.no_grad():
        tensor.view(-1)[0] = value


# ----------------------------------------------------------------------------- 5. the loss plot
@pytest.mark.parametrize('low, high', [(1e17, 1e17), (5e11, 5e11), (-1e308, 1e308), (0.0, float('inf')), (float('nan'), 1.0)])
def test_nice_ticks_take_huge_and_non_finite_ranges(low, high):
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 8 and all(np.isfinite(ticks)) and ticks == sorted(ticks) and ticks[0] < ticks[-1]


def test_the_loss_page_renders_with_one_huge_point():
    svg = loss_curve_svg([(1, 3, {'G_GAN': 5e17, 'D_real': float('nan')})])
    assert svg.count('class="panel"') == 2 and 'nan' not in svg.split('</text>', 1)[1]


# ----------------------------------------------------------------------------- 1. never save what is not finite
def test_a_save_with_a_nan_weight_keeps_the_previous_set_and_names_the_tensor(tmp_path, dataroot):
    trainer, _, folder = make_experiment(tmp_path, dataroot)
    before = tree_bytes(folder)
    key = next(iter(trainer.model.netG.state_dict()))
    poison(trainer.model.netG.state_dict()[key])
    with pytest.raises(TrainingError) as error:
        trainer.save('latest', 3, 7)
    message = str(error.value)
    assert '\n' not in message and f'network G, {key}' in message and 'epoch 3, iteration 7' in message
    assert 'nothing was written' in message
    assert tree_bytes(folder) == before


def test_a_save_with_an_infinite_optimiser_moment_is_refused(tmp_path, dataroot, loaded_batch):
    trainer, _, folder = make_experiment(tmp_path, dataroot)
    trainer.train_step(loaded_batch)
    before = tree_bytes(folder)
    moments = trainer.optimizer_D.state[trainer.params_D[0]]
    poison(moments['exp_avg_sq'], float('inf'))
    with pytest.raises(TrainingError, match=r'optimizer_D, parameter 0 exp_avg_sq'):
        trainer.save('latest', 2, 0)
    assert tree_bytes(folder) == before


def test_a_nan_loss_says_the_checkpoint_is_good_only_when_this_run_verified_one(tmp_path, dataroot, loaded_batch):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp'])
    trainer = Pix2PixHDTrainer(opt)
    poison(next(trainer.model.netG.parameters()))
    trainer.train_step(loaded_batch, step=5)
    with pytest.raises(TrainingError) as error:
        trainer.check_finite()
    assert 'last good' not in str(error.value) and 'nothing was saved by this run' in str(error.value)


def test_the_weight_check_at_print_time_names_the_tensor(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp'])
    trainer = Pix2PixHDTrainer(opt)
    key = list(trainer.model.netD.state_dict())[2]
    poison(trainer.model.netD.state_dict()[key], float('-inf'))
    with pytest.raises(TrainingError, match=f'network D, {key}'):
        trainer.check_weights(epoch=1, epoch_iter=2)


def test_test_time_and_resume_refuse_weights_with_nan_naming_the_file_and_key(tmp_path, dataroot):
    trainer, opt, folder = make_experiment(tmp_path, dataroot)
    path = os.path.join(folder, 'latest_net_G.pth')
    state = torch.load(path, weights_only=True)
    key = list(state)[3]
    poison(state[key])
    torch.save(state, path)
    test_opt = _TestOptions('', METHODS).parse(
        READ + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path / 'checkpoints'), '--name', 'exp'], save=False
    )
    for options in (test_opt, replace(opt, continue_train=True)):
        with pytest.raises(ModelError) as error:
            build_model(options)
        assert path in str(error.value) and key in str(error.value) and 'NaN or Inf' in str(error.value)


def test_resume_refuses_a_training_state_with_nan_moments(tmp_path, dataroot, loaded_batch):
    trainer, opt, folder = make_experiment(tmp_path, dataroot)
    trainer.train_step(loaded_batch)
    poison(trainer.optimizer_G.state[trainer.params_G[0]]['exp_avg'])
    state = trainer.training_state(1, 0)
    torch.save(state, os.path.join(folder, 'latest_train_state.pth'))
    with pytest.raises(ModelError, match=r'latest_train_state.pth.*optimizer_G, parameter 0 exp_avg'):
        build_trainer(replace(opt, continue_train=True))


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
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp'])
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


# ----------------------------------------------------------------------------- 2. resume says what changed
def schedule_trainer(tmp_path, dataroot, *extra) -> Pix2PixHDTrainer:
    args = TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path), '--name', 'exp', '--niter', '1', '--niter_decay', '4']
    return build_trainer(TrainOptions('', METHODS).parse(args + list(extra), save=False))  # train.py saves the options after building


def test_a_new_lr_on_resume_restarts_the_linear_decay_and_never_goes_negative(tmp_path, dataroot, capsys):
    trainer = schedule_trainer(tmp_path, dataroot)
    records.save_options(trainer.opt)
    for epoch in (1, 2):  # end of epochs 1 and 2: lr 0.0002 -> 0.00015
        if epoch > trainer.opt.niter:
            trainer.update_learning_rate(epoch)
    assert trainer.current_lr == pytest.approx(0.00015)
    trainer.save('latest', 3, 0)
    capsys.readouterr()
    resumed = schedule_trainer(tmp_path, dataroot, '--continue_train', '--lr', '0.001')
    notes = capsys.readouterr().out
    assert '--lr 0.0002 -> 0.001' in notes and 'lr 0.00075 from epoch 3' in notes
    assert resumed.current_lr == pytest.approx(0.00075)  # the new schedule at epoch 3: 0.001 * (1 - 1/4)
    rates = []
    for epoch in (3, 4, 5, 6, 7):
        resumed.update_learning_rate(epoch)
        rates.append(resumed.current_lr)
    assert rates == pytest.approx([0.0005, 0.00025, 0.0, 0.0, 0.0]) and min(rates) >= 0
    assert all(group['lr'] >= 0 for group in resumed.optimizer_G.param_groups)


def test_a_flag_restored_from_the_checkpoint_is_said_so(tmp_path, dataroot, capsys):
    make_experiment(tmp_path, dataroot)
    capsys.readouterr()
    build_trainer(TrainOptions('', METHODS).parse(exp_args(tmp_path, dataroot, '--continue_train', '--seed', '7')))
    assert '--seed 0 -> 7' in capsys.readouterr().out


@pytest.mark.parametrize('before, after', [('off', 'fp16'), ('fp16', 'off'), ('bf16', 'fp16'), ('fp16', 'bf16')])
def test_an_amp_change_on_resume_works(tmp_path, dataroot, before, after, capsys):
    trainer, _, folder = make_experiment(tmp_path, dataroot, '--amp', before)
    resumed = build_trainer(TrainOptions('', METHODS).parse(exp_args(tmp_path, dataroot, '--continue_train', '--amp', after)))
    assert resumed.scaler_G.is_enabled() == (after == 'fp16')
    assert f'--amp {before} -> {after}' in capsys.readouterr().out


# ----------------------------------------------------------------------------- 3. one run per experiment folder
LOCK_HOLDER = (
    "import sys; sys.path.insert(0, {root!r}); from util.run_lock import acquire_run_lock; "
    "lock = acquire_run_lock({folder!r}); print('locked', flush=True); sys.stdin.read()"
)


def hold_lock(folder: str) -> subprocess.Popen:
    """A second process that holds the experiment's lock until its stdin closes (or it is killed)."""
    holder = subprocess.Popen(
        [sys.executable, '-c', LOCK_HOLDER.format(root=REPO_ROOT, folder=folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    assert holder.stdout.readline().strip() == 'locked'
    return holder


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder_and_readers_are_not_blocked(tmp_path, dataroot):
    trainer, opt, folder = make_experiment(tmp_path, dataroot)
    holder = hold_lock(folder)
    try:
        before = tree_bytes(folder)
        args = exp_args(tmp_path, dataroot, '--niter', '1', '--niter_decay', '0', '--continue_train')
        line = assert_one_line_error(run_tool('train.py', *args), f'PID {holder.pid}', os.uname().nodename)
        assert folder in line
        assert tree_bytes(folder) == before
        # Readers take committed sets and do not wait for the lock.
        results = tmp_path / 'results'
        test_args = ['--dataroot', dataroot, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'exp', '--results_dir', results]
        result = run_tool('test.py', *READ, *test_args)
        assert result.returncode == 0, result.stderr
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL leaves nothing to clean: the next run takes the folder.
    from util.run_lock import acquire_run_lock

    lock = acquire_run_lock(folder)
    lock.close()


def test_a_save_never_deletes_the_staging_folder_of_a_live_process(tmp_path, dataroot):
    trainer, _, folder = make_experiment(tmp_path, dataroot)
    holder = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE)
    try:
        live = os.path.join(folder, f'.ckpt-{1:020d}-p{holder.pid}-features.partial')
        dead = os.path.join(folder, f'.ckpt-{2:020d}-p{dead_pid()}-latest.partial')
        for staging in (live, dead):
            os.makedirs(staging)
        trainer.save('latest', 1, 0)
        assert os.path.isdir(live) and not os.path.exists(dead)
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- 4. outputs are transactions
@pytest.fixture(scope='module')
def two_test_images(tmp_path_factory):
    from data.synthetic import make_synthetic_dataset

    root = str(tmp_path_factory.mktemp('two'))
    make_synthetic_dataset(root, n_train=2, n_test=2, width=64, height=32, seed=1)
    return root


def test_an_interrupted_rerun_of_test_py_never_leaves_a_page_mixing_two_runs(tmp_path, two_test_images, monkeypatch):
    trainer, _, _ = make_experiment(tmp_path, two_test_images)
    results = tmp_path / 'results'
    args = [*READ, '--dataroot', two_test_images, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'exp', '--results_dir', results]
    assert run_tool('test.py', *args).returncode == 0
    page = results / 'exp' / 'test_latest'
    first = tree_bytes(page)
    with torch.no_grad():
        for tensor in trainer.model.netG.parameters():
            tensor.add_(0.5)
    trainer.save('latest', 2, 0)

    from util.visualizer import Visualizer

    original, calls = Visualizer.save_images, []

    def killed_on_the_second_image(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Visualizer, 'save_images', killed_on_the_second_image)
    with pytest.raises(KeyboardInterrupt):
        run_tool('test.py', *args)
    assert tree_bytes(page) == first  # the first run's page, whole
    monkeypatch.undo()
    assert run_tool('test.py', *args).returncode == 0
    second = tree_bytes(page)
    assert second.keys() == first.keys() and second != first
    assert os.listdir(results / 'exp') == ['test_latest']


@pytest.fixture
def encoded(tmp_path, dataroot):
    """An experiment with E whose features were encoded once: (args, folder, its files)."""
    _, _, folder = make_experiment(tmp_path, dataroot, '--instance_feat')
    args = [*READ, '--dataroot', dataroot, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'exp', '--n_clusters', '2']
    result = run_tool('encode_features.py', *args)
    assert result.returncode == 0, result.stderr
    names = ('features.npz', 'features_clustered_002.npz')
    return args, folder, {name: open(os.path.join(folder, name), 'rb').read() for name in names}


def test_encode_features_interrupted_between_its_writes_keeps_the_old_pair(encoded, monkeypatch):
    args, folder, files = encoded
    # New weights, so the next encoding differs from the first.
    path = os.path.join(folder, 'latest_net_E.pth')
    state = torch.load(path, weights_only=True)
    torch.save({key: value + 0.3 if value.is_floating_point() else value for key, value in state.items()}, path)
    original, calls = np.savez, []

    def second_write_dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(np, 'savez', second_write_dies)
    with pytest.raises(KeyboardInterrupt):
        run_tool('encode_features.py', *args)
    assert {name: open(os.path.join(folder, name), 'rb').read() for name in files} == files
    monkeypatch.undo()
    assert run_tool('encode_features.py', *args).returncode == 0
    now = {name: open(os.path.join(folder, name), 'rb').read() for name in files}
    assert all(now[name] != files[name] for name in files)
    assert not [name for name in os.listdir(folder) if name.startswith('.')]


def test_temporary_files_of_dead_processes_are_swept(encoded):
    args, folder, _ = encoded
    dead = os.path.join(folder, f'features.npz.tmp-{dead_pid()}')
    live = os.path.join(folder, f'features.npz.tmp-{os.getpid()}')
    for path in (dead, live):
        with open(path, 'wb') as handle:
            handle.write(b'half')
    assert run_tool('encode_features.py', *args).returncode == 0
    assert not os.path.exists(dead) and os.path.exists(live)
    os.remove(live)


@pytest.fixture
def loaded_batch(dataroot):
    """One training batch of the tiny configuration."""
    from builders import build_data

    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', '/nonexistent', '--name', 'exp'], save=False)
    _, loader = build_data(opt)
    return next(iter(loader))


@pytest.mark.parametrize('opt_out', [False, True])
def test_train_py_warns_once_when_a_loss_blows_up_finitely(tmp_path, dataroot, monkeypatch, opt_out):
    original = Pix2PixHDTrainer.train_step

    def blowing_up(self, data, infer=False, step=0):
        losses, generated = original(self, data, infer=infer, step=step)
        if step > 6:  # the last two of 8 iterations: a finite loss of ~5e11, as a diverging lr gives
            losses['G_GAN'] = losses['G_GAN'] * 0 + 5e11
        return losses, generated

    monkeypatch.setattr(Pix2PixHDTrainer, 'train_step', blowing_up)
    args = exp_args(tmp_path, dataroot, '--niter', '2', '--niter_decay', '0', '--print_freq', '1', '--display_freq', '100')
    result = run_tool('train.py', *args, *(['--no_divergence_check'] if opt_out else []))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith('warning: G_GAN is 5e+11 at epoch 2, iteration 3')]
    assert len(warnings) == (0 if opt_out else 1), result.stdout[-2000:]
