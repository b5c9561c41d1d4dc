"""An experiment's records: its folder, the options it ran with (opt.txt, opt.json; what differs now) and atomic text files."""

import argparse
import json
import os
from collections.abc import Sequence

from util.errors import OptionsError, describe
from util.files import atomic_write, mkdirs


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
    try:
        write_text(os.path.join(expr_dir, 'opt.txt'), format_options(opt) + '\n')
        write_text(os.path.join(expr_dir, 'opt.json'), json.dumps(payload, indent=1, sort_keys=True))
    except OSError as error:
        raise OptionsError(f"cannot write the options to {expr_dir} ({describe(error)}); free space or fix its permissions") from None


def write_text(path: str, text: str) -> None:
    """Write a text file atomically."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as handle:
            handle.write(text)

    atomic_write(path, write)


def load_saved_options(expr_dir: str) -> dict | None:
    """The options an experiment was trained with (opt.json), or None when there is none."""
    json_path = os.path.join(expr_dir, 'opt.json')
    if not os.path.isfile(json_path):
        return None
    try:
        with open(json_path) as handle:
            saved = json.load(handle)
    except (OSError, ValueError) as error:
        raise OptionsError(f"{json_path}: cannot read the saved options ({describe(error)}); delete or fix the file") from None
    if not isinstance(saved, dict):
        raise OptionsError(
            f"{json_path}: the saved options are a JSON {type(saved).__name__}, not an object of flag: value; delete or fix the file"
        )
    return saved


def differing_flags(saved: dict, opt: argparse.Namespace, keys: Sequence[str]) -> list:
    """`--flag saved (saved) vs now (now)` for each of `keys` whose saved value differs from the current options."""
    return [
        f'--{key} {saved[key]} (saved) vs {getattr(opt, key)} (now)'
        for key in keys
        if key in saved and hasattr(opt, key) and saved[key] != getattr(opt, key)
    ]
