"""Tests for the data pipeline: AlignedDataset, the five --resize_or_crop modes, flip, 16-bit ids,
--label_nc 0, the DataLoader options and the DatasetError messages; lossy (JPEG, lossy WebP), colour and alpha
maps refused, --label_nc checked over the whole dataset before anything is written (train.py, test.py and
scripts/check_dataset.py), the label-range cache."""

import os
import random
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import data.aligned_dataset as aligned_dataset
from builders import build_data, build_dataset
from data.aligned_dataset import AlignedDataset
from data.base_dataset import DatasetError, open_map
from helpers import ONE_EPOCH, TINY, assert_ok, assert_one_line_error, one_line, run_tool, run_train
from models import METHODS
from models.common.labels import instance_class
from options.train_options import TrainOptions

W, H = 200, 100  # the crafted sample, width x height


# ----------------------------------------------------------------------------- helpers
def make_opt(tmp_path, dataroot, *extra):
    """Training options as train.py would parse them, without writing opt.txt."""
    args = [
        '--dataroot',
        str(dataroot),
        '--gpu_ids',
        '-1',
        '--checkpoints_dir',
        str(tmp_path / 'checkpoints'),
        '--nThreads',
        '0',
        *[str(a) for a in extra],
    ]
    return TrainOptions('', METHODS).parse(args, save=False)


