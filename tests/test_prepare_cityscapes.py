"""scripts/prepare_cityscapes.py: the official Cityscapes layout becomes our flat train_*/test_* folders."""

import filecmp
import os

import pytest
from PIL import Image

from helpers import assert_ok, assert_one_line_error, run_tool

SCRIPT = 'scripts/prepare_cityscapes.py'
OUT_FOLDERS = ('train_label', 'train_inst', 'train_img', 'test_label', 'test_inst', 'test_img')
SUFFIX = {'label': '_gtFine_labelIds.png', 'inst': '_gtFine_instanceIds.png', 'img': '_leftImg8bit.png'}


def _prefixes(folder: str, suffix: str) -> list:
    return sorted(name[: -len(suffix)] for name in os.listdir(folder) if name.endswith(suffix))


def make_official_tree(root, samples: str) -> dict:
    """A miniature official download under root, built from the samples; returns {out folder: {name: official path}}."""
    expected = {folder: {} for folder in OUT_FOLDERS}

    def put(path, source=None):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if source is None:  # val photos: the samples have none, so small dummies stand in
            Image.new('RGB', (16, 8), (90, 120, 150)).save(path)
        else:
            os.symlink(source, path)
        return path

    for split, phase, city, sample_phase in (('train', 'train', 'aachen', 'train'), ('val', 'test', 'frankfurt', 'test')):
        for prefix in _prefixes(os.path.join(samples, f'{sample_phase}_label'), SUFFIX['label']):
            for kind in ('label', 'inst'):
                name = prefix + SUFFIX[kind]
                expected[f'{phase}_{kind}'][name] = put(
                    os.path.join(root, 'gtFine', split, city, name), os.path.join(samples, f'{sample_phase}_{kind}', name)
                )
            name = prefix + SUFFIX['img']
            photo = os.path.join(samples, 'train_img', name) if split == 'train' else None
            expected[f'{phase}_img'][name] = put(os.path.join(root, 'leftImg8bit', split, city, name), photo)
            # The official gtFine also ships these: they must be ignored.
            put(
                os.path.join(root, 'gtFine', split, city, prefix + '_gtFine_color.png'),
                os.path.join(samples, f'{sample_phase}_label', prefix + SUFFIX['label']),
            )
            with open(os.path.join(root, 'gtFine', split, city, prefix + '_gtFine_polygons.json'), 'w') as handle:
                handle.write('{"objects": []}')
    (root / 'README').write_text('Cityscapes\n')
    return expected


@pytest.fixture(scope='module')
def official(tmp_path_factory, cityscapes_root):
    root = tmp_path_factory.mktemp('official')
    return str(root), make_official_tree(root, cityscapes_root)


@pytest.fixture(scope='module')
def linked(tmp_path_factory, official):
    """The default (symlink) conversion of the miniature tree, and the script's result."""
    root, _ = official
    out = str(tmp_path_factory.mktemp('linked') / 'cityscapes')
    result = run_tool(SCRIPT, root, out)
    assert_ok(result)
    return out, result


def listing(out: str) -> dict:
    return {folder: sorted(os.listdir(os.path.join(out, folder))) for folder in os.listdir(out)}


def test_symlink_mode_keeps_names_and_points_at_the_official_files(official, linked):
    _, expected = official
    out, result = linked
    assert listing(out) == {folder: sorted(files) for folder, files in expected.items()}
    assert [len(expected[folder]) for folder in OUT_FOLDERS] == [8, 8, 8, 15, 15, 15]
    for folder, files in expected.items():
        for name, source in files.items():
            path = os.path.join(out, folder, name)
            assert os.path.islink(path)
            assert os.readlink(path) == os.path.abspath(source)  # absolute target inside the official tree
            assert filecmp.cmp(path, source, shallow=False)
    assert not any('color' in name or name.endswith('.json') for names in listing(out).values() for name in names)
    table = [line.split() for line in result.stdout.splitlines()]
    assert ['split', 'folders', 'frames', 'label', 'inst', 'img'] in table
    assert ['train', 'train_*', '8', '8', '8', '8'] in table
    assert ['val', 'test_*', '15', '15', '15', '15'] in table


