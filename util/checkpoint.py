"""The checkpoint of a run, in the reference's formats: network weights (`{which_epoch}_net_{G,D,E}.pth`),
the training state (`{which_epoch}_train_state.pth`, with its RNG states) and `iter.txt` — saving them as one
transaction, recovering interrupted saves, reading, validating and reporting problems.

A checkpoint is saved as one transaction (save_checkpoint): the whole set or nothing; a single file outside
a set is written to a temporary name and renamed (util.files.atomic_write). Everything is read without
unpickling (`torch.load(weights_only=True)`), so no code in a checkpoint is ever executed, and a file holding
NaN or Inf (util.health's check) is neither saved nor loaded. The experiment's options are util/records.py's.
"""

import argparse
import contextlib
import glob
import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from typing import TypeGuard, cast

import numpy as np
import torch
import torch.nn as nn

from util.errors import ModelError, TrainingError, describe
from util.files import atomic_write, process_alive, sweep_temporaries
from util.health import first_nonfinite, largest_magnitudes, training_state_tensors
from util.records import differing_flags, experiment_dir, load_saved_options


# ---------------------------------------------------------------- iter.txt and RNG states
# iter.txt is a member of the `latest` set and the RNG states are part of the training state: both are the checkpoint's.
def read_iter_file(save_dir: str) -> tuple[int, int]:
    """(start_epoch, epoch_iter) from save_dir's iter.txt ("epoch,epoch_iter"), or (1, 0) when absent/unreadable."""
    path = checkpoint_file(save_dir, 'iter.txt')
    if path is None:
        return 1, 0
    try:
        start_epoch, epoch_iter = np.loadtxt(path, delimiter=',', dtype=int)
        return int(start_epoch), int(epoch_iter)
    except (OSError, ValueError):
        return 1, 0


