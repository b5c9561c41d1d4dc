"""What a newcomer tripped on (issue 18): lossy maps, a wrong --label_nc refused before anything is written,
the per-image time, the one-line --help summaries."""

import os

import numpy as np
import pytest
from PIL import Image

import data.aligned_dataset as aligned_dataset
from data.base_dataset import open_map
from helpers import TINY, assert_one_line_error, run_tool
from util.errors import DatasetError
from util.iter_counter import IterationCounter


def write_pair(root, name: str, label: np.ndarray, label_format: str = 'PNG', inst_format: str = 'PNG', phase: str = 'train') -> None:
    """One label map, instance map and photo of the same size, the maps in the given formats."""
    height, width = label.shape
    extension = {'PNG': 'png', 'JPEG': 'jpg', 'WEBP': 'webp'}
    for folder, array, file_format in (
        ('label', label, label_format),
        ('inst', label.astype(np.uint8), inst_format),
        ('img', np.full((height, width, 3), 128, np.uint8), 'PNG'),
    ):
        os.makedirs(os.path.join(root, f'{phase}_{folder}'), exist_ok=True)
        Image.fromarray(array).save(os.path.join(root, f'{phase}_{folder}', f'{name}.{extension[file_format]}'), format=file_format)


def stripes(width: int = 64, height: int = 32, top: int = 33) -> np.ndarray:
    """A label map of vertical stripes with ids 0..top."""
    return (np.arange(width)[None, :].repeat(height, 0) * (top + 1) // width).astype(np.uint8)


def train_args(tmp_path, dataroot, *extra) -> list:
    """A tiny train.py command line writing to tmp_path/checkpoints/run."""
    checkpoints = tmp_path / 'checkpoints'
    return ['--name', 'run', '--dataroot', dataroot, '--checkpoints_dir', checkpoints, *TINY, '--niter', 1, '--niter_decay', 0, *extra]


@pytest.mark.parametrize('which', ['label', 'inst'])
def test_train_refuses_a_jpeg_map_naming_the_file_and_the_fix(tmp_path, which):
    root = str(tmp_path / 'data')
    write_pair(root, 'a', stripes(), **{f'{which}_format': 'JPEG'})
    result = run_tool('train.py', *train_args(tmp_path, root))
    assert_one_line_error(result, 'a.jpg', 'JPEG', 'export it as PNG')
    assert not os.path.exists(tmp_path / 'checkpoints' / 'run')


def test_test_and_check_dataset_refuse_a_jpeg_label_map(tmp_path):
    root = str(tmp_path / 'data')
    write_pair(root, 'a', stripes(), label_format='JPEG', phase='test')
    tested = run_tool('test.py', '--name', 'run', '--dataroot', root, '--checkpoints_dir', tmp_path / 'ck', '--gpu_ids', -1)
    assert_one_line_error(tested, 'a.jpg', 'JPEG', 'export it as PNG')
    checked = run_tool('scripts/check_dataset.py', '--dataroot', root, '--phase', 'test')
    assert_one_line_error(checked, 'a.jpg', 'JPEG', 'export it as PNG')
    assert '--label_nc' not in checked.stderr  # compression noise no longer reads as label values


def test_webp_maps_are_refused_when_lossy_and_read_when_lossless(tmp_path):
    label = stripes()
    lossy, lossless = str(tmp_path / 'lossy.webp'), str(tmp_path / 'lossless.webp')
    Image.fromarray(label).save(lossy, format='WEBP', quality=90)
    Image.fromarray(label).convert('RGB').save(lossless, format='WEBP', lossless=True)
    with pytest.raises(DatasetError, match='lossy WebP'):
        open_map(lossy)
    assert np.array_equal(np.asarray(open_map(lossless))[..., 0], label)


def test_a_label_nc_too_small_is_refused_before_anything_is_written(tmp_path):
    root = str(tmp_path / 'data')
    for index in range(3):
        write_pair(root, f'frame{index}', stripes(top=33 if index == 2 else 10))
    result = run_tool('train.py', *train_args(tmp_path, root, '--label_nc', 20, '--serial_batches'))
    # The first batch (frame0) is fine: only a check of every map finds frame2, before the folder is written.
    assert_one_line_error(result, 'frame2.png', 'label value 33 >= --label_nc 20', '--label_nc 34')
    assert not os.path.exists(tmp_path / 'checkpoints' / 'run')


def test_label_maxima_are_decoded_once_and_again_when_a_file_changes(tmp_path, monkeypatch):
    paths = []
    for index, top in enumerate((5, 9)):
        paths.append(str(tmp_path / f'{index}.png'))
        Image.fromarray(stripes(top=top)).save(paths[-1])
    assert aligned_dataset.label_maxima(paths) == [5, 9]
    decoded = []
    real_open_map = aligned_dataset.open_map
    monkeypatch.setattr(aligned_dataset, 'open_map', lambda path, what: decoded.append(path) or real_open_map(path, what))
    assert aligned_dataset.label_maxima(paths) == [5, 9] and decoded == []
    Image.fromarray(stripes(top=20)).save(paths[1])
    os.utime(paths[1], ns=(0, 123))  # a new modification time even on a coarse clock
    assert aligned_dataset.label_maxima(paths) == [5, 20] and decoded == [paths[1]]


class Clock:
    """A stand-in for time.time that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_per_image_divides_by_the_images_actually_seen(monkeypatch):
    clock = Clock()
    monkeypatch.setattr('util.iter_counter.time.time', clock)
    opt = type(
        'Opt', (), dict(niter=1, niter_decay=0, display_freq=100, print_freq=100, save_latest_freq=1000, batchSize=2, accum_steps=1)
    )()
    counter = IterationCounter(opt, dataset_size=1000)
    counter.record_epoch_start(1)
    for _ in range(3):  # 6 images at 0.5 s each, then the run stops (a final print long before --print_freq)
        counter.record_one_iteration()
        clock.now += 1.0
    assert counter.time_per_iteration() == pytest.approx(0.5)
    while not counter.needs_printing():  # a whole --print_freq interval: 100 images
        counter.record_one_iteration()
        clock.now += 1.0
    counter.record_one_iteration()  # the timer restarts after a print
    clock.now += 1.0
    counter.record_one_iteration()
    clock.now += 1.0
    assert counter.time_per_iteration() == pytest.approx(0.5)


@pytest.mark.parametrize(
    'script, summary',
    [
        ('train.py', 'Train pix2pixHD'),
        ('test.py', 'Synthesize images'),
        ('encode_features.py', 'Encode every training photo'),
        ('precompute_feature_maps.py', "Write E's feature maps"),
        ('scripts/editor.py', 'Serve the interactive editor'),
        ('scripts/check_dataset.py', 'Check a dataset'),
    ],
)
def test_help_opens_with_one_line_saying_what_the_script_does(script, summary):
    result = run_tool(script, '--help')
    assert result.returncode == 0
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith(summary) and second == ''
    if script == 'test.py':
        flat = ' '.join(result.stdout.split())
        assert '--netG' in flat and 'opt.json' in flat and 'unless given on the command line' in flat
