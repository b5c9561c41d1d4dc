"""Checkpoints and experiment folders: a save is all or nothing and never writes what is not finite, a load refuses
non-finite tensors, a refused start or resume changes nothing on disk, one run per experiment folder, and a resume
after the dataset or the batch size changed."""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import util.checkpoint as checkpoint
import util.records as records
from builders import build_model, build_trainer
from helpers import (
    ONE_EPOCH,
    READ,
    REPO_ROOT,
    SUBPROCESS_ENV,
    assert_ok,
    assert_one_line_error,
    dead_pid,
    make_experiment,
    one_line,
    poison,
    run_test,
    run_train,
    train_args,
    tree_bytes,
)
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import replace
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions
from util.errors import ModelError, OptionsError, TrainingError
from util.iter_counter import resume_position


def hidden_entries(folder) -> list:
    """Staging or committed folders (or anything else hidden) left in an experiment folder."""
    return sorted(name for name in os.listdir(folder) if name.startswith('.'))


# ----------------------------------------------------------------------------- 1. checkpoints are transactions
def set_values(nets: dict, value: float) -> None:
    """Fill every parameter and buffer with `value`, so that a loaded file tells which save wrote it."""
    with torch.no_grad():
        for net in nets.values():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.fill_(value)


def loaded_save(save_dir: str) -> int:
    """Load the `latest` set as --continue_train does and return which save it is; every member must agree."""
    epoch, epoch_iter = checkpoint.read_iter_file(save_dir)
    state = checkpoint.load_training_state(save_dir, 'latest')
    marks = {'iter.txt': epoch_iter, 'train_state': state['epoch_iter']}
    for name in ('G', 'D'):
        weights = checkpoint.read_state_dict(checkpoint.network_path(save_dir, name, 'latest'), name, 'latest', save_dir)
        values = {float(tensor.float().flatten()[0]) for tensor in weights.values() if tensor.is_floating_point()}
        assert len(values) == 1, (name, values)
        marks[name] = int(values.pop())
    assert len(set(marks.values())) == 1, f'a mixed set: {marks}'
    return epoch_iter


def top_level_save(save_dir: str) -> int:
    """Which save the reference-named files at the top level hold (a reader that ignores the manifest)."""
    marks = {
        'iter.txt': int(np.loadtxt(os.path.join(save_dir, 'iter.txt'), delimiter=',', dtype=int)[1]),
        'train_state': torch.load(os.path.join(save_dir, 'latest_train_state.pth'), weights_only=True)['epoch_iter'],
    }
    for name in ('G', 'D'):
        weights = torch.load(os.path.join(save_dir, f'latest_net_{name}.pth'), weights_only=True)
        marks[name] = int(float(next(iter(weights.values())).flatten()[0]))
    assert len(set(marks.values())) == 1, f'a mixed set at the top level: {marks}'
    return marks['G']


@pytest.fixture
def saved_once(tmp_path, dataroot):
    """A trainer whose `latest` set holds save 1 (every weight 1.0, iter.txt at image 1), as train.py writes it."""
    opt = TrainOptions('', METHODS).parse(train_args(tmp_path / 'checkpoints', dataroot, 'exp'), save=True)
    trainer = Pix2PixHDTrainer(opt)
    nets = trainer.model.networks_by_name()
    set_values(nets, 1.0)
    trainer.save('latest', 1, 1)
    save_dir = records.experiment_dir(opt)
    set_values(nets, 2.0)  # save 2 is the one the tests let fail
    return {'trainer': trainer, 'nets': nets, 'dir': save_dir, 'pristine': str(tmp_path / 'pristine')}


def restore(folder: str, copy: str) -> None:
    shutil.rmtree(folder)
    shutil.copytree(copy, folder)


