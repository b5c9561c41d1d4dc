"""Convert the official Cityscapes download into the flat folders train.py and test.py read.

    python scripts/prepare_cityscapes.py OFFICIAL_ROOT OUT_DIR [--mode symlink|copy] [--splits train,val] [--overwrite]

OFFICIAL_ROOT is the folder into which leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip were both
unpacked (https://www.cityscapes-dataset.com/downloads/), so that it holds
    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds}.png
(the *_gtFine_color.png, *_gtFine_polygons.json and any *_labelTrainIds.png files are ignored).

The official train split becomes OUT_DIR/train_label, train_inst, train_img; the official val split (the test
split has no public labels) becomes OUT_DIR/test_label, test_inst, test_img. File names are kept. With
--mode symlink (the default) the outputs are symbolic links to absolute paths in OFFICIAL_ROOT, so keep that
folder in place; --mode copy copies the files (shutil.copy2, ~11 GB for the full download).

Every frame must have its photo, labelIds and instanceIds; the whole input is checked before anything is
written. Output folders that already hold other files are left alone unless --overwrite is given; re-running
with the same inputs is a no-op. Exit status 0 on success, 1 with a one-line error otherwise.
"""

import argparse
import filecmp
import functools
import os
import shutil
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqdm import tqdm  # noqa: E402

from data.base_dataset import DatasetError  # noqa: E402
from options.base_options import OptionsError  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.files import atomic_write, mkdirs  # noqa: E402

# Official split -> the phase prefix of our folders.
SPLIT_PHASE = {'train': 'train', 'val': 'test'}
# Output kind -> (official top folder, file-name suffix); the suffix follows the city_seq_frame prefix.
KINDS = {
    'label': ('gtFine', '_gtFine_labelIds.png'),
    'inst': ('gtFine', '_gtFine_instanceIds.png'),
    'img': ('leftImg8bit', '_leftImg8bit.png'),
}
ZIPS = {'leftImg8bit': 'leftImg8bit_trainvaltest.zip', 'gtFine': 'gtFine_trainvaltest.zip'}
DOWNLOADS = 'https://www.cityscapes-dataset.com/downloads/'
SHOW = 5  # how many offending names an error message lists


@dataclass
class Folder:
    """One output folder: where it is and which files (name -> official source path) it must hold."""

    split: str
    kind: str
    path: str
    files: dict[str, str] = field(default_factory=dict)


def _listing(names: list[str]) -> str:
    shown = ', '.join(names[:SHOW])
    return shown + (f', ... ({len(names) - SHOW} more)' if len(names) > SHOW else '')


def check_root(root: str) -> None:
    """Raise DatasetError unless root exists and holds the unpacked leftImg8bit/ and gtFine/ folders."""
    if not os.path.isdir(root):
        raise DatasetError(
            f"{root}: OFFICIAL_ROOT not found; pass the folder into which {ZIPS['leftImg8bit']} and "
            f"{ZIPS['gtFine']} were unpacked (it holds leftImg8bit/ and gtFine/)"
        )
    missing = [top for top in ZIPS if not os.path.isdir(os.path.join(root, top))]
    if not missing:
        return
    if os.path.basename(root) in ZIPS or os.path.basename(root) in SPLIT_PHASE:
        hint = (
            f"; OFFICIAL_ROOT is the folder into which {ZIPS['leftImg8bit']} and {ZIPS['gtFine']} were unpacked "
            f"(it holds leftImg8bit/ and gtFine/), not {os.path.basename(root)}/ itself"
        )
    elif len(missing) == 2:
        hint = f"; download {ZIPS['leftImg8bit']} and {ZIPS['gtFine']} from {DOWNLOADS} and unpack both into {root}"
    else:
        present = next(top for top in ZIPS if top not in missing)
        hint = f"; download {ZIPS[missing[0]]} from {DOWNLOADS} and unpack it into {root}, beside {present}/"
    raise DatasetError(f"{root}: {' and '.join(top + '/' for top in missing)} not found{hint}")


def find_files(root: str, top: str, split: str, suffix: str) -> dict[str, str]:
    """city_seq_frame prefix -> path of every file ending in suffix under root/top/split/<city>/."""
    found: dict[str, str] = {}
    for directory, subdirs, names in os.walk(os.path.join(root, top, split)):
        subdirs.sort()
        for name in sorted(names):
            if not name.endswith(suffix) or name == suffix:
                continue
            prefix = name[: -len(suffix)]
            path = os.path.join(directory, name)
            if prefix in found:
                raise DatasetError(
                    f"{path}: frame {prefix} also at {found[prefix]}; each frame must appear once per split (was a zip unpacked twice?)"
                )
            found[prefix] = path
    return found


