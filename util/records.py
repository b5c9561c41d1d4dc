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


ARCHITECTURE_FILE = 'architecture.json'


def load_architecture_record(expr_dir: str) -> dict | None:
    """The experiment's record of its networks (architecture.json: {'model', 'architecture': field values, 'flags': the
    architecture flags that built them}), or None for an experiment written before the record had its flags."""
    path = os.path.join(expr_dir, ARCHITECTURE_FILE)
    record = read_json_object(path, 'the record of the networks')
    if record is None:
        return None
    if not isinstance(record.get('model'), str) or not isinstance(record.get('architecture'), dict):
        raise OptionsError(f'{path}: not a record of networks ({{"model", "architecture", "flags"}}); delete or fix the file')
    if 'flags' not in record:  # written before the record carried its flags: opt.json has them
        return None
    if not isinstance(record['flags'], dict):
        raise OptionsError(f'{path}: "flags" is a JSON {type(record["flags"]).__name__}, not an object of flag: value; fix the file')
    return record


def saved_architecture_flags(expr_dir: str) -> tuple[dict, str] | None:
    """({'model': ..., architecture flag: value}, the file they come from) as the experiment recorded its networks:
    architecture.json, or for an experiment written before it, opt.json (which holds every flag); None without either."""
    record = load_architecture_record(expr_dir)
    if record is not None:
        return {**record['flags'], 'model': record['model']}, os.path.join(expr_dir, ARCHITECTURE_FILE)
    saved = load_saved_options(expr_dir)
    return (saved, os.path.join(expr_dir, 'opt.json')) if saved is not None else None


def load_saved_options(expr_dir: str) -> dict | None:
    """The options an experiment was trained with (opt.json), or None when there is none."""
    return read_json_object(os.path.join(expr_dir, 'opt.json'), 'the saved options')


def read_json_object(path: str, what: str) -> dict | None:
    """The JSON object in `path` (None when there is no file); OptionsError naming the file for one that is unreadable
    or not an object."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            value = json.load(handle)
    except (OSError, ValueError) as error:
        raise OptionsError(f"{path}: cannot read {what} ({describe(error)}); delete or fix the file") from None
    if not isinstance(value, dict):
        raise OptionsError(f"{path}: a JSON {type(value).__name__}, not {what} (an object of name: value); delete or fix the file")
    return value


def differing_flags(saved: dict, opt: argparse.Namespace, keys: Sequence[str]) -> list:
    """`--flag saved (saved) vs now (now)` for each of `keys` whose saved value differs from the current options."""
    return [
        f'--{key} {saved[key]} (saved) vs {getattr(opt, key)} (now)'
        for key in keys
        if key in saved and hasattr(opt, key) and saved[key] != getattr(opt, key)
    ]
