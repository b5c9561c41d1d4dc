"""Everything on disk about one run, in the reference's formats: network weights
(`{which_epoch}_net_{G,D,E}.pth`), the training state (`{which_epoch}_train_state.pth`), `iter.txt` and
the options (`opt.txt`, `opt.json`) — writing, reading, validating and reporting problems.

Every file is written to a temporary name and renamed (util.util.atomic_write), and everything is read
without unpickling (`torch.load(weights_only=True)`), so no code in a checkpoint is ever executed.
"""
import argparse
import glob
import json
import os
import random
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from util.errors import ModelError, OptionsError, TrainingError
from util.util import atomic_write, mkdirs

# Flags that fix the shape of the networks or of their input encoding. At test time (and in the
# feature scripts) they are taken from the experiment's saved opt.json unless given explicitly,
# because a train/test mismatch (e.g. `--netG local --ngf 32`) otherwise loads garbage or crashes.
ARCHITECTURE_FLAGS = (
    'label_nc', 'input_nc', 'output_nc', 'netG', 'ngf', 'n_downsample_global', 'n_blocks_global',
    'n_blocks_local', 'n_local_enhancers', 'norm', 'use_dropout', 'no_instance', 'instance_feat',
    'label_feat', 'feat_num', 'n_downsample_E', 'nef',
)


def experiment_dir(opt: argparse.Namespace) -> str:
    """checkpoints_dir/name, the folder of one experiment."""
    return os.path.join(opt.checkpoints_dir, opt.name)


# ---------------------------------------------------------------- options
def format_options(opt: argparse.Namespace) -> str:
    """Human-readable dump of the options, in the reference's opt.txt layout."""
    lines = ['------------ Options -------------']
    lines += [f'{key}: {value}' for key, value in sorted(vars(opt).items()) if key != 'explicit']
    lines.append('-------------- End ----------------')
    return '\n'.join(lines)


def save_options(opt: argparse.Namespace) -> None:
    """Write opt.txt (for people) and opt.json (for test.py and the feature scripts)."""
    expr_dir = experiment_dir(opt)
    mkdirs(expr_dir)
    payload = {key: value for key, value in vars(opt).items() if key != 'explicit'}
    write_text(os.path.join(expr_dir, 'opt.txt'), format_options(opt) + '\n')
    write_text(os.path.join(expr_dir, 'opt.json'), json.dumps(payload, indent=1, sort_keys=True))


def write_text(path: str, text: str) -> None:
    """Write a text file atomically."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as handle:
            handle.write(text)
    atomic_write(path, write)


def load_saved_options(expr_dir: str) -> Optional[dict]:
    """The options an experiment was trained with (opt.json), or None when there is none."""
    json_path = os.path.join(expr_dir, 'opt.json')
    if not os.path.isfile(json_path):
        return None
    try:
        with open(json_path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise OptionsError(f"{json_path}: cannot read the saved options ({error}); delete or fix the file") from None


def differing_flags(save_dir: str, opt: argparse.Namespace) -> list:
    """Architecture flags whose value in save_dir/opt.json differs from the current options."""
    saved = load_saved_options(save_dir) or {}
    return [f'--{key} {saved[key]} (saved) vs {getattr(opt, key)} (now)' for key in ARCHITECTURE_FLAGS
            if key in saved and saved[key] != getattr(opt, key)]


# ---------------------------------------------------------------- iter.txt and RNG states
def read_iter_file(save_dir: str) -> tuple:
    """(start_epoch, epoch_iter) from save_dir/iter.txt ("epoch,epoch_iter"), or (1, 0) when absent/unreadable."""
    try:
        start_epoch, epoch_iter = np.loadtxt(os.path.join(save_dir, 'iter.txt'), delimiter=',', dtype=int)
        return int(start_epoch), int(epoch_iter)
    except (OSError, ValueError):
        return 1, 0


def write_iter_file(save_dir: str, epoch: int, epoch_iter: int) -> None:
    """iter.txt in the reference's format, written atomically."""
    atomic_write(os.path.join(save_dir, 'iter.txt'), lambda tmp: np.savetxt(tmp, (epoch, epoch_iter), delimiter=',', fmt='%d'))


