"""Issue #10: a checkpoint is all or nothing, a refused start changes nothing on disk, a changed dataset
resumes, degenerate sizes and odd user files end in one line, and the small promises hold."""

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
from PIL import Image

import util.checkpoint as checkpoint
import util.records as records
from builders import build_dataset, build_trainer
from helpers import REPO_ROOT, SUBPROCESS_ENV, TINY, assert_ok, assert_one_line_error, run_tool
from models import METHODS
from models.pix2pixhd.styles import load_clusters, save_class_arrays
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions
from util.errors import DatasetError, ModelError, OptionsError, TrainingError
from util.iter_counter import resume_position


def tree_bytes(folder) -> dict:
    """{relative path: content} of every file under `folder`, hidden ones included."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, folder)] = handle.read()
    return found


def hidden_entries(folder) -> list:
    """Staging or committed folders (or anything else hidden) left in an experiment folder."""
    return sorted(name for name in os.listdir(folder) if name.startswith('.'))


def one_line(error: BaseException) -> str:
    """The message of a user error, asserted to be a single line."""
    message = str(error)
    assert '\n' not in message and message.strip(), message
    return message


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
    opt = TrainOptions('', METHODS).parse(
        TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path / 'checkpoints'), '--name', 'exp'], save=True
    )
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
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', small_disk, '--name', 'exp'], save=True)
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


# ----------------------------------------------------------------------------- end to end: one trained experiment
def train_args(checkpoints, dataroot, *extra) -> list:
    return [
        '--name',
        'exp',
        '--checkpoints_dir',
        str(checkpoints),
        '--dataroot',
        dataroot,
        *TINY,
        '--niter',
        '1',
        '--niter_decay',
        '0',
        *extra,
    ]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, dataroot):
    """train.py for one epoch of 4 images with --print_freq/--display_freq 100 (longer than the run)."""
    checkpoints = tmp_path_factory.mktemp('trained')
    assert_ok(run_tool('train.py', *train_args(checkpoints, dataroot)))
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
    result = run_tool('train.py', *train_args(checkpoints, dataroot, '--continue_train', '--label_nc', '20', '--ndf', '8'))
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
    result = run_tool('train.py', *train_args(checkpoints, dataroot, '--continue_train', '--ngf', '8'))
    assert_one_line_error(result, 'latest_net_G.pth does not fit the options', 'shape mismatches')
    assert tree_bytes(folder) == before and not os.path.exists(os.path.join(folder, 'opt.json'))


@pytest.mark.parametrize(
    'key,value,fragment',
    [
        ('ngf', '4', '--ngf takes an integer'),
        ('no_instance', 'false', '--no_instance is a switch'),
        ('netG', 'unet', '--netG takes one of global, local'),
    ],
)
def test_wrongly_typed_saved_options_are_one_line_for_test_and_resume(experiment, key, value, fragment):
    checkpoints, folder = experiment
    path = os.path.join(folder, 'opt.json')
    saved = json.load(open(path))
    saved[key] = value
    with open(path, 'w') as handle:
        json.dump(saved, handle)
    for options, extra in ((_TestOptions, []), (TrainOptions, ['--continue_train'])):
        with pytest.raises(OptionsError) as refused:
            options('', METHODS).parse(['--name', 'exp', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1', *extra], save=False)
        assert f'opt.json: "{key}": "{value}" is not a valid value: {fragment}' in one_line(refused.value)


def test_wrongly_typed_saved_option_through_test_py_changes_nothing(experiment, dataroot, tmp_path):
    checkpoints, folder = experiment
    path = os.path.join(folder, 'opt.json')
    saved = json.load(open(path))
    saved['ngf'] = '8'
    with open(path, 'w') as handle:
        json.dump(saved, handle)
    before = tree_bytes(folder)
    result = run_tool(
        'test.py',
        '--name',
        'exp',
        '--checkpoints_dir',
        checkpoints,
        '--dataroot',
        dataroot,
        '--gpu_ids',
        '-1',
        '--loadSize',
        '64',
        '--results_dir',
        tmp_path / 'results',
    )
    assert_one_line_error(result, 'opt.json: "ngf": "8"', '--ngf takes an integer')
    assert tree_bytes(folder) == before


def resave_latest_mid_epoch(checkpoints, dataroot, epoch_iter: int) -> None:
    """Overwrite `latest` as train.py's --save_latest_freq does in the middle of epoch 1."""
    opt = TrainOptions('', METHODS).parse(train_args(checkpoints, dataroot, '--continue_train'), save=False)
    build_trainer(opt).save('latest', 1, epoch_iter)


def test_resume_after_the_dataset_shrank_finishes_the_epoch(experiment, dataroot):
    checkpoints, folder = experiment
    resave_latest_mid_epoch(checkpoints, dataroot, 3)
    result = run_tool('train.py', *train_args(checkpoints, dataroot, '--continue_train', '--max_dataset_size', '2', '--niter', '2'))
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


# ----------------------------------------------------------------------------- 4. degenerate sizes
def test_batch_larger_than_the_dataset_is_refused_with_the_numbers_before_anything_is_written(tmp_path, dataroot):
    result = run_tool('train.py', *train_args(tmp_path, dataroot, '--batchSize', '5'))
    assert_one_line_error(result, '--batchSize 5 is larger than the dataset: 4 samples', 'use --batchSize 4 or less')
    assert not os.path.exists(tmp_path / 'exp')