def crafted_arrays(width=W, height=H, seed=0):
    """An asymmetric label map (ids 0..34), a 16-bit instance map and a noisy RGB photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    # Vertical stripes of varying width plus a horizontal split: no left/right symmetry.
    label = ((xx * xx) // (width * 2) + 5 * (yy > height // 3)) % 35
    label = label.astype(np.uint8)
    inst = label.astype(np.uint16).copy()
    inst[(xx < width // 4) & (yy > height // 2)] = 26001
    inst[(xx >= width // 2) & (xx < width // 2 + width // 8)] = 33001
    inst[(yy < height // 5) & (xx > 3 * width // 4)] = 65535
    photo = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    photo[:, : width // 3, 0] = 255  # a red-ish left third: asymmetric even at low resolution
    return label, inst, photo


def write_sample(root, name, label=None, inst=None, photo=None, phase='train', size=(W, H)):
    """Write one label/instance/photo triple (any of them may be skipped by passing False)."""
    default_label, default_inst, default_photo = crafted_arrays(*size)
    arrays = {
        'label': default_label if label is None else label,
        'inst': default_inst if inst is None else inst,
        'img': default_photo if photo is None else photo,
    }
    paths = {}
    for kind, array in arrays.items():
        if array is False:
            continue
        folder = os.path.join(str(root), f'{phase}_{kind}')
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f'{name}.png')
        Image.fromarray(array).save(path)
        paths[kind] = path
    return paths


def to_unit(array):
    """uint8 image array (HxWx3) -> CxHxW float tensor in [-1, 1], as the reference normalises."""
    return torch.from_numpy(array.astype(np.float32).transpose(2, 0, 1) / 255.0 * 2.0 - 1.0)


@pytest.fixture
def crafted_root(tmp_path):
    root = tmp_path / 'data'
    write_sample(root, 'sample0')
    return root


@pytest.fixture
def force_flip(monkeypatch):
    """Return a setter that forces the random flip decision of data.base_dataset.get_params."""

    def setter(flip):
        monkeypatch.setattr(random, 'random', lambda: 0.99 if flip else 0.01)

    return setter


# ----------------------------------------------------------------------------- sizes
# Expected sizes (height, width) worked out by hand for a 200x100 (w x h) sample:
#   scale_width, loadSize 128           -> 128 x int(128 * 100 / 200) = 128x64
#   resize_and_crop, loadSize 96 -> 96x96, then a fineSize 64 crop -> 64x64
#   crop, fineSize 64                    -> 64x64
#   scale_width_and_crop 128 / 64        -> 128x64, then 64x64
#   none, n_downsample_global 4 (base 16): 200/16 = 12.5 -> round 12 -> 192, 100/16 = 6.25 -> 6 -> 96
#   none, n_downsample_global 3 (base 8):  200/8 = 25 -> 200, 100/8 = 12.5 -> round 12 -> 96
#   none, --netG local, n_down 3, 1 enhancer (base 16): 192x96
#   none, --netG local, n_down 2, 2 enhancers (base 4*4 = 16): 192x96
#   none, --netG local, n_down 1, 1 enhancer (base 4): 200/4 = 50 -> 200, 100/4 = 25 -> 100
CRAFTED_SIZES = [
    (['--resize_or_crop', 'scale_width', '--loadSize', 128], (64, 128)),
    (['--resize_or_crop', 'resize_and_crop', '--loadSize', 96, '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'crop', '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'scale_width_and_crop', '--loadSize', 128, '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'none'], (96, 192)),
    (['--resize_or_crop', 'none', '--n_downsample_global', 3], (96, 200)),
    (['--resize_or_crop', 'none', '--netG', 'local', '--n_downsample_global', 3], (96, 192)),
    (['--resize_or_crop', 'none', '--netG', 'local', '--n_downsample_global', 2, '--n_local_enhancers', 2], (96, 192)),
    (['--resize_or_crop', 'none', '--netG', 'local', '--n_downsample_global', 1], (100, 200)),
]


@pytest.mark.parametrize('flags,expected', CRAFTED_SIZES, ids=[' '.join(map(str, f[0][1:])) for f in CRAFTED_SIZES])
def test_resize_or_crop_sizes_on_crafted_sample(tmp_path, crafted_root, flags, expected):
    dataset = AlignedDataset(make_opt(tmp_path, crafted_root, *flags))
    sample = dataset[0]
    height, width = expected
    assert tuple(sample['label'].shape) == (1, height, width)
    assert tuple(sample['inst'].shape) == (1, height, width)
    assert tuple(sample['image'].shape) == (3, height, width)
    assert sample['label'].dtype == torch.int32 and sample['inst'].dtype == torch.int32
    assert sample['image'].dtype == torch.float32
    assert sample['path'].endswith(os.path.join('train_label', 'sample0.png'))


# Cityscapes samples are 2048x1024; every mode keeps 2:1 and 'none' keeps the size (2048 and 1024
# are multiples of 16 and of 32).
CITYSCAPES_SIZES = [
    (['--resize_or_crop', 'scale_width', '--loadSize', 128], (64, 128)),
    (['--resize_or_crop', 'resize_and_crop', '--loadSize', 96, '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'crop', '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'scale_width_and_crop', '--loadSize', 128, '--fineSize', 64], (64, 64)),
    (['--resize_or_crop', 'none', '--netG', 'local'], (1024, 2048)),
]


@pytest.mark.parametrize('flags,expected', CITYSCAPES_SIZES, ids=[f[0][1] for f in CITYSCAPES_SIZES])
def test_resize_or_crop_sizes_on_cityscapes(tmp_path, cityscapes_root, flags, expected):
    dataset = AlignedDataset(make_opt(tmp_path, cityscapes_root, *flags))
    assert len(dataset) == 8
    sample = dataset[0]
    height, width = expected
    assert tuple(sample['label'].shape) == (1, height, width)
    assert tuple(sample['inst'].shape) == (1, height, width)
    assert tuple(sample['image'].shape) == (3, height, width)
    # Real Cityscapes ids survive preprocessing: labelIds < 35, instance ids keep the 1000x class code.
    assert 0 <= int(sample['label'].min()) and int(sample['label'].max()) < 35
    classes = instance_class(sample['inst'])
    assert int(classes.max()) < 35
    assert -1.0 <= float(sample['image'].min()) and float(sample['image'].max()) <= 1.0


def test_16_bit_greyscale_photos_are_scaled_not_clipped_to_white(tmp_path):
    """PIL's convert('RGB') turns a 16-bit grey photo (mode I;16) white: the dataset scales it to 8 bits instead
    (value / 257), for photos and for --label_nc 0 inputs alike; a 32-bit float image is refused naming the file."""
    grey = (np.arange(W * H, dtype=np.float64).reshape(H, W) * (65535 / (W * H - 1))).round().astype(np.uint16)
    root = tmp_path / 'grey'
    write_sample(root, 'sample0', photo=grey)
    assert Image.open(root / 'train_img' / 'sample0.png').mode.startswith('I')
    opt = make_opt(tmp_path, root, '--resize_or_crop', 'none', '--no_flip', '--n_downsample_global', 0)
    image = AlignedDataset(opt)[0]['image']
    expected = torch.from_numpy(np.round(grey / 257) / 255 * 2 - 1).float()
    assert torch.allclose(image, expected.expand(3, H, W), atol=1e-6)  # white would be 1 everywhere
    Image.fromarray(grey.astype(np.float32)).save(root / 'train_img' / 'sample0.tiff')
    os.remove(root / 'train_img' / 'sample0.png')
    with pytest.raises(DatasetError, match=r'sample0.tiff: a F \(float\) image has no known range'):
        AlignedDataset(opt)[0]


def test_a_crop_larger_than_the_image_is_refused_before_anything_is_written(tmp_path, crafted_root):
    """PIL pads a crop beyond the image with black photo pixels and label 0: refused, naming the file and the fix,
    by train.py before it writes (the whole dataset's headers), and by the dataset at the sample (test.py)."""
    result = run_tool(
        'train.py', '--dataroot', crafted_root, '--checkpoints_dir', tmp_path / 'checkpoints', '--gpu_ids', '-1', '--nThreads', '0',
        '--resize_or_crop', 'crop', '--fineSize', '128', '--no_vgg_loss', '--ngf', '4', '--ndf', '4',
    )  # fmt: skip
    assert_one_line_error(result, 'sample0.png: 200x100 under --resize_or_crop crop', 'pass --fineSize 100 or less')
    assert not (tmp_path / 'checkpoints').exists()
    with pytest.raises(DatasetError, match='a 200x100 image is smaller than the --fineSize 128 crop'):
        AlignedDataset(make_opt(tmp_path, crafted_root, '--resize_or_crop', 'crop', '--fineSize', 128))[0]
    scaled = make_opt(tmp_path, crafted_root, '--resize_or_crop', 'scale_width_and_crop', '--loadSize', 128, '--fineSize', 64)
    assert tuple(AlignedDataset(scaled)[0]['image'].shape) == (3, 64, 64)  # 128x64 holds a 64 crop


def test_crop_takes_the_same_window_from_label_instance_and_photo(tmp_path, crafted_root, monkeypatch):
    # randint is drawn for x then y: force the bottom-right-most window (x = 200-64, y = 100-64).
    monkeypatch.setattr(random, 'randint', lambda low, high: high)
    dataset = AlignedDataset(make_opt(tmp_path, crafted_root, '--resize_or_crop', 'crop', '--fineSize', 64, '--no_flip'))
    sample = dataset[0]
    label, inst, photo = crafted_arrays()
    window = (slice(36, 100), slice(136, 200))
    assert np.array_equal(sample['label'][0].numpy(), label[window])
    assert np.array_equal(sample['inst'][0].numpy(), inst[window].astype(np.int32))
    assert torch.allclose(sample['image'], to_unit(photo[window]), atol=1e-6)


# ----------------------------------------------------------------------------- interpolation
def test_maps_resize_nearest_and_photos_bicubic(tmp_path, crafted_root):
    opt = make_opt(tmp_path, crafted_root, '--resize_or_crop', 'scale_width', '--loadSize', 128, '--no_flip')
    sample = AlignedDataset(opt)[0]
    label, inst, photo = crafted_arrays()

    # Label and instance maps: only values of the original map, exactly PIL's nearest resize.
    label_out = sample['label'][0].numpy()
    inst_out = sample['inst'][0].numpy()
    assert set(np.unique(label_out)) <= set(np.unique(label))
    assert set(np.unique(inst_out)) <= set(np.unique(inst))
    assert {33001, 65535} <= set(np.unique(inst_out).tolist())  # 16-bit ids kept through the resize
    nearest_label = np.asarray(Image.fromarray(label).resize((128, 64), Image.NEAREST))
    nearest_inst = np.asarray(Image.fromarray(inst.astype(np.int32)).resize((128, 64), Image.NEAREST))
    assert np.array_equal(label_out, nearest_label)
    assert np.array_equal(inst_out, nearest_inst)

    # Photo: bicubic, and measurably not nearest.
    bicubic = to_unit(np.asarray(Image.fromarray(photo).resize((128, 64), Image.BICUBIC)))
    nearest = to_unit(np.asarray(Image.fromarray(photo).resize((128, 64), Image.NEAREST)))
    assert torch.allclose(sample['image'], bicubic, atol=1e-6)
    assert (sample['image'] - nearest).abs().max() > 0.1


# ----------------------------------------------------------------------------- flip
def _flip_sample(tmp_path, root, force_flip, flip, *flags):
    force_flip(flip)
    return AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none', *flags))[0]


def test_flip_applies_to_label_instance_and_photo_together(tmp_path, force_flip):
    root = tmp_path / 'data'
    write_sample(root, 'asym', size=(64, 32))  # multiples of 16: 'none' leaves it untouched
    label, inst, photo = crafted_arrays(64, 32)
    assert not np.array_equal(label, label[:, ::-1])  # the sample really is asymmetric

    plain = _flip_sample(tmp_path, root, force_flip, False)
    assert np.array_equal(plain['label'][0].numpy(), label)
    assert np.array_equal(plain['inst'][0].numpy(), inst.astype(np.int32))
    assert torch.allclose(plain['image'], to_unit(photo), atol=1e-6)

    flipped = _flip_sample(tmp_path, root, force_flip, True)
    assert torch.equal(flipped['label'], torch.flip(plain['label'], dims=[-1]))
    assert torch.equal(flipped['inst'], torch.flip(plain['inst'], dims=[-1]))
    assert torch.equal(flipped['image'], torch.flip(plain['image'], dims=[-1]))
    assert not torch.equal(flipped['label'], plain['label'])


def test_no_flip_disables_the_random_flip(tmp_path, force_flip):
    root = tmp_path / 'data'
    write_sample(root, 'asym', size=(64, 32))
    label, _, _ = crafted_arrays(64, 32)
    sample = _flip_sample(tmp_path, root, force_flip, True, '--no_flip')
    assert np.array_equal(sample['label'][0].numpy(), label)


def test_flip_is_random_and_shared_under_seeding(tmp_path):
    """Without forcing: over seeded draws both outcomes occur, and label and photo always agree."""
    root = tmp_path / 'data'
    write_sample(root, 'asym', size=(64, 32))
    label, _, photo = crafted_arrays(64, 32)
    dataset = AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none'))
    outcomes = set()
    for seed in range(12):
        random.seed(seed)
        sample = dataset[0]
        label_flipped = np.array_equal(sample['label'][0].numpy(), label[:, ::-1])
        photo_flipped = torch.allclose(sample['image'], to_unit(np.ascontiguousarray(photo[:, ::-1])), atol=1e-6)
        assert label_flipped == photo_flipped
        if not label_flipped:
            assert np.array_equal(sample['label'][0].numpy(), label)
        outcomes.add(label_flipped)
    assert outcomes == {True, False}


# ----------------------------------------------------------------------------- 16-bit ids
def test_16bit_instance_ids_read_back_exactly(tmp_path):
    root = tmp_path / 'data'
    label = np.full((32, 64), 26, np.uint8)
    label[:, :16] = 7
    label[:, 32:48] = 33
    inst = np.full((32, 64), 26000, np.uint16)
    inst[:, :16] = 7
    inst[:, 16:32] = 26005
    inst[:, 32:48] = 33001
    inst[:, 48:] = 65535
    label[:, 48:] = 26  # id 65535 is class 65 by the encoding; its label value can be anything
    paths = write_sample(root, 'ids', label=label, inst=inst, size=(64, 32))
    assert Image.open(paths['inst']).mode == 'I;16'  # really a 16-bit PNG on disk

    sample = AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none', '--no_flip'))[0]
    read = sample['inst'][0]
    assert np.array_equal(read.numpy(), inst.astype(np.int32))
    assert sorted(torch.unique(read).tolist()) == [7, 26005, 33001, 65535]
    classes = instance_class(read)
    assert torch.all(classes[:, 32:48] == 33)
    assert torch.all(classes[:, :16] == 7)
    assert torch.all(classes[:, 16:32] == 26)
    assert torch.all(classes[:, 48:] == 65)


# ----------------------------------------------------------------------------- --label_nc 0
def test_label_nc_0_reads_rgb_inputs_from_A_and_B(tmp_path):
    root = tmp_path / 'data'
    rng = np.random.default_rng(1)
    a_img = rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    a_img[0, 0] = 0
    a_img[0, 1] = 255
    b_img = rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    for folder, array in (('train_A', a_img), ('train_B', b_img)):
        os.makedirs(root / folder)
        Image.fromarray(array).save(root / folder / 'pair.png')
    opt = make_opt(tmp_path, root, '--label_nc', 0, '--no_instance', '--resize_or_crop', 'none', '--no_flip')
    dataset = AlignedDataset(opt)
    sample = dataset[0]
    assert sample['path'].endswith(os.path.join('train_A', 'pair.png'))
    label = sample['label']
    assert label.dtype == torch.float32
    assert tuple(label.shape) == (3, 32, 64)
    assert float(label.min()) == -1.0 and float(label.max()) == 1.0
    assert torch.allclose(label, to_unit(a_img), atol=1e-6)
    assert torch.allclose(sample['image'], to_unit(b_img), atol=1e-6)
    assert sample['inst'].numel() == 0


def test_label_nc_0_without_A_folder_names_it(tmp_path, crafted_root):
    # The Cityscapes-style folders are there, but --label_nc 0 needs train_A.
    with pytest.raises(DatasetError) as info:
        AlignedDataset(make_opt(tmp_path, crafted_root, '--label_nc', 0, '--no_instance'))
    assert os.path.join(str(crafted_root), 'train_A') in str(info.value)


def test_rgb_dataset_without_label_nc_0_says_so(tmp_path):
    # train_A/ and train_B/ but no train_label/: train.py as the user runs it, with the default --label_nc 35.
    root = tmp_path / 'rgb'
    image = np.zeros((32, 64, 3), np.uint8)
    for folder in ('train_A', 'train_B'):
        os.makedirs(root / folder)
        Image.fromarray(image).save(root / folder / 'pair.png')
    result = run_train(tmp_path / 'checkpoints', root, 'rgb')
    assert_one_line_error(result, str(root / 'train_label'), str(root / 'train_A'), 'looks like RGB input', '--label_nc 0 --no_instance')


# ----------------------------------------------------------------------------- data loader
@pytest.fixture
def five_sample_root(tmp_path):
    root = tmp_path / 'five'
    for name in ('d_sample', 'b_sample', 'e_sample', 'a_sample', 'c_sample'):  # written out of order
        write_sample(root, name, size=(32, 16))
    return root


def _loader_paths(loader):
    return [os.path.basename(path) for batch in loader for path in batch['path']]


def test_serial_batches_and_max_dataset_size(tmp_path, five_sample_root):
    opt = make_opt(tmp_path, five_sample_root, '--resize_or_crop', 'none', '--serial_batches', '--max_dataset_size', 3)
    loader = build_data(opt)[1]
    assert len(loader) == 3
    assert len(loader.sampler) == 3  # --max_dataset_size is applied by the sampler
    assert _loader_paths(loader) == ['a_sample.png', 'b_sample.png', 'c_sample.png']
    assert _loader_paths(loader) == ['a_sample.png', 'b_sample.png', 'c_sample.png']  # same order every epoch


def test_serial_batches_without_limit_is_sorted_order(tmp_path, five_sample_root):
    opt = make_opt(tmp_path, five_sample_root, '--resize_or_crop', 'none', '--serial_batches')
    loader = build_data(opt)[1]
    assert _loader_paths(loader) == [f'{c}_sample.png' for c in 'abcde']


def test_shuffled_batches_draw_max_dataset_size_files_from_all_files(tmp_path, five_sample_root):
    # As the reference: a shuffled epoch of --max_dataset_size samples is drawn from every file, afresh each epoch.
    opt = make_opt(tmp_path, five_sample_root, '--resize_or_crop', 'none', '--max_dataset_size', 3)
    loader = build_data(opt)[1]
    assert len(loader) == 3
    orders = set()
    for seed in range(8):
        torch.manual_seed(seed)
        paths = _loader_paths(loader)
        assert len(paths) == len(set(paths)) == 3
        orders.add(tuple(paths))
    assert len(orders) > 1  # not serial: the order changes
    assert {path for order in orders for path in order} == {f'{c}_sample.png' for c in 'abcde'}


def test_seeded_epochs_draw_their_max_dataset_size_files_reproducibly(tmp_path, five_sample_root):
    opt = make_opt(tmp_path, five_sample_root, '--resize_or_crop', 'none', '--max_dataset_size', 2, '--seed', 0)
    loader = build_data(opt)[1]
    epochs = {}
    for epoch in range(1, 9):
        loader.sampler.set_epoch(epoch)
        epochs[epoch] = _loader_paths(loader)
        assert len(epochs[epoch]) == len(set(epochs[epoch])) == 2
    loader.sampler.set_epoch(3)
    assert _loader_paths(loader) == epochs[3]  # the same epoch draws the same files (exact resume)
    assert len({path for paths in epochs.values() for path in paths}) > 2


def test_batches_drop_the_last_partial_batch(tmp_path, five_sample_root):
    opt = make_opt(tmp_path, five_sample_root, '--resize_or_crop', 'none', '--serial_batches', '--batchSize', 2)
    loader = build_data(opt)[1]
    batches = list(loader)
    assert len(loader) == 2 and len(batches) == 2
    assert tuple(batches[0]['label'].shape) == (2, 1, 16, 32)
    assert tuple(batches[0]['image'].shape) == (2, 3, 16, 32)
    assert _loader_paths(batches) == [f'{c}_sample.png' for c in 'abcd']


# ----------------------------------------------------------------------------- errors
def test_label_value_not_below_label_nc(tmp_path):
    root = tmp_path / 'data'
    label, _, _ = crafted_arrays(64, 32)
    label[5, 7] = 40
    write_sample(root, 'bad_label', label=label, size=(64, 32))
    dataset = AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none'))
    with pytest.raises(DatasetError) as info:
        dataset[0]
    message = str(info.value)
    assert 'bad_label.png' in message
    assert '40' in message
    assert '--label_nc 41' in message
    assert '\n' not in message


def test_label_nc_large_enough_accepts_the_same_file(tmp_path):
    root = tmp_path / 'data'
    label, _, _ = crafted_arrays(64, 32)
    label[5, 7] = 40
    write_sample(root, 'bad_label', label=label, size=(64, 32))
    sample = AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none', '--label_nc', 41, '--no_flip'))[0]
    assert int(sample['label'].max()) == 40


def test_colour_label_map_is_refused(tmp_path):
    root = tmp_path / 'data'
    _, _, colour = crafted_arrays(64, 32)
    write_sample(root, 'colour_label', label=colour, size=(64, 32))
    with pytest.raises(DatasetError) as info:  # caught by the header pass, before any training
        AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none'))
    message = str(info.value)
    assert 'colour_label.png' in message
    assert 'labelIds' in message


@pytest.mark.parametrize('kind', ['label', 'img'])
def test_truncated_png_cannot_be_read(tmp_path, kind):
    root = tmp_path / 'data'
    paths = write_sample(root, 'truncated', size=(64, 32))
    with open(paths[kind], 'rb') as handle:
        data = handle.read()
    with open(paths[kind], 'wb') as handle:
        handle.write(data[: len(data) // 2])
    dataset = AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none'))
    with pytest.raises(DatasetError) as info:
        dataset[0]
    message = str(info.value)
    assert 'cannot read image' in message
    assert paths[kind] in message


def test_folders_with_different_counts(tmp_path):
    root = tmp_path / 'data'
    for name in ('a', 'b', 'c'):
        write_sample(root, name, size=(32, 16))
    os.remove(root / 'train_inst' / 'b.png')
    with pytest.raises(DatasetError) as info:
        AlignedDataset(make_opt(tmp_path, root))
    message = str(info.value)
    assert f"{root / 'train_inst'} (2 files) does not pair by name with {root / 'train_label'} (3 files)" in message
    assert f"1 file(s) have no partner in {root / 'train_inst'} (e.g. b.png)" in message


def test_names_that_do_not_pair_are_listed_even_with_equal_counts(tmp_path):
    root = tmp_path / 'data'
    for name in ('aachen_000000_000019', 'aachen_000001_000019'):
        write_sample(root, name, size=(32, 16))
    os.rename(root / 'train_img' / 'aachen_000001_000019.png', root / 'train_img' / 'bremen_000001_000019.png')
    with pytest.raises(DatasetError) as info:
        AlignedDataset(make_opt(tmp_path, root))
    message = str(info.value)
    assert 'have no partner' in message and 'aachen_000001_000019.png' in message
    assert 'have no label map' in message and 'bremen_000001_000019.png' in message


def test_cityscapes_names_pair_by_city_seq_frame_prefix(cityscapes_root, tmp_path):
    dataset = AlignedDataset(make_opt(tmp_path, cityscapes_root))
    assert len(dataset.A_paths) == len(dataset.B_paths) == len(dataset.inst_paths) == 8


@pytest.mark.parametrize('missing', ['train_label', 'train_inst', 'train_img'])
def test_missing_folder_is_named(tmp_path, missing):
    root = tmp_path / 'data'
    keyword = {'train_label': 'label', 'train_inst': 'inst', 'train_img': 'photo'}[missing]
    write_sample(root, 'only', size=(32, 16), **{keyword: False})
    assert not (root / missing).exists()
    with pytest.raises(DatasetError) as info:
        AlignedDataset(make_opt(tmp_path, root))
    message = str(info.value)
    assert str(root / missing) in message
    assert f'--dataroot {root}' in message


def test_missing_instance_folder_is_fine_with_no_instance(tmp_path):
    root = tmp_path / 'data'
    write_sample(root, 'only', size=(32, 16), inst=False)
    sample = AlignedDataset(make_opt(tmp_path, root, '--no_instance', '--resize_or_crop', 'none'))[0]
    assert sample['inst'].numel() == 0
    assert tuple(sample['label'].shape) == (1, 16, 32)


def test_missing_dataroot_is_named(tmp_path):
    root = tmp_path / 'does_not_exist'
    with pytest.raises(DatasetError) as info:
        AlignedDataset(make_opt(tmp_path, root))
    message = str(info.value)
    assert str(root / 'train_label') in message
    assert f'--dataroot {root}' in message


def test_size_not_divisible_under_scale_width(tmp_path, crafted_root):
    # 200x100 scaled to width 100 -> 100x50, not a multiple of 16.
    dataset = AlignedDataset(make_opt(tmp_path, crafted_root, '--resize_or_crop', 'scale_width', '--loadSize', 100))
    with pytest.raises(DatasetError) as info:
        dataset[0]
    message = str(info.value)
    assert '100x50' in message
    assert '--resize_or_crop none' in message
    assert 'sample0.png' in message
    assert '16' in message


def test_photo_size_must_match_label_size(tmp_path):
    root = tmp_path / 'data'
    _, _, big_photo = crafted_arrays(96, 48)
    write_sample(root, 'misaligned', photo=big_photo, size=(64, 32))
    with pytest.raises(DatasetError) as info:  # found from the headers, before training starts
        AlignedDataset(make_opt(tmp_path, root, '--resize_or_crop', 'none'))
    message = str(info.value)
    assert '96x48' in message and '64x32' in message
    assert 'misaligned.png' in message


# ----------------------------------------------------------------------------- lossy maps (JPEG, WebP)
def write_pair(root, name: str, label: np.ndarray, label_format: str = 'PNG', inst_format: str = 'PNG', phase: str = 'train') -> None:
    """One label map, instance map and photo of the same size, the maps in the given formats."""
    height, width = label.shape
    extension = {'PNG': 'png', 'JPEG': 'jpg', 'WEBP': 'webp', 'TIFF': 'tiff'}
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


@pytest.mark.parametrize('which', ['label', 'inst'])
def test_train_refuses_a_jpeg_map_naming_the_file_and_the_fix(tmp_path, which):
    root = str(tmp_path / 'data')
    write_pair(root, 'a', stripes(), **{f'{which}_format': 'JPEG'})
    result = run_train(tmp_path / 'checkpoints', root, 'run', *ONE_EPOCH)
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


# ----------------------------------------------------------------------------- --label_nc over the whole dataset
def test_a_label_nc_too_small_is_refused_before_anything_is_written(tmp_path):
    root = str(tmp_path / 'data')
    for index in range(3):
        write_pair(root, f'frame{index}', stripes(top=33 if index == 2 else 10))
    result = run_train(tmp_path / 'checkpoints', root, 'run', *ONE_EPOCH, '--label_nc', 20, '--serial_batches')
    # The first batch (frame0) is fine: only a check of every map finds frame2, before the folder is written.
    assert_one_line_error(result, 'frame2.png', 'label value 33 >= --label_nc 20', '--label_nc 34')
    assert not os.path.exists(tmp_path / 'checkpoints' / 'run')


def test_negative_label_ids_are_refused_by_check_dataset_and_before_train_py_writes(tmp_path):
    """A 32-bit TIFF label map may hold -1: no class id, and a crash at the one-hot encoding; refused in one line."""
    root = str(tmp_path / 'data')
    write_pair(root, 'frame0', stripes(top=10))
    write_pair(root, 'frame1', stripes(top=10).astype(np.int32) - 1, label_format='TIFF')  # ids -1..9
    assert Image.open(os.path.join(root, 'train_label', 'frame1.tiff')).mode == 'I'
    checked = run_tool('scripts/check_dataset.py', '--dataroot', root, '--label_nc', '20')
    assert_one_line_error(checked, 'frame1.tiff: label', 'map value -1: ids are whole numbers from 0')
    result = run_train(tmp_path / 'checkpoints', root, 'run', *ONE_EPOCH, '--label_nc', 20, '--serial_batches')
    assert_one_line_error(result, 'frame1.tiff: label map value -1: ids are whole numbers from 0')
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


# ----------------------------------------------------------------------------- colour and alpha maps
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


# ----------------------------------------------------------------------------- degenerate sizes
def test_images_that_shrink_to_nothing_are_one_line(tmp_path):
    root = write_dataset(tmp_path / 'data', [np.zeros((1, 1))])
    opt = TrainOptions('', METHODS).parse(['--dataroot', root, *TINY, '--resize_or_crop', 'none'], save=False)
    with pytest.raises(DatasetError) as refused:
        build_dataset(opt)[0]  # what the loader of train.py and test.py asks for
    message = one_line(refused.value)
    assert 'tiny_000000_000019_gtFine_labelIds.png: a 1x1 image would shrink to 0x0 pixels under --resize_or_crop none' in message


# ----------------------------------------------------------------------------- scripts/check_dataset.py
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