def rng_state() -> dict:
    """Python, numpy and torch RNG states in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
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
    state_dict = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save(state_dict, tmp))


def save_networks(networks: dict, save_dir: str, which_epoch: str) -> None:
    """Write `{which_epoch}_net_{name}.pth` for each of {name: network}: plain CPU state_dicts."""
    for name, net in networks.items():
        save_network(net, network_path(save_dir, name, which_epoch))


def available_epochs(save_dir: str, name: str) -> list:
    """The `which_epoch` values that have a saved network `name` in save_dir."""
    suffix = f'_net_{name}.pth'
    return sorted(os.path.basename(path)[:-len(suffix)] for path in glob.glob(os.path.join(save_dir, '*' + suffix)))


def read_state_dict(path: str, name: str, which_epoch: str, save_dir: str) -> dict:
    """torch.load with weights_only=True (never runs code from the file); clear errors for missing files."""
    if not os.path.isfile(path):
        epochs = available_epochs(save_dir, name)
        hint = f"available: --which_epoch {', '.join(epochs)}" if epochs else f"no *_net_{name}.pth in {save_dir}; train first or check --name/--checkpoints_dir"
        raise ModelError(f"{path} not found (--which_epoch {which_epoch}); {hint}")
    try:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # pickled code, truncation and format errors all mean the same to the user
        raise ModelError(f"{path}: not a loadable weights file ({str(error).splitlines()[0]}); it may be truncated or contain pickled code") from None
    if not isinstance(state_dict, dict):
        raise ModelError(f"{path}: expected a state_dict, found {type(state_dict).__name__}")
    return state_dict


def state_dict_mismatch(net: nn.Module, state_dict: dict) -> list:
    """Human-readable differences between a network's keys/shapes and a checkpoint's."""
    own = net.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    shapes = [f'{key} {tuple(state_dict[key].shape)} in file vs {tuple(own[key].shape)} in model'
              for key in own if key in state_dict and tuple(own[key].shape) != tuple(state_dict[key].shape)]
    problems = []
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', shapes)):
        if items:
            problems.append(f"{len(items)} {title} (e.g. {items[0]})")
    return problems


def load_network_strict(net: nn.Module, save_dir: str, name: str, which_epoch: str, opt: argparse.Namespace) -> None:
    """Load a checkpoint that must fit exactly (strict=True); name the flags that differ when it does not."""
    path = network_path(save_dir, name, which_epoch)
    state_dict = read_state_dict(path, name, which_epoch, save_dir)
    problems = state_dict_mismatch(net, state_dict)
    if problems:
        flags = differing_flags(save_dir, opt)
        hint = f"flags that differ from training: {'; '.join(flags)}" if flags else "check --netG, --ngf, --n_downsample_global, --n_blocks_*, --label_nc, --no_instance, --instance_feat, --feat_num, --num_D, --ndf, --norm"
        raise ModelError(f"{path} does not fit the options: {'; '.join(problems)}; {hint}")
    net.load_state_dict(state_dict, strict=True)


def load_network_partial(net: nn.Module, save_dir: str, name: str, which_epoch: str) -> list:
    """Copy every tensor whose key and shape match (--load_pretrain); report and return what stayed initialised."""
    path = network_path(save_dir, name, which_epoch)
    if not os.path.isfile(path):
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
        print(f"--load_pretrain: network {name} copied {len(matched)} tensors from {path}; "
              f"{len(left)} left initialised, in: {', '.join(modules)}")
    else:
        print(f"--load_pretrain: network {name} loaded every tensor from {path}")
    return left


def load_networks(networks: dict, opt: argparse.Namespace) -> None:
    """Weights for testing (--which_epoch), resuming (--continue_train, strict) or --load_pretrain (partial)."""
    if not opt.isTrain or opt.continue_train:
        for name, net in networks.items():
            load_network_strict(net, experiment_dir(opt), name, opt.which_epoch, opt)
    elif opt.load_pretrain:
        for name, net in networks.items():
            load_network_partial(net, opt.load_pretrain, name, opt.which_epoch)


# ---------------------------------------------------------------- whole checkpoints
def save_checkpoint(save_dir: str, which_epoch: str, networks: dict, training_state: dict,
                    position: Optional[Sequence[int]] = None) -> None:
    """Weights, `{which_epoch}_train_state.pth` and, given (epoch, epoch_iter), iter.txt.

    A failed write (disk full, permissions) stops training with one line and leaves the previous files intact.
    """
    try:
        save_networks(networks, save_dir, which_epoch)
        if position is not None:
            write_iter_file(save_dir, *position)
        atomic_write(training_state_path(save_dir, which_epoch), lambda tmp: torch.save(training_state, tmp))
    except OSError as error:
        raise TrainingError(f"saving the '{which_epoch}' checkpoint in {save_dir} failed ({error.strerror or error}); "
                            f"the previous checkpoint files are intact") from None


def load_training_state(save_dir: str, which_epoch: str) -> Optional[dict]:
    """The training state saved with the weights, or None when there is no state file."""
    path = training_state_path(save_dir, which_epoch)
    if not os.path.isfile(path):
        return None
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # truncated or pickle-bearing files alike
        raise ModelError(f"{path}: cannot read the training state ({str(error).splitlines()[0]}); delete it to resume from the weights only") from None