def find_frames(root: str, split: str) -> dict[str, dict[str, str]]:
    """frame prefix -> {kind: source path} for one official split; raise DatasetError if empty or incomplete."""
    by_kind = {kind: find_files(root, top, split, suffix) for kind, (top, suffix) in KINDS.items()}
    for kind, (top, suffix) in KINDS.items():
        if not by_kind[kind]:
            raise DatasetError(
                f"{os.path.join(root, top, split)}: no *{suffix} files for split {split}; check that "
                f"{ZIPS[top]} was fully unpacked, or leave the split out with --splits"
            )
    prefixes = sorted(set().union(*by_kind.values()))
    incomplete = []
    for prefix in prefixes:
        lacking = [KINDS[kind][1].lstrip('_').removesuffix('.png') for kind in KINDS if prefix not in by_kind[kind]]
        if lacking:
            incomplete.append(f"{prefix} (no {'/'.join(lacking)})")
    if incomplete:
        raise DatasetError(
            f"{root}: {len(incomplete)} of {len(prefixes)} {split} frames lack files: {_listing(incomplete)}; "
            f"every frame needs its leftImg8bit, gtFine_labelIds and gtFine_instanceIds PNG"
        )
    return {prefix: {kind: by_kind[kind][prefix] for kind in KINDS} for prefix in prefixes}


def plan(root: str, out_dir: str, splits: list[str]) -> list[Folder]:
    """The output folders and their files for the requested splits (the input is fully checked first)."""
    check_root(root)
    folders = []
    for split in splits:
        frames = find_frames(root, split)
        for kind in KINDS:
            folder = Folder(split, kind, os.path.join(out_dir, f'{SPLIT_PHASE[split]}_{kind}'))
            for sources in frames.values():
                source = os.path.abspath(sources[kind])
                folder.files[os.path.basename(source)] = source
            folders.append(folder)
    return folders


def is_current(dest: str, source: str, mode: str) -> bool:
    """True when dest already is what this mode would write: a link to source, or a copy with source's bytes."""
    if mode == 'symlink':
        return os.path.islink(dest) and os.readlink(dest) == source
    # filecmp compares size+mtime first (copy2 keeps mtime) and falls back to the bytes.
    return not os.path.islink(dest) and os.path.isfile(dest) and filecmp.cmp(source, dest, shallow=True)


def find_conflicts(folders: list[Folder], mode: str) -> tuple[list[str], list[str]]:
    """(planned outputs that exist but differ, existing files no frame accounts for); subfolders are an error."""
    differing, extra = [], []
    for folder in folders:
        if os.path.lexists(folder.path) and not os.path.isdir(folder.path):
            raise DatasetError(f"{folder.path}: exists and is not a folder; remove it or choose another OUT_DIR")
        if not os.path.isdir(folder.path):
            continue
        for name in sorted(os.listdir(folder.path)):
            path = os.path.join(folder.path, name)
            if os.path.isdir(path) and not os.path.islink(path):
                raise DatasetError(
                    f"{path}: unexpected subfolder in an output folder (the datasets read folders recursively); "
                    f"move it away or choose another OUT_DIR"
                )
            if name not in folder.files:
                extra.append(path)
            elif not is_current(path, folder.files[name], mode):
                differing.append(path)
    return differing, extra


def copy_into(source: str, tmp_path: str) -> None:
    """Copy `source` with its metadata to the temporary path of an atomic write."""
    shutil.copy2(source, tmp_path)


def _link(source: str, dest: str) -> None:
    tmp = f'{dest}.tmp-{os.getpid()}'
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(source, tmp)
    os.replace(tmp, dest)  # atomic, and replaces an older file or link of that name


def write(folders: list[Folder], mode: str) -> int:
    """Create the folders, link or copy every file not already current; return how many were written."""
    todo = []
    for folder in folders:
        mkdirs(folder.path)
        for name, source in folder.files.items():
            dest = os.path.join(folder.path, name)
            if not is_current(dest, source, mode):
                todo.append((source, dest))
    if mode == 'symlink':
        for source, dest in todo:
            _link(source, dest)
    else:
        for source, dest in tqdm(todo, desc='copying', unit='file', dynamic_ncols=True, disable=not todo):
            atomic_write(dest, functools.partial(copy_into, source))
    return len(todo)