class FileSystemSteps:
    """Counts the file-system steps of a save (a file written, fsync, mkdir, rename, removal) and acts on the n-th.

    `fail_at`: that step raises as a full or read-only disk would (a writer leaves some bytes behind first);
    `before_each`: called before every step, e.g. to copy the folder as a SIGKILL at that moment would leave it.
    """

    PATCHED = (
        (torch, 'save'),
        (np, 'savetxt'),
        (os, 'fsync'),
        (os, 'makedirs'),
        (os, 'rename'),
        (os, 'replace'),
        (os, 'remove'),
        (os, 'rmdir'),
    )

    def __init__(self, patcher: pytest.MonkeyPatch, fail_at: int = 0, before_each=None) -> None:
        self.count, self.fail_at, self.before_each, self.names, self.failed = 0, fail_at, before_each, [], None
        self.in_hook = False  # the hook's own file-system calls are not steps of the save
        for module, name in self.PATCHED:
            patcher.setattr(module, name, self.wrap(getattr(module, name), name))

    def wrap(self, original, name):
        def step(*args, **kwargs):
            if self.in_hook:
                return original(*args, **kwargs)
            self.count += 1
            self.names.append(name)
            if self.before_each is not None:
                self.in_hook = True
                try:
                    self.before_each(self.count)
                finally:
                    self.in_hook = False
            if self.count != self.fail_at:
                return original(*args, **kwargs)
            self.failed = name
            if name == 'save':  # torch's serializer on a full disk: some bytes written, then a RuntimeError
                with open(args[1], 'wb') as handle:
                    handle.write(b'PK\x03\x04 partial')
                raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534')
            if name == 'savetxt':
                with open(args[0], 'w') as handle:
                    handle.write('1')
                raise OSError(errno.ENOSPC, 'No space left on device')
            raise PermissionError(errno.EACCES, 'Permission denied')

        return step


def test_a_failure_at_every_step_of_a_save_keeps_one_whole_set(saved_once):
    save_dir, trainer = saved_once['dir'], saved_once['trainer']
    shutil.copytree(save_dir, saved_once['pristine'])
    before = tree_bytes(save_dir)
    with pytest.MonkeyPatch.context() as patcher:
        clean = FileSystemSteps(patcher)
        trainer.save('latest', 1, 2)
    commit_step = clean.names.index('rename') + 1
    assert loaded_save(save_dir) == 2 and top_level_save(save_dir) == 2 and not hidden_entries(save_dir)
    outcomes = []
    for fail_at in range(1, clean.count + 1):
        restore(save_dir, saved_once['pristine'])
        with pytest.MonkeyPatch.context() as patcher:
            steps = FileSystemSteps(patcher, fail_at=fail_at)
            try:
                trainer.save('latest', 1, 2)
                message = None
            except TrainingError as error:
                message = one_line(error)
        assert steps.failed == clean.names[fail_at - 1]
        if fail_at <= commit_step:  # the commit never happened: everything as it was, and the message says so
            assert message is not None and 'the previous checkpoint files are intact' in message, (fail_at, message)
            assert tree_bytes(save_dir) == before, f'step {fail_at} ({steps.failed}) changed the previous files'
            assert loaded_save(save_dir) == 1
            outcomes.append('intact')
        else:  # committed: the new set is what loads, and the message never claims the old one survived
            assert message is None or ('intact' not in message and 'was saved completely' in message), (fail_at, message)
            assert loaded_save(save_dir) == 2
            checkpoint.recover_checkpoints(save_dir)  # what the next save or train.py start does
            assert top_level_save(save_dir) == 2 and not hidden_entries(save_dir)
            outcomes.append('saved' if message is None else 'committed')
    assert outcomes.count('intact') == commit_step and 'committed' in outcomes, outcomes


def test_a_kill_at_every_step_of_a_save_leaves_a_loadable_set(saved_once, tmp_path):
    """Copy the folder before each step, as a SIGKILL at that moment would leave it, then load and recover each copy."""
    save_dir, trainer = saved_once['dir'], saved_once['trainer']
    before = tree_bytes(save_dir)
    copies = []

    def copy_now(step: int) -> None:
        copies.append(str(tmp_path / f'killed_at_{step:02d}'))
        shutil.copytree(save_dir, copies[-1])

    with pytest.MonkeyPatch.context() as patcher:
        steps = FileSystemSteps(patcher, before_each=copy_now)
        trainer.save('latest', 1, 2)
    commit_step = steps.names.index('rename') + 1
    seen = []
    for step, copy in enumerate(copies, start=1):
        for path in os.listdir(copy):
            if path.endswith('.pth'):
                torch.load(os.path.join(copy, path), weights_only=True)  # every visible file is whole
        seen.append(loaded_save(copy))
        if step <= commit_step:
            assert {path: data for path, data in tree_bytes(copy).items() if not path.startswith('.')} == before
        checkpoint.recover_checkpoints(copy)
        assert top_level_save(copy) == seen[-1] and loaded_save(copy) == seen[-1] and not hidden_entries(copy)
    assert seen == [1] * commit_step + [2] * (len(copies) - commit_step), seen