def test_symlinked_output_passes_check_dataset(linked):
    out, _ = linked
    result = run_tool('scripts/check_dataset.py', '--dataroot', out)
    assert_ok(result)
    assert 'files pair by name' in result.stdout
    assert 'label maps          8' in result.stdout


def test_rerun_with_the_same_inputs_is_a_no_op(official, linked):
    root, _ = official
    out, _ = linked
    before = {folder: {name: os.readlink(os.path.join(out, folder, name)) for name in names} for folder, names in listing(out).items()}
    result = run_tool(SCRIPT, root, out, '--mode', 'symlink')
    assert_ok(result)
    assert 'linked 0 files, 69 already in place' in result.stdout
    assert before == {
        folder: {name: os.readlink(os.path.join(out, folder, name)) for name in names} for folder, names in listing(out).items()
    }


def test_copy_mode_copies_bytes_and_refuses_to_replace_them_without_overwrite(official, tmp_path):
    root, expected = official
    out = str(tmp_path / 'copied')
    result = run_tool(SCRIPT, root, out, '--mode', 'copy')
    assert_ok(result)
    assert 'copied 69 files' in result.stdout
    assert listing(out) == {folder: sorted(files) for folder, files in expected.items()}
    for folder, files in expected.items():
        for name, source in files.items():
            path = os.path.join(out, folder, name)
            assert not os.path.islink(path) and os.path.isfile(path)
            assert filecmp.cmp(path, source, shallow=False)
    assert_ok(again := run_tool(SCRIPT, root, out, '--mode', 'copy'))
    assert 'copied 0 files, 69 already in place' in again.stdout

    # Links over copies, or a stray file, are "different files": refused, nothing touched.
    stray = os.path.join(out, 'train_img', 'notes.png')
    Image.new('RGB', (4, 4)).save(stray)
    refused = run_tool(SCRIPT, root, out)
    assert_one_line_error(refused, '--overwrite', '69 differ', 'notes.png')
    assert not any(os.path.islink(os.path.join(out, f, n)) for f, names in listing(out).items() for n in names)
    assert os.path.exists(stray)

    replaced = run_tool(SCRIPT, root, out, '--overwrite')
    assert_ok(replaced)
    assert 'removed 1' in replaced.stdout
    assert listing(out) == {folder: sorted(files) for folder, files in expected.items()}
    assert all(os.path.islink(os.path.join(out, f, n)) for f, names in listing(out).items() for n in names)


def test_splits_train_only_writes_the_train_folders(official, tmp_path):
    root, _ = official
    out = tmp_path / 'train_only'
    assert_ok(run_tool(SCRIPT, root, out, '--splits', 'train'))
    assert sorted(os.listdir(out)) == ['train_img', 'train_inst', 'train_label']
    assert_one_line_error(run_tool(SCRIPT, root, out, '--splits', 'train,test'), '--splits train,test', 'train,val')


def test_missing_official_root(tmp_path):
    missing = tmp_path / 'nowhere'
    assert_one_line_error(run_tool(SCRIPT, missing, tmp_path / 'out'), str(missing), 'OFFICIAL_ROOT not found', 'gtFine_trainvaltest.zip')
    assert not (tmp_path / 'out').exists()