def rng_state() -> dict:
    """Python, numpy and torch RNG states in a form torch.load(weights_only=True) accepts."""
    np_state = cast(tuple, np.random.get_state(legacy=True))
    state = {
        'python': random.getstate(),
        'numpy': (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of rng_state()."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# ---------------------------------------------------------------- network weights
def network_path(save_dir: str, name: str, which_epoch: str) -> str:
    """`save_dir/{which_epoch}_net_{name}.pth`."""
    return os.path.join(save_dir, f'{which_epoch}_net_{name}.pth')


def training_state_path(save_dir: str, which_epoch: str) -> str:
    """`save_dir/{which_epoch}_train_state.pth`."""
    return os.path.join(save_dir, f'{which_epoch}_train_state.pth')


def save_network(net: nn.Module, path: str) -> None:
    """Save a network's state_dict on the CPU to `path` through a temporary file."""
    atomic_write(path, state_dict_writer(net))


def save_networks(networks: dict, save_dir: str, which_epoch: str) -> None:
    """Write `{which_epoch}_net_{name}.pth` for each of {name: network}: plain CPU state_dicts."""
    for name, net in networks.items():
        save_network(net, network_path(save_dir, name, which_epoch))


def available_epochs(save_dir: str, name: str) -> list:
    """The `which_epoch` values that have a saved network `name` in save_dir (saves being moved into place included)."""
    suffix = f'_net_{name}.pth'
    candidates = {os.path.basename(path)[: -len(suffix)] for path in glob.glob(os.path.join(save_dir, '*' + suffix))}
    candidates.update(which_epoch for _, which_epoch, _, _ in set_folders(save_dir))
    return sorted(epoch for epoch in candidates if is_file(checkpoint_file(save_dir, f'{epoch}{suffix}')))


def is_file(path: str | None) -> TypeGuard[str]:
    """os.path.isfile that accepts None (a file the newest checkpoint set does not have)."""
    return path is not None and os.path.isfile(path)


def read_state_dict(path: str, name: str, which_epoch: str, save_dir: str) -> dict:
    """torch.load with weights_only=True (never runs code from the file); clear errors for missing files.

    `path` is the file's reference name; a save still being moved into place is read from its folder.
    """
    source = checkpoint_file(os.path.dirname(path), os.path.basename(path))
    if not is_file(source):
        epochs = available_epochs(save_dir, name)
        hint = (
            f"available: --which_epoch {', '.join(epochs)}"
            if epochs
            else f"no *_net_{name}.pth in {save_dir}; train first or check --name/--checkpoints_dir"
        )
        raise ModelError(f"{path} not found (--which_epoch {which_epoch}); {hint}")
    path = source
    try:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # pickled code, truncation and format errors all mean the same to the user
        raise ModelError(
            f"{path}: not a loadable weights file ({str(error).splitlines()[0]}); it may be truncated or contain pickled code"
        ) from None
    if not isinstance(state_dict, dict):
        raise ModelError(f"{path}: expected a state_dict, found {type(state_dict).__name__}")
    tensors = {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    bad = first_nonfinite(largest_magnitudes({'key': tensors}))
    if bad is not None:
        epochs = [epoch for epoch in available_epochs(save_dir, name) if epoch != which_epoch]
        hint = f"use an earlier checkpoint (--which_epoch {', '.join(epochs)})" if epochs else "retrain with a lower --lr"
        raise ModelError(f"{path}: {bad.split(', ', 1)[1]} holds NaN or Inf values (the run that saved it diverged); {hint}")
    return state_dict


def state_dict_mismatch(net: nn.Module, state_dict: dict) -> list:
    """Human-readable differences between a network's keys/shapes and a checkpoint's."""
    own = net.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    shapes = [
        f'{key} {tuple(state_dict[key].shape)} in file vs {tuple(own[key].shape)} in model'
        for key in own
        if key in state_dict and tuple(own[key].shape) != tuple(state_dict[key].shape)
    ]
    problems = []
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', shapes)):
        if items:
            problems.append(f"{len(items)} {title} (e.g. {items[0]})")
    return problems


def load_network_strict(
    net: nn.Module, save_dir: str, name: str, which_epoch: str, opt: argparse.Namespace, flags: Sequence[str] = ()
) -> None:
    """Load a checkpoint that must fit exactly (strict=True); name those of the architecture `flags` that differ when it does not."""
    path = network_path(save_dir, name, which_epoch)
    state_dict = read_state_dict(path, name, which_epoch, save_dir)
    problems = state_dict_mismatch(net, state_dict)
    if problems:
        differing = differing_flags(load_saved_options(save_dir) or {}, opt, flags)
        hint = (
            f"flags that differ from training: {'; '.join(differing)}"
            if differing
            else f"check the architecture flags ({', '.join('--' + flag for flag in flags) or 'see opt.json'}) against training"
        )
        raise ModelError(f"{path} does not fit the options: {'; '.join(problems)}; {hint}")
    net.load_state_dict(state_dict, strict=True)


def load_network_partial(net: nn.Module, save_dir: str, name: str, which_epoch: str) -> list:
    """Copy every tensor whose key and shape match (--load_pretrain); report and return what stayed initialised."""
    path = network_path(save_dir, name, which_epoch)
    if not is_file(checkpoint_file(save_dir, os.path.basename(path))):
        if name == 'G':
            read_state_dict(path, name, which_epoch, save_dir)  # raises the not-found message
        print(f"--load_pretrain: {path} not found; network {name} keeps its initialisation")
        return list(net.state_dict().keys())
    state_dict = read_state_dict(path, name, which_epoch, save_dir)
    own = net.state_dict()
    matched = {key: value for key, value in state_dict.items() if key in own and tuple(own[key].shape) == tuple(value.shape)}
    own.update(matched)
    net.load_state_dict(own)
    left = [key for key in own if key not in matched]
    if left:
        modules = sorted({key.split('.')[0] for key in left})
        print(
            f"--load_pretrain: network {name} copied {len(matched)} tensors from {path}; "
            f"{len(left)} left initialised, in: {', '.join(modules)}"
        )
    else:
        print(f"--load_pretrain: network {name} loaded every tensor from {path}")
    return left


def load_networks(networks: dict, opt: argparse.Namespace, flags: Sequence[str] = ()) -> None:
    """Weights for testing (--which_epoch), resuming (--continue_train, strict) or --load_pretrain (partial);
    a strict load that does not fit names those of the architecture `flags` that differ from opt.json."""
    if not opt.isTrain or opt.continue_train:
        for name, net in networks.items():
            load_network_strict(net, experiment_dir(opt), name, opt.which_epoch, opt, flags)
    elif opt.load_pretrain:
        for name, net in networks.items():
            load_network_partial(net, opt.load_pretrain, name, opt.which_epoch)


# ---------------------------------------------------------------- whole checkpoints: one transaction per save
# A save of `which_epoch` W writes its whole set (W_net_{G,D,E}.pth, W_train_state.pth and, for `latest`,
# iter.txt) into a hidden staging folder `.ckpt-<generation>-W.partial/`, every file fsynced, the manifest
# (the list of files) last. Renaming that folder to `.ckpt-<generation>-W.commit/` is the commit: one atomic
# rename. Then each file moves to its reference name at the top level (one rename each, no data copied) and
# the folder is removed. A failure before the commit leaves the top level as it was and the staging folder
# is deleted; a save interrupted after it is finished by the next save or train.py start
# (recover_checkpoints), and until then every reader here takes the set from the committed folder
# (checkpoint_file), so loading always sees exactly one save.
STAGING, COMMITTED, MANIFEST = 'partial', 'commit', 'manifest.json'
# `.ckpt-<generation>-p<pid of the writer>-<which_epoch>.<state>` (without `p<pid>-`: written before the pid was recorded).
SET_FOLDER = re.compile(r'^\.ckpt-(\d+)-(?:p(\d+)-)?(.+)\.(partial|commit)$')
NETWORK_NAMES = ('G', 'D', 'E')


def set_members(which_epoch: str, with_iter_file: bool) -> list:
    """Every file a checkpoint set of `which_epoch` can hold (iter.txt belongs to the `latest` set)."""
    names = [f'{which_epoch}_net_{name}.pth' for name in NETWORK_NAMES] + [f'{which_epoch}_train_state.pth']
    return names + (['iter.txt'] if with_iter_file else [])


def sync_folder(folder: str) -> None:
    """fsync a folder, so that renames and new entries in it survive a power loss (POSIX only)."""
    if os.name != 'posix':
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str, write: Callable[[str], None]) -> None:
    """write(path), then fsync the file; `path` is inside a staging folder, so it needs no temporary name."""
    write(path)
    fd = os.open(path, os.O_RDWR)  # without O_CREAT: fails loudly if the writer produced no file
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_folders(save_dir: str) -> list:
    """(generation, which_epoch, folder, 'partial' or 'commit') of every save in progress in save_dir, oldest first."""
    if not os.path.isdir(save_dir):
        return []
    found = []
    for entry in os.listdir(save_dir):
        match = SET_FOLDER.match(entry)
        folder = os.path.join(save_dir, entry)
        if match and os.path.isdir(folder):
            found.append((int(match.group(1)), match.group(3), folder, match.group(4)))
    return sorted(found)


def read_manifest(folder: str) -> dict | None:
    """The manifest of a committed folder; None once its files have all moved (only the empty folder is left)."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path) as handle:
            manifest = json.load(handle)
        if not (isinstance(manifest.get('files'), list) and isinstance(manifest.get('removed'), list)):
            raise ValueError('no list of files')
        return manifest
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as error:
        raise ModelError(
            f"{path}: unreadable checkpoint manifest ({describe(error)}); delete the folder {folder} to use the "
            f"files at the top level of {os.path.dirname(folder)}"
        ) from None


def checkpoint_file(save_dir: str, name: str) -> str | None:
    """Where to read the checkpoint file `name` of save_dir: from a committed save not yet moved into
    place when it holds (or removes) that file, else the top level. None: the newest set has no such file."""
    for _, _, folder, state in reversed(set_folders(save_dir)):
        manifest = read_manifest(folder) if state == COMMITTED else None
        if manifest is None:
            continue
        if name in manifest['files']:
            staged = os.path.join(folder, name)
            return staged if os.path.isfile(staged) else os.path.join(save_dir, name)
        if name in manifest['removed']:
            return None
    return os.path.join(save_dir, name)


def discard_folder(folder: str) -> None:
    """Delete a staging folder and what is in it (nothing in it is visible to any reader)."""
    shutil.rmtree(folder, ignore_errors=True)


def commit_set(save_dir: str, which_epoch: str, writers: dict, removed: list) -> str:
    """Write {file name: write(path)} into a staging folder with its manifest and commit it; return the committed folder.

    Raises whatever a writer raises, after deleting the staging folder: the top level is untouched.
    """
    generation = time.time_ns()
    # The writer's pid in the name: another process's recovery leaves a live writer's staging folder alone.
    staging = os.path.join(save_dir, f'.ckpt-{generation:020d}-p{os.getpid()}-{which_epoch}.{STAGING}')
    committed = os.path.join(save_dir, f'.ckpt-{generation:020d}-p{os.getpid()}-{which_epoch}.{COMMITTED}')
    manifest = {'which_epoch': which_epoch, 'generation': generation, 'files': sorted(writers), 'removed': sorted(removed)}
    try:
        os.makedirs(staging)
        for name, write in writers.items():
            write_synced(os.path.join(staging, name), write)
        write_synced(os.path.join(staging, MANIFEST), lambda path: write_json(path, manifest))
        sync_folder(staging)
        os.rename(staging, committed)
    except BaseException:
        if os.path.isdir(committed):  # the rename happened although it reported an error (network file systems)
            return committed
        discard_folder(staging)
        raise
    return committed


def write_json(path: str, payload: dict) -> None:
    """Write `payload` as JSON to `path` (no temporary name: callers write into a staging folder)."""
    with open(path, 'w') as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)


def roll_forward(save_dir: str, committed: str) -> None:
    """Move a committed set's files to their reference names, delete the files it removes, then the folder."""
    manifest = read_manifest(committed)
    if manifest is not None:
        for name in manifest['files']:
            # Another process may finish the same committed set at the same moment: a file it moved first is done.
            with contextlib.suppress(FileNotFoundError):
                os.replace(os.path.join(committed, name), os.path.join(save_dir, name))
        for name in manifest['removed']:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(save_dir, name))
        sync_folder(save_dir)
    # The set is in place: a folder that cannot be removed now is harmless, and the next save removes it.
    with contextlib.suppress(OSError):
        if manifest is not None:
            os.remove(os.path.join(committed, MANIFEST))
        os.rmdir(committed)


def finish_interrupted_saves(save_dir: str) -> None:
    """recover_checkpoints at the start of training (and the temporary files of dead writers), its failures as one line."""
    sweep_temporaries(save_dir)
    try:
        recover_checkpoints(save_dir)
    except OSError as error:
        raise TrainingError(
            f"cannot finish an interrupted checkpoint save in {save_dir} ({describe(error)}); fix the folder's permissions or free space"
        ) from None


def recover_checkpoints(save_dir: str, which_epoch: str | None = None) -> None:
    """Finish saves that were committed but not moved into place; delete saves that never committed and
    whose writer is gone (a live process's staging folder is its own). Only sets of `which_epoch` when given."""
    for _, which, folder, state in set_folders(save_dir):
        if which_epoch is not None and which != which_epoch:
            continue
        if state == STAGING:
            writer = SET_FOLDER.match(os.path.basename(folder)).group(2)  # type: ignore[union-attr]
            # This process's own saves run one at a time, so a staging folder of its pid is a failed one.
            if writer is None or int(writer) == os.getpid() or not process_alive(int(writer)):
                discard_folder(folder)
        else:
            roll_forward(save_dir, folder)


def save_checkpoint(save_dir: str, which_epoch: str, networks: dict, training_state: dict, position: Sequence[int] | None = None) -> None:
    """Save the set `which_epoch` (weights, `{which_epoch}_train_state.pth`, with (epoch, epoch_iter) iter.txt) as one transaction.

    Afterwards the set on disk is the whole new one; or, when this raises TrainingError saying so, the previous
    set exactly as it was. Every failure (OSError, torch's RuntimeError, anything a writer raises) is one line.
    """
    groups = {f'network {name}': net.state_dict() for name, net in networks.items()}
    bad = first_nonfinite(largest_magnitudes({**groups, **training_state_tensors(training_state)}))
    if bad is not None:
        when = f"epoch {training_state.get('epoch')}, iteration {training_state.get('epoch_iter')}"
        raise TrainingError(
            f"not saving the '{which_epoch}' checkpoint at {when}: {bad} holds NaN or Inf values; nothing was written, "
            f"so {save_dir} keeps its previous files; try a lower --lr or --amp off"
        )
    writers = {f'{which_epoch}_net_{name}.pth': state_dict_writer(net) for name, net in networks.items()}
    writers[f'{which_epoch}_train_state.pth'] = lambda path: torch.save(training_state, path)
    if position is not None:
        writers['iter.txt'] = lambda path: np.savetxt(path, tuple(position), delimiter=',', fmt='%d')
    removed = [name for name in set_members(which_epoch, position is not None) if name not in writers]
    what = f"the '{which_epoch}' checkpoint in {save_dir}"
    try:
        recover_checkpoints(save_dir)
        committed = commit_set(save_dir, which_epoch, writers, removed)
    except Exception as error:  # any writer's failure: nothing at the top level was touched
        raise TrainingError(
            f"saving {what} failed ({describe(error)}; {space_note(save_dir, which_epoch)}); the previous checkpoint files are intact"
        ) from None
    try:
        roll_forward(save_dir, committed)
    except Exception as error:
        raise TrainingError(
            f"{what} was saved completely in {committed}, but moving its files to their names failed "
            f"({describe(error)}); --continue_train and test.py read it from there, and the next train.py "
            f"start finishes the move"
        ) from None
    except BaseException:
        # A second Ctrl-C/SIGTERM: the set is committed, finishing the renames takes microseconds.
        with contextlib.suppress(Exception):
            roll_forward(save_dir, committed)
        raise


def save_file_set(folder: str, which: str, writers: dict) -> None:
    """Write {file name: write(path)} into `folder` as one transaction (see commit_set): all the new files or none.

    Also finishes an earlier interrupted save of the same `which`; failures are one line.
    """
    names = ', '.join(sorted(writers))
    try:
        sweep_temporaries(folder)
        recover_checkpoints(folder, which)
        committed = commit_set(folder, which, writers, [])
    except Exception as error:
        raise TrainingError(f"writing {names} in {folder} failed ({describe(error)}); the previous files are intact") from None
    try:
        roll_forward(folder, committed)
    except Exception as error:
        raise TrainingError(
            f"{names} were written completely in {committed}, but moving them to their names failed ({describe(error)}); "
            f"readers take them from there, and the next run finishes the move"
        ) from None


def space_note(save_dir: str, which_epoch: str) -> str:
    """Free space beside the size of the set, because torch reports a full disk only as 'unexpected pos'."""
    try:
        free = shutil.disk_usage(save_dir).free
    except OSError:
        return 'free space unknown'
    previous = sum(
        os.path.getsize(path) for path in (os.path.join(save_dir, name) for name in set_members(which_epoch, True)) if os.path.isfile(path)
    )
    return f"{free / 2**20:.1f} MiB free there" + (f", the previous set takes {previous / 2**20:.1f} MiB" if previous else '')


def state_dict_writer(net: nn.Module) -> Callable[[str], None]:
    """write(path) of a network's plain CPU state_dict, taken now (the reference's weights format)."""
    state_dict = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    return lambda path: torch.save(state_dict, path)


def load_training_state(save_dir: str, which_epoch: str) -> dict | None:
    """The training state saved with the weights, or None when there is no state file."""
    path = checkpoint_file(save_dir, os.path.basename(training_state_path(save_dir, which_epoch)))
    if path is None or not os.path.isfile(path):
        return None
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # truncated or pickle-bearing files alike
        raise ModelError(
            f"{path}: cannot read the training state ({str(error).splitlines()[0]}); delete it to resume from the weights only"
        ) from None
    bad = first_nonfinite(largest_magnitudes(training_state_tensors(state))) if isinstance(state, dict) else None
    if bad is not None:
        raise ModelError(
            f"{path}: {bad} holds NaN or Inf values; resume from an earlier checkpoint, or delete it to resume from the weights only"
        )
    return state