def test_a_save_replaces_the_whole_set_and_drops_members_it_does_not_have(saved_once):
    save_dir, trainer = saved_once['dir'], saved_once['trainer']
    stale_E = os.path.join(save_dir, 'latest_net_E.pth')
    shutil.copyfile(os.path.join(save_dir, 'latest_net_G.pth'), stale_E)  # from an earlier run with --instance_feat
    trainer.save('latest', 1, 2)
    assert not os.path.exists(stale_E) and top_level_save(save_dir) == 2 and not hidden_entries(save_dir)


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB file system (tmpfs) to fill up; skipped where mounting is not permitted (not root, containers)."""
    mount_point = tmp_path / 'disk'
    mount_point.mkdir()
    if not hasattr(os, 'geteuid') or os.geteuid() != 0 or shutil.which('mount') is None:
        pytest.skip('mounting a tmpfs needs root; the simulated failures above cover the same steps')
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here ({result.stderr.strip()}); the simulated failures above cover the same steps')
    yield str(mount_point)
    subprocess.run(['umount', '-l', str(mount_point)], capture_output=True)


def test_a_full_disk_at_every_file_of_a_save_keeps_the_previous_set(small_disk, dataroot):
    opt = TrainOptions('', METHODS).parse(train_args(small_disk, dataroot, 'exp'), save=True)
    trainer = Pix2PixHDTrainer(opt)
    nets = trainer.model.networks_by_name()
    set_values(nets, 1.0)
    trainer.save('latest', 1, 1)
    save_dir = records.experiment_dir(opt)
    before = tree_bytes(save_dir)
    set_values(nets, 2.0)
    filler = os.path.join(small_disk, 'filler')
    written, failed_after, messages = [], set(), []
    original_write = checkpoint.write_synced

    def count_written(path, write):  # observes only: which files of the set were complete when the disk filled up
        original_write(path, write)
        written.append(os.path.basename(path))

    for room in range(0, 2**20, 4096):  # tmpfs hands out whole pages
        with open(filler, 'wb') as handle:
            handle.write(b'\0' * max(0, shutil.disk_usage(small_disk).free - room))
        written.clear()
        try:
            with pytest.MonkeyPatch.context() as patcher:
                patcher.setattr(checkpoint, 'write_synced', count_written)
                trainer.save('latest', 1, 2)
            break
        except TrainingError as error:
            messages.append(one_line(error))
        finally:
            os.remove(filler)
        failed_after.add(len(written))
        assert 'the previous checkpoint files are intact' in messages[-1] and 'MiB free there' in messages[-1]
        assert tree_bytes(save_dir) == before and loaded_save(save_dir) == 1
    # The disk filled up while writing G, D, the training state, iter.txt and the manifest, and with room for it all the save went through.
    assert failed_after == {0, 1, 2, 3, 4}, failed_after
    assert any('unexpected pos' in message for message in messages)  # torch's own words for a full disk
    assert any('No space left on device' in message for message in messages)
    assert loaded_save(save_dir) == 2 and top_level_save(save_dir) == 2


KILLED_SAVER = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
from util.checkpoint import save_checkpoint
nets = {'G': torch.nn.Conv2d(3, 64, 3), 'D': torch.nn.Conv2d(3, 128, 5)}
for mark in range(int(sys.argv[3]), 10 ** 6):
    with torch.no_grad():
        for net in nets.values():
            for tensor in net.state_dict().values():
                tensor.fill_(mark)
    save_checkpoint(sys.argv[2], 'latest', nets, {'epoch_iter': mark, 'payload': torch.full((300000,), float(mark))}, (1, mark))
    print(mark, flush=True)
'''


def test_sigkill_at_a_random_moment_of_a_save_leaves_every_file_loadable(tmp_path):
    save_dir = str(tmp_path / 'exp')
    os.makedirs(save_dir)
    rng = random.Random()
    mark = 1
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, '-c', KILLED_SAVER, REPO_ROOT, save_dir, str(mark)], env=SUBPROCESS_ENV, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == str(mark)  # one save done: from now on it is always saving
        time.sleep(rng.uniform(0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        for name in os.listdir(save_dir):
            if name.endswith('.pth'):
                torch.load(os.path.join(save_dir, name), weights_only=True)
        mark = loaded_save(save_dir)
        checkpoint.recover_checkpoints(save_dir)
        assert top_level_save(save_dir) == mark and loaded_save(save_dir) == mark and not hidden_entries(save_dir)
        mark += 1


def test_a_full_disk_outside_a_checkpoint_save_is_one_line(tmp_path, capsys):
    from util.cli import run_main

    def main():
        raise OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'loss_log.txt'))

    with pytest.raises(SystemExit) as stopped:
        run_main(main)
    error = capsys.readouterr().err
    assert stopped.value.code == 1 and error.count('\n') == 1
    assert error.startswith(f'error: {tmp_path / "loss_log.txt"}: No space left on device; free space')
    with pytest.raises(FileNotFoundError):  # other OS errors are not the machine's state: they stay tracebacks
        run_main(lambda: open(tmp_path / 'missing'))


# ----------------------------------------------------------------------------- 2. never save or load what is not finite
def test_a_save_with_a_nan_weight_keeps_the_previous_set_and_names_the_tensor(tmp_path, dataroot):
    trainer, _, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
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
    trainer, _, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
    trainer.train_step(loaded_batch)
    before = tree_bytes(folder)
    moments = trainer.optimizer_D.state[trainer.params_D[0]]
    poison(moments['exp_avg_sq'], float('inf'))
    with pytest.raises(TrainingError, match=r'optimizer_D, parameter 0 exp_avg_sq'):
        trainer.save('latest', 2, 0)
    assert tree_bytes(folder) == before


def test_test_time_and_resume_refuse_weights_with_nan_naming_the_file_and_key(tmp_path, dataroot):
    trainer, opt, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
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
    trainer, opt, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
    trainer.train_step(loaded_batch)
    poison(trainer.optimizer_G.state[trainer.params_G[0]]['exp_avg'])
    state = trainer.training_state(1, 0)
    torch.save(state, os.path.join(folder, 'latest_train_state.pth'))
    with pytest.raises(ModelError, match=r'latest_train_state.pth.*optimizer_G, parameter 0 exp_avg'):
        build_trainer(replace(opt, continue_train=True))


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
    trainer, opt, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
    holder = hold_lock(folder)
    try:
        before = tree_bytes(folder)
        result = run_train(tmp_path / 'checkpoints', dataroot, 'exp', *ONE_EPOCH, '--continue_train')
        line = assert_one_line_error(result, f'PID {holder.pid}', os.uname().nodename)
        assert folder in line
        assert tree_bytes(folder) == before
        # Readers take committed sets and do not wait for the lock.
        result = run_test(tmp_path / 'checkpoints', dataroot, 'exp', '--nThreads', '0', '--results_dir', tmp_path / 'results')
        assert result.returncode == 0, result.stderr
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL leaves nothing to clean: the next run takes the folder.
    from util.run_lock import acquire_run_lock

    lock = acquire_run_lock(folder)
    lock.close()


def test_a_save_never_deletes_the_staging_folder_of_a_live_process(tmp_path, dataroot):
    trainer, _, folder = make_experiment(tmp_path / 'checkpoints', dataroot)
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


# ----------------------------------------------------------------------------- 4. end to end: one trained experiment
def train_exp(checkpoints, dataroot, *extra) -> subprocess.CompletedProcess:
    """train.py on the experiment `exp` for one epoch (unless `extra` says otherwise)."""
    return run_train(checkpoints, dataroot, 'exp', *ONE_EPOCH, *extra)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, dataroot):
    """train.py for one epoch of 4 images with --print_freq/--display_freq 100 (longer than the run)."""
    checkpoints = tmp_path_factory.mktemp('trained')
    assert_ok(train_exp(checkpoints, dataroot))
    return {'dir': str(checkpoints / 'exp'), 'dataroot': dataroot}


@pytest.fixture
def experiment(trained, tmp_path):
    """A private copy of the trained experiment: (checkpoints_dir, experiment folder)."""
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(trained['dir'], checkpoints / 'exp')
    return checkpoints, str(checkpoints / 'exp')


def test_page_and_loss_log_exist_after_a_run_shorter_than_the_print_and_display_freq(trained):
    log = open(os.path.join(trained['dir'], 'loss_log.txt')).read()
    assert '(epoch: 1, iters: 4,' in log  # the run's last iteration is logged
    page = open(os.path.join(trained['dir'], 'web', 'index.html')).read()
    assert 'epoch001_iter0000004_synthesized_image.png' in page and 'training losses' in page
    assert os.path.isfile(os.path.join(trained['dir'], 'web', 'images', 'epoch001_iter0000004_synthesized_image.png'))


def test_refused_resume_names_every_differing_flag_and_changes_nothing(experiment, dataroot):
    checkpoints, folder = experiment
    before = tree_bytes(folder)
    result = train_exp(checkpoints, dataroot, '--continue_train', '--label_nc', '20', '--ndf', '8')
    assert_one_line_error(
        result,
        'was saved with other flags (architecture.json and opt.json)',
        '--label_nc 35 (saved) vs 20 (now)',
        '--ndf 4 (saved) vs 8 (now)',
    )
    assert tree_bytes(folder) == before


def test_refused_resume_on_checkpoint_shapes_changes_nothing(experiment, dataroot):
    checkpoints, folder = experiment
    # e.g. weights copied from the reference code: no opt.json nor architecture.json, only the shapes can tell
    for name in ('opt.json', 'architecture.json'):
        os.remove(os.path.join(folder, name))
    before = tree_bytes(folder)
    result = train_exp(checkpoints, dataroot, '--continue_train', '--ngf', '8')
    assert_one_line_error(result, 'latest_net_G.pth does not fit the options', 'shape mismatches')
    assert tree_bytes(folder) == before and not os.path.exists(os.path.join(folder, 'opt.json'))


@pytest.mark.parametrize(
    'key,value,fragment',
    [
        ('ngf', '4', '--ngf takes an integer'),
        ('no_instance', 'false', '--no_instance is a switch'),
        ('netG', 'unet', '--netG takes one of global, local'),
        ('ngf', [4], '--ngf takes an integer'),
        ('n_blocks_global', None, '--n_blocks_global takes an integer'),
    ],
)
def test_wrongly_typed_saved_options_are_one_line_for_test_and_resume(experiment, key, value, fragment):
    """A wrongly typed architecture flag in the record of the networks (what test.py and a resume take them from)."""
    checkpoints, folder = experiment
    path = os.path.join(folder, 'architecture.json')
    record = json.load(open(path))
    record['flags'][key] = value
    with open(path, 'w') as handle:
        json.dump(record, handle)
    for options, extra in ((_TestOptions, []), (TrainOptions, ['--continue_train'])):
        with pytest.raises(OptionsError) as refused:
            options('', METHODS).parse(['--name', 'exp', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1', *extra], save=False)
        assert f'architecture.json: "{key}": {json.dumps(value)} is not a valid value: {fragment}' in one_line(refused.value)


def test_a_wrongly_typed_flag_in_opt_json_is_one_line_on_resume(experiment):
    """The flags a resume must keep besides the architecture's come from opt.json, checked as the command line would."""
    checkpoints, folder = experiment
    path = os.path.join(folder, 'opt.json')
    saved = json.load(open(path))
    saved['num_D'] = 'two'
    with open(path, 'w') as handle:
        json.dump(saved, handle)
    with pytest.raises(OptionsError) as refused:
        TrainOptions('', METHODS).parse(
            ['--name', 'exp', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1', '--continue_train'], save=False
        )
    assert 'opt.json: "num_D": "two" is not a valid value: --num_D takes an integer' in one_line(refused.value)


def test_wrongly_typed_saved_option_through_test_py_changes_nothing(experiment, dataroot, tmp_path):
    checkpoints, folder = experiment
    path = os.path.join(folder, 'architecture.json')
    record = json.load(open(path))
    record['flags']['ngf'] = '8'
    with open(path, 'w') as handle:
        json.dump(record, handle)
    before = tree_bytes(folder)
    result = run_test(checkpoints, dataroot, 'exp', '--results_dir', tmp_path / 'results')
    assert_one_line_error(result, 'architecture.json: "ngf": "8"', '--ngf takes an integer')
    assert tree_bytes(folder) == before


def test_test_time_reads_the_data_as_the_model_was_trained_on_it(experiment, dataroot, capsys):
    """test.py (and the feature scripts, the editor) take --loadSize/--fineSize/--resize_or_crop from opt.json unless
    given: a model trained at 64 wide is not tested at the default 1024; a given one that differs is named."""
    checkpoints, folder = experiment
    common = ['--name', 'exp', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1', '--dataroot', dataroot]
    opt = _TestOptions('', METHODS).parse(common, save=False)
    assert (opt.loadSize, opt.resize_or_crop) == (64, 'scale_width')
    assert f'Taking the data flags it was trained with from {folder}/opt.json: --loadSize 64' in capsys.readouterr().out
    opt = _TestOptions('', METHODS).parse([*common, '--loadSize', '128'], save=False)
    assert opt.loadSize == 128
    out = capsys.readouterr().out
    assert 'Given data flags that differ from training' in out and '--loadSize 128 (trained with 64)' in out
    # Trained on crops: test time synthesizes whole images (as pix2pixHD's test recipes do).
    saved = json.load(open(os.path.join(folder, 'opt.json')))
    with open(os.path.join(folder, 'opt.json'), 'w') as handle:
        json.dump({**saved, 'resize_or_crop': 'scale_width_and_crop', 'fineSize': 32}, handle)
    opt = _TestOptions('', METHODS).parse(common, save=False)
    assert (opt.resize_or_crop, opt.fineSize) == ('scale_width', 32)
    assert '--resize_or_crop scale_width (trained with scale_width_and_crop: whole images at test time)' in capsys.readouterr().out


def test_continue_train_starts_from_the_saved_options(experiment, capsys):
    """--continue_train with only the flag that changes (not the run's whole command line): every other flag is the
    saved run's, and only the changed one is reported."""
    checkpoints, folder = experiment
    args = ['--name', 'exp', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1', '--continue_train', '--lr', '0.001']
    opt = TrainOptions('', METHODS).parse(args, save=False)
    saved = json.load(open(os.path.join(folder, 'opt.json')))
    assert (opt.ngf, opt.n_blocks_global, opt.loadSize, opt.dataroot) == tuple(
        saved[key] for key in ('ngf', 'n_blocks_global', 'loadSize', 'dataroot')
    )
    # A switch that may change is as given (a saved --no_vgg_loss could not be turned off otherwise): said so.
    assert saved['no_vgg_loss'] and not opt.no_vgg_loss
    notes = sorted(line for line in capsys.readouterr().out.splitlines() if line.startswith('--continue_train: --'))
    assert [note.split(':')[1] for note in notes] == [' --lr 0.0002 -> 0.001 (may change)', ' --no_vgg_loss True -> False (may change)'], (
        notes
    )


def resave_latest_mid_epoch(checkpoints, dataroot, epoch_iter: int) -> None:
    """Overwrite `latest` as train.py's --save_latest_freq does in the middle of epoch 1."""
    opt = TrainOptions('', METHODS).parse(train_args(checkpoints, dataroot, 'exp', *ONE_EPOCH, '--continue_train'), save=False)
    build_trainer(opt).save('latest', 1, epoch_iter)


def test_resume_after_the_dataset_shrank_finishes_the_epoch(experiment, dataroot):
    checkpoints, folder = experiment
    resave_latest_mid_epoch(checkpoints, dataroot, 3)
    result = train_exp(checkpoints, dataroot, '--continue_train', '--max_dataset_size', '2', '--niter', '2')
    assert_ok(result)
    assert (
        'iter.txt says epoch 1, image 3, but an epoch now has 2 images (the dataset, --max_dataset_size or --batchSize changed): '
        'epoch 1 counts as complete, training goes on with epoch 2'
    ) in result.stdout
    assert 'End of epoch 2 / 2' in result.stdout
    assert open(os.path.join(folder, 'iter.txt')).read() == '3\n0\n'


def test_resume_with_a_larger_batch_starts_at_the_last_whole_batch():
    assert resume_position(1, 3, 4, 2) == (
        1,
        2,
        'iter.txt says epoch 1, image 3, not a whole number of --batchSize 2 batches: resuming epoch 1 at image 2',
    )
    assert resume_position(3, 8, 8, 2) == (3, 8, None)  # saved on the epoch's last batch: its end-of-epoch steps run
    assert resume_position(3, 6, 4, 2)[:2] == (3, 4)  # past the end of a shorter epoch
    assert resume_position(1, 0, 4, 3) == (1, 0, None)


# ----------------------------------------------------------------------------- 5. a batch larger than the dataset
def test_batch_larger_than_the_dataset_is_refused_with_the_numbers_before_anything_is_written(tmp_path, dataroot):
    result = train_exp(tmp_path, dataroot, '--batchSize', '5')
    assert_one_line_error(result, '--batchSize 5 is larger than the dataset: 4 samples', 'use --batchSize 4 or less')
    assert not os.path.exists(tmp_path / 'exp')


def test_batch_larger_than_the_dataset_on_resume_changes_nothing(experiment, dataroot):
    checkpoints, folder = experiment
    before = tree_bytes(folder)
    result = train_exp(checkpoints, dataroot, '--continue_train', '--max_dataset_size', '2', '--batchSize', '3')
    assert_one_line_error(result, '--batchSize 3 is larger than the dataset: 2 samples', '--max_dataset_size 2')
    assert tree_bytes(folder) == before