def test_batch_larger_than_the_dataset_on_resume_changes_nothing(experiment, dataroot):
    checkpoints, folder = experiment
    before = tree_bytes(folder)
    result = run_tool('train.py', *train_args(checkpoints, dataroot, '--continue_train', '--max_dataset_size', '2', '--batchSize', '3'))
    assert_one_line_error(result, '--batchSize 3 is larger than the dataset: 2 samples', '--max_dataset_size 2')
    assert tree_bytes(folder) == before


def write_dataset(root, label_arrays: list, inst_mode: str = 'I;16') -> str:
    """A tiny Cityscapes-layout dataset from label arrays (instance map = the label ids in `inst_mode`, photo grey)."""
    for index, label in enumerate(label_arrays):
        stem = f'tiny_{index:06d}_000019'
        for folder in ('train_label', 'train_inst', 'train_img'):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        Image.fromarray(label.astype(np.uint8)).save(os.path.join(root, 'train_label', f'{stem}_gtFine_labelIds.png'))
        inst = (
            Image.fromarray(label.astype(np.uint16)) if inst_mode == 'I;16' else Image.fromarray(label.astype(np.uint8)).convert(inst_mode)
        )
        inst.save(os.path.join(root, 'train_inst', f'{stem}_gtFine_instanceIds.png'))
        Image.fromarray(np.full(label.shape + (3,), 128, np.uint8)).save(os.path.join(root, 'train_img', f'{stem}_leftImg8bit.png'))
    return str(root)


def test_images_that_shrink_to_nothing_are_one_line(tmp_path):
    root = write_dataset(tmp_path / 'data', [np.zeros((1, 1))])
    opt = TrainOptions('', METHODS).parse(['--dataroot', root, *TINY, '--resize_or_crop', 'none'], save=False)
    with pytest.raises(DatasetError) as refused:
        build_dataset(opt)[0]  # what the loader of train.py and test.py asks for
    message = one_line(refused.value)
    assert 'tiny_000000_000019_gtFine_labelIds.png: a 1x1 image would shrink to 0x0 pixels under --resize_or_crop none' in message


# ----------------------------------------------------------------------------- 5. user files
@pytest.mark.parametrize('folder,mode', [('train_label', 'LA'), ('train_inst', 'RGB'), ('train_inst', 'LA')])
def test_colour_or_alpha_maps_name_the_file_and_the_expected_mode(tmp_path, folder, mode):
    root = write_dataset(tmp_path / 'data', [np.zeros((32, 64)), np.ones((32, 64))])
    path = sorted(os.listdir(os.path.join(root, folder)))[1]
    Image.open(os.path.join(root, folder, path)).convert('L').convert(mode).save(os.path.join(root, folder, path))
    opt = TrainOptions('', METHODS).parse(['--dataroot', root, *TINY], save=False)
    with pytest.raises(DatasetError) as refused:
        build_dataset(opt)
    message = one_line(refused.value)
    assert path in message and f'(mode {mode})' in message and 'expected one channel of ids' in message


def test_colour_instance_map_through_check_dataset_is_one_line(tmp_path):
    root = write_dataset(tmp_path / 'data', [np.zeros((32, 64))], inst_mode='RGB')
    result = run_tool('scripts/check_dataset.py', '--dataroot', root)
    assert_one_line_error(result, 'tiny_000000_000019_gtFine_instanceIds.png: instance map has 3 channels (mode RGB)')


@pytest.mark.parametrize('damage', ['truncated', 'bad CRC'])
def test_damaged_cluster_file_is_one_line(tmp_path, damage):
    path = str(tmp_path / 'features_clustered_010.npz')
    save_class_arrays(path, {26: np.arange(30, dtype=np.float32).reshape(10, 3)})
    data = bytearray(open(path, 'rb').read())
    if damage == 'truncated':
        data = data[: len(data) // 2]
    else:
        data[data.index(b'\x93NUMPY') + 100] ^= 0xFF  # inside the stored array: the zip's CRC no longer matches
    with open(path, 'wb') as handle:
        handle.write(data)
    with pytest.raises(ModelError) as refused:
        load_clusters(path, feat_num=3)
    message = one_line(refused.value)
    assert path in message and 're-run encode_features.py' in message
    assert ('Bad CRC-32' in message) if damage == 'bad CRC' else ('not a zip file' in message)


# ----------------------------------------------------------------------------- 6. small promises
def test_check_dataset_accepts_a_test_set_without_photos(tmp_path, dataroot):
    root = tmp_path / 'data'
    shutil.copytree(dataroot, root)
    shutil.rmtree(root / 'test_img')
    result = run_tool('scripts/check_dataset.py', '--dataroot', root, '--phase', 'test')
    assert_ok(result)
    assert 'checked for test.py' in result.stdout and 'no photos' in result.stdout


def test_out_of_range_labels_suggest_the_label_nc_of_the_whole_dataset(tmp_path):
    root = write_dataset(tmp_path / 'data', [np.full((32, 64), 5), np.full((32, 64), 9), np.full((32, 64), 7)])
    result = run_tool('scripts/check_dataset.py', '--dataroot', root, '--label_nc', '4', '--no_instance')
    assert_one_line_error(
        result,
        'tiny_000000_000019_gtFine_labelIds.png: label value 5 >= --label_nc 4',
        '3 of 3 label maps',
        'pass --label_nc 10 to cover the whole dataset',
    )
    opt = TrainOptions('', METHODS).parse(['--dataroot', root, *TINY, '--label_nc', '4', '--no_instance'], save=False)
    with pytest.raises(DatasetError) as refused:
        build_dataset(opt)[0]
    assert 'scripts/check_dataset.py' in one_line(refused.value) and '--label_nc that covers the whole dataset' in str(refused.value)