def count_table(folders: list[Folder]) -> str:
    """Check that each output folder holds exactly its split's frames; return the table of counts."""
    lines = [f"{'split':<6} {'folders':<8} {'frames':>7} {'label':>7} {'inst':>7} {'img':>7}"]
    for split in dict.fromkeys(folder.split for folder in folders):
        counts = {}
        frames = 0
        for folder in (f for f in folders if f.split == split):
            frames = len(folder.files)
            names = set(os.listdir(folder.path))
            counts[folder.kind] = len(names)
            if names != set(folder.files):
                raise DatasetError(
                    f"{folder.path}: holds {len(names)} files but the {split} split has {frames} frames "
                    f"({len(set(folder.files) - names)} missing, {len(names - set(folder.files))} extra); "
                    f"re-run with --overwrite"
                )
        lines.append(f"{split:<6} {SPLIT_PHASE[split] + '_*':<8} {frames:>7} " + ' '.join(f'{counts[kind]:>7}' for kind in KINDS))
    return '\n'.join(lines)


def parse_splits(text: str) -> list[str]:
    """'train,val' -> ['train', 'val']; only the labelled official splits are accepted."""
    splits = list(dict.fromkeys(part.strip() for part in text.split(',') if part.strip()))
    unknown = [split for split in splits if split not in SPLIT_PHASE]
    if not splits or unknown:
        raise OptionsError(
            f"--splits {text}: choose from {','.join(SPLIT_PHASE)} (train -> train_*, val -> test_*; "
            f"the official test split has no public labels)"
        )
    return splits


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, check the input and the output folders, then link or copy and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('official_root', metavar='OFFICIAL_ROOT', help='folder holding leftImg8bit/ and gtFine/')
    parser.add_argument('out_dir', metavar='OUT_DIR', help='dataset folder to create (the --dataroot of train.py)')
    parser.add_argument(
        '--mode',
        choices=('symlink', 'copy'),
        default='symlink',
        help='symlink: absolute links into OFFICIAL_ROOT (default); copy: independent copies',
    )
    parser.add_argument('--splits', default='train,val', help='official splits to convert: train -> train_*, val -> test_*')
    parser.add_argument('--overwrite', action='store_true', help='replace differing files and remove unrelated files in the output folders')
    args = parser.parse_args(argv)
    splits = parse_splits(args.splits)
    root = os.path.abspath(args.official_root)
    out_dir = os.path.abspath(args.out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DatasetError(f"{args.out_dir}: OUT_DIR exists and is not a folder")

    for top in ZIPS:
        if os.path.commonpath([out_dir, os.path.join(root, top)]) == os.path.join(root, top):
            raise DatasetError(f"{args.out_dir}: OUT_DIR is inside {os.path.join(root, top)}; choose a folder outside the official tree")
    folders = plan(root, out_dir, splits)
    differing, extra = find_conflicts(folders, args.mode)
    if (differing or extra) and not args.overwrite:
        parts = []
        if differing:
            shown = _listing([os.path.relpath(path, out_dir) for path in differing])
            parts.append(f"{len(differing)} differ from what --mode {args.mode} would write ({shown})")
        if extra:
            shown = _listing([os.path.relpath(path, out_dir) for path in extra])
            parts.append(f"{len(extra)} belong to no {'/'.join(splits)} frame ({shown})")
        raise DatasetError(
            f"{out_dir}: output folders already hold other files: {'; '.join(parts)}; "
            f"pass --overwrite to replace and remove them, or choose another OUT_DIR"
        )
    for path in extra:
        os.remove(path)
    written = write(folders, args.mode)
    table = count_table(folders)
    verb = 'linked' if args.mode == 'symlink' else 'copied'
    print(
        f'Cityscapes {root} -> {out_dir} ({verb} {written} files, {sum(map(len, (f.files for f in folders))) - written} '
        f'already in place{f", removed {len(extra)}" if extra else ""})'
    )
    print(table)
    print(f'check it with: python scripts/check_dataset.py --dataroot {out_dir}')


if __name__ == '__main__':
    run_main(main)