def test_missing_gtfine_names_its_zip(official, tmp_path):
    root, _ = official
    partial = tmp_path / 'partial'
    partial.mkdir()
    os.symlink(os.path.join(root, 'leftImg8bit'), partial / 'leftImg8bit')
    line = assert_one_line_error(run_tool(SCRIPT, partial, tmp_path / 'out'), 'gtFine/ not found', 'gtFine_trainvaltest.zip')
    assert 'leftImg8bit_trainvaltest.zip' not in line
    assert not (tmp_path / 'out').exists()
    # Both missing: both zips are named.
    (tmp_path / 'empty').mkdir()
    assert_one_line_error(
        run_tool(SCRIPT, tmp_path / 'empty', tmp_path / 'out'),
        'leftImg8bit/ and gtFine/ not found',
        'leftImg8bit_trainvaltest.zip',
        'gtFine_trainvaltest.zip',
    )


def test_an_empty_split_is_an_error(official, tmp_path):
    root, _ = official
    no_val = tmp_path / 'no_val'
    for top in ('leftImg8bit', 'gtFine'):
        (no_val / top).mkdir(parents=True)
        os.symlink(os.path.join(root, top, 'train'), no_val / top / 'train')
    assert_one_line_error(run_tool(SCRIPT, no_val, tmp_path / 'out'), 'split val', '--splits')
    assert not (tmp_path / 'out').exists()
    assert_ok(run_tool(SCRIPT, no_val, tmp_path / 'out', '--splits', 'train'))


@pytest.mark.parametrize('kind', ['photo', 'labels'])
def test_a_frame_with_missing_files_is_named_before_anything_is_written(cityscapes_root, tmp_path, kind):
    root = tmp_path / 'official'
    make_official_tree(root, cityscapes_root)
    orphan = 'aachen_000099_000019'
    if kind == 'photo':  # a photo without labelIds / instanceIds
        Image.new('RGB', (16, 8)).save(root / 'leftImg8bit' / 'train' / 'aachen' / f'{orphan}_leftImg8bit.png')
        lacking = 'gtFine_labelIds/gtFine_instanceIds'
    else:  # labels without a photo, and a val frame without its instanceIds
        Image.new('L', (16, 8)).save(root / 'gtFine' / 'train' / 'aachen' / f'{orphan}_gtFine_labelIds.png')
        Image.new('L', (16, 8)).save(root / 'gtFine' / 'train' / 'aachen' / f'{orphan}_gtFine_instanceIds.png')
        lacking = 'leftImg8bit'
    out = tmp_path / 'out'
    assert_one_line_error(run_tool(SCRIPT, root, out), f'{orphan} (no {lacking})', '1 of 9 train frames')
    assert not out.exists()


def test_many_incomplete_frames_are_counted_and_the_first_few_listed(official, tmp_path):
    root, _ = official
    broken = tmp_path / 'broken'
    (broken / 'gtFine').mkdir(parents=True)
    os.symlink(os.path.join(root, 'leftImg8bit'), broken / 'leftImg8bit')
    os.symlink(os.path.join(root, 'gtFine', 'val'), broken / 'gtFine' / 'val')
    city = broken / 'gtFine' / 'train' / 'aachen'
    city.mkdir(parents=True)
    for name in sorted(os.listdir(os.path.join(root, 'gtFine', 'train', 'aachen'))):
        # labelIds of every frame, instanceIds of the first only: 7 frames are incomplete.
        if name.endswith('_gtFine_labelIds.png') or name == 'aachen_000000_000019_gtFine_instanceIds.png':
            os.symlink(os.path.join(root, 'gtFine', 'train', 'aachen', name), city / name)
    line = assert_one_line_error(
        run_tool(SCRIPT, broken, tmp_path / 'out'),
        '7 of 8 train frames',
        'aachen_000001_000019 (no gtFine_instanceIds)',
        'aachen_000005_000019',
        '(2 more)',
    )
    assert 'aachen_000000_000019' not in line and 'aachen_000006_000019' not in line


def test_out_dir_inside_the_official_tree_is_refused(official):
    root, _ = official
    inside = os.path.join(root, 'gtFine', 'prepared')
    assert_one_line_error(run_tool(SCRIPT, root, inside), 'OUT_DIR is inside', 'outside the official tree')
    assert not os.path.exists(inside)
