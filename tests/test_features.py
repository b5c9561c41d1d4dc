"""Instance features: encode_features.py and its cluster files (an interrupted run keeps the previous pair, a damaged
file is one line), the seeded FeatureSampler and --feat_choice, G's response to a chosen cluster, --relabel, test.py
with several styles, pickled reference cluster files, and the full feature recipe at small size
(train -> encode_features -> precompute_feature_maps -> local enhancer on precomputed features -> test)."""

import html.parser
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from data.aligned_dataset import AlignedDataset
from data.synthetic import make_synthetic_dataset
from helpers import ONE_EPOCH, READ, assert_ok, assert_one_line_error, dead_pid, make_experiment, one_line, run_tool, run_train, tree_bytes
from models import METHODS
from models.common.labels import check_relabel, parse_int_pairs, relabel_maps
from models.pix2pixhd.model import Pix2PixHDModel
from models.pix2pixhd.networks import define_E, define_G
from models.pix2pixhd.styles import FeatureSampler, load_clusters, save_class_arrays
from options.base_options import OptionsError
from options.train_options import TrainOptions
from util.checkpoint import save_networks
from util.errors import ModelError
from util.records import experiment_dir

# One thread per process: several OpenMP threads per process on CI's two busy cores make the
# tiny convolutions here many times slower.

LOAD_SIZE = 128  # Cityscapes 2048x1024 -> 128x64; the synthetic photos are 128x64 already
AREA_UNIT = LOAD_SIZE * (LOAD_SIZE // 2) // 32  # the reference's area unit: h * w // 32 pixels

# The stage-1 ("512p") experiment: a tiny global G with ngf 8, so that a stage-2 local enhancer with
# --ngf 4 has a global part of ngf 8 and loads its model.* tensors.
STAGE1_ARCH = ['--ngf', '8', '--n_blocks_global', '1', '--nef', '4']


class _ImgSources(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == 'img':
            self.sources.append(dict(attrs)['src'])


def html_images(path):
    parser = _ImgSources()
    with open(path, encoding='utf-8') as handle:
        parser.feed(handle.read())
    return parser.sources


def read_map(path, size=None):
    """A label/instance PNG as an int32 array (16-bit ids kept), optionally nearest-resized to `size`."""
    array = np.asarray(Image.open(path)).astype(np.uint16).astype(np.int32)
    if size is not None and (array.shape[1], array.shape[0]) != size:
        array = np.asarray(Image.fromarray(array).resize(size, Image.NEAREST))
    return array


def class_of(ids):
    return np.where(ids < 1000, ids, ids // 1000)


# ----------------------------------------------------------------------------- shared set-ups
@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory, cityscapes_root):
    """A randomly initialised training model with --instance_feat, for encode_input (no files written)."""
    checkpoints = tmp_path_factory.mktemp('tiny_model')
    opt = TrainOptions('', METHODS).parse(
        [
            '--dataroot',
            cityscapes_root,
            '--checkpoints_dir',
            str(checkpoints),
            '--name',
            'tiny',
            '--instance_feat',
            '--nef',
            '4',
            '--ngf',
            '4',
            '--n_blocks_global',
            '1',
            '--ndf',
            '4',
            '--no_vgg_loss',
            '--loadSize',
            str(LOAD_SIZE),
            '--gpu_ids',
            '-1',
            '--no_flip',
            '--nThreads',
            '0',
        ],
        save=False,
    )
    return Pix2PixHDModel(opt), opt


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """A 128x64 synthetic dataset (4 train, 2 test), train.py for 1 epoch with --instance_feat (the
    stage-1 experiment f512), then encode_features.py (default --n_clusters 10)."""
    base = tmp_path_factory.mktemp('synthetic')
    dataroot = base / 'data'
    make_synthetic_dataset(str(dataroot), n_train=4, n_test=2, width=128, height=64, seed=0)
    checkpoints = base / 'checkpoints'
    common = ['--checkpoints_dir', checkpoints, '--dataroot', dataroot, '--gpu_ids', '-1']
    trained = run_train(checkpoints, dataroot, 'f512', '--instance_feat', '--loadSize', LOAD_SIZE, *STAGE1_ARCH, *ONE_EPOCH)
    assert_ok(trained)
    encoded = run_tool('encode_features.py', '--name', 'f512', '--loadSize', LOAD_SIZE, *common)
    assert_ok(encoded)
    return {'base': base, 'dataroot': dataroot, 'checkpoints': checkpoints, 'dir': checkpoints / 'f512', 'common': common}


# ----------------------------------------------------------------------------- 1. encode_features.py
def test_encode_features_on_cityscapes(tmp_path, cityscapes_root):
    checkpoints = tmp_path / 'checkpoints'
    opt = TrainOptions('', METHODS).parse(
        [
            '--instance_feat',
            '--nef',
            '4',
            '--ngf',
            '4',
            '--n_blocks_global',
            '1',
            '--ndf',
            '4',
            '--no_vgg_loss',
            '--loadSize',
            str(LOAD_SIZE),
            '--gpu_ids',
            '-1',
            '--checkpoints_dir',
            str(checkpoints),
            '--name',
            'feat',
        ],
        save=True,
    )
    assert (checkpoints / 'feat' / 'opt.json').is_file()
    torch.manual_seed(0)
    save_networks(Pix2PixHDModel(opt).networks_by_name(), experiment_dir(opt), 'latest')
    result = run_tool(
        'encode_features.py',
        '--name',
        'feat',
        '--checkpoints_dir',
        checkpoints,
        '--dataroot',
        cityscapes_root,
        '--loadSize',
        LOAD_SIZE,
        '--n_clusters',
        3,
        '--gpu_ids',
        '-1',
    )
    assert_ok(result)

    # Expected per class: the areas of its instances, from the instance maps resized as the loader does.
    inst_dir = os.path.join(cityscapes_root, 'train_inst')
    expected_areas = {}
    for name in sorted(os.listdir(inst_dir)):
        inst = read_map(os.path.join(inst_dir, name), (LOAD_SIZE, LOAD_SIZE // 2))
        assert inst.shape == (LOAD_SIZE // 2, LOAD_SIZE)
        ids, counts = np.unique(inst, return_counts=True)
        for class_id, count in zip(class_of(ids), counts):
            expected_areas.setdefault(int(class_id), []).append(count / AREA_UNIT)
    kept_counts = {c: sum(a > 0.5 for a in areas) for c, areas in expected_areas.items()}
    expected_classes = {c for c, n in kept_counts.items() if n > 0}
    small_only = {c for c, n in kept_counts.items() if n == 0}
    assert {17, 24} <= small_only  # poles and persons are all small at 128x64: the threshold matters here

    directory = checkpoints / 'feat'
    with np.load(directory / 'features.npz', allow_pickle=False) as archive:
        features = {int(key): archive[key] for key in archive.files}
    assert set(features) == set(expected_areas)
    for class_id, rows in features.items():
        assert rows.ndim == 2 and rows.shape[1] == 4  # feat_num 3 + area
        np.testing.assert_allclose(np.sort(rows[:, 3]), np.sort(expected_areas[class_id]), rtol=0, atol=1e-6)
        assert np.all(np.abs(rows[:, :3]) <= 1.0)  # E ends in a tanh; means stay inside [-1, 1]

    with np.load(directory / 'features_clustered_003.npz', allow_pickle=False) as archive:
        centers = {key: archive[key] for key in archive.files}
    assert set(centers) == {str(c) for c in expected_classes}
    for class_id in small_only:
        assert str(class_id) not in centers
    for key, rows in centers.items():
        kept = features[int(key)]
        kept = kept[kept[:, 3] > 0.5, :3]
        assert rows.shape == (min(len(kept), 3), 3), key
        if len(kept) <= 3:  # one cluster per row: the centres are the kept rows themselves
            np.testing.assert_allclose(rows[np.lexsort(rows.T)], kept[np.lexsort(kept.T)], atol=1e-5)
        else:  # a centre is a mean of kept rows: inside their bounding box, never built from small instances
            assert np.all(rows >= kept.min(axis=0) - 1e-5) and np.all(rows <= kept.max(axis=0) + 1e-5)


def test_encode_features_takes_each_feature_under_its_instance(tmp_path):
    # Four instances of four classes in vertical stripes of different widths, each its own colour: a feature
    # taken anywhere but under its instance (a flipped or shifted photo) is another stripe's.
    ids, widths = (26001, 24001, 7, 11), (8, 12, 20, 24)
    colours = ((220, 30, 30), (30, 200, 60), (40, 60, 230), (240, 230, 40))
    inst = np.zeros((32, 64), np.uint16)
    photo = np.zeros((32, 64, 3), np.uint8)
    stripes = {}
    left = 0
    for instance_id, width, colour in zip(ids, widths, colours):
        stripes[int(class_of(instance_id))] = slice(left, left + width)
        inst[:, left : left + width] = instance_id
        photo[:, left : left + width] = colour
        left += width
    dataroot, checkpoints = tmp_path / 'data', tmp_path / 'checkpoints'
    for kind, array in (('label', class_of(inst).astype(np.uint8)), ('inst', inst), ('img', photo)):
        os.makedirs(dataroot / f'train_{kind}')
        Image.fromarray(array).save(dataroot / f'train_{kind}' / 'stripes.png')
    assert_ok(run_train(checkpoints, dataroot, 'stripes', '--instance_feat', '--nef', 4, *ONE_EPOCH))
    assert_ok(
        run_tool(
            'encode_features.py',
            '--name',
            'stripes',
            '--loadSize',
            64,
            '--n_clusters',
            1,
            '--gpu_ids',
            '-1',
            '--checkpoints_dir',
            checkpoints,
            '--dataroot',
            dataroot,
        )
    )
    with np.load(checkpoints / 'stripes' / 'features.npz', allow_pickle=False) as archive:
        features = {int(key): archive[key] for key in archive.files}

    # Expected: the trained E's feature map (before its instance pooling) averaged by hand over each stripe.
    encoder = define_E(3, 3, 4, 4)
    encoder.load_state_dict(torch.load(checkpoints / 'stripes' / 'latest_net_E.pth', weights_only=True), strict=True)
    with torch.no_grad():
        feature_map = encoder.model(torch.from_numpy(photo.transpose(2, 0, 1) / 255.0 * 2 - 1).float()[None])[0].numpy()
    expected = {class_id: feature_map[:, :, columns].mean(axis=(1, 2)) for class_id, columns in stripes.items()}
    values = list(expected.values())
    assert min(np.abs(a - b).max() for i, a in enumerate(values) for b in values[i + 1 :]) > 1e-3  # the stripes differ
    assert set(features) == set(expected)
    for class_id, rows in features.items():
        assert rows.shape == (1, 4), class_id
        np.testing.assert_allclose(rows[0, :3], expected[class_id], rtol=0, atol=1e-5, err_msg=str(class_id))
        columns = stripes[class_id]
        assert rows[0, 3] == pytest.approx(32 * (columns.stop - columns.start) / (64 * 32 // 32))


@pytest.fixture
def encoded(tmp_path, dataroot):
    """An experiment with E whose features were encoded once: (args, folder, its files)."""
    _, _, folder = make_experiment(tmp_path / 'checkpoints', dataroot, '--instance_feat')
    args = [*READ, '--dataroot', dataroot, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'exp', '--n_clusters', '2']
    result = run_tool('encode_features.py', *args)
    assert result.returncode == 0, result.stderr
    names = ('features.npz', 'features_clustered_002.npz')
    return args, folder, {name: open(os.path.join(folder, name), 'rb').read() for name in names}


def test_encode_features_interrupted_between_its_writes_keeps_the_old_pair(encoded, monkeypatch):
    args, folder, files = encoded
    # New weights, so the next encoding differs from the first.
    path = os.path.join(folder, 'latest_net_E.pth')
    state = torch.load(path, weights_only=True)
    torch.save({key: value + 0.3 if value.is_floating_point() else value for key, value in state.items()}, path)
    original, calls = np.savez, []

    def second_write_dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(np, 'savez', second_write_dies)
    with pytest.raises(KeyboardInterrupt):
        run_tool('encode_features.py', *args)
    assert {name: open(os.path.join(folder, name), 'rb').read() for name in files} == files
    monkeypatch.undo()
    assert run_tool('encode_features.py', *args).returncode == 0
    now = {name: open(os.path.join(folder, name), 'rb').read() for name in files}
    assert all(now[name] != files[name] for name in files)
    assert not [name for name in os.listdir(folder) if name.startswith('.')]


def test_temporary_files_of_dead_processes_are_swept(encoded):
    args, folder, _ = encoded
    dead = os.path.join(folder, f'features.npz.tmp-{dead_pid()}')
    live = os.path.join(folder, f'features.npz.tmp-{os.getpid()}')
    for path in (dead, live):
        with open(path, 'wb') as handle:
            handle.write(b'half')
    assert run_tool('encode_features.py', *args).returncode == 0
    assert not os.path.exists(dead) and os.path.exists(live)
    os.remove(live)


# ----------------------------------------------------------------------------- 2. FeatureSampler
CENTERS = {
    26: np.array([[0.1, 0.2, 0.3], [-0.4, -0.5, -0.6]], np.float32),
    33: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32),
    7: np.array([[0.7, 0.7, 0.7]], np.float32),
}


def crafted_instances():
    """A batch of 2 maps, 6x8, in vertical stripes of 2 columns (33001 is above int16's 32767)."""
    inst = torch.zeros(2, 1, 6, 8, dtype=torch.int32)
    for image, ids in enumerate(((26001, 33001, 7, 11), (26002, 26001, 7, 11))):
        for stripe, instance_id in enumerate(ids):
            inst[image, 0, :, 2 * stripe : 2 * stripe + 2] = instance_id
    return inst


def stripe_values(feature_map):
    """{(image, stripe): the feature vector of the stripe}, asserting it is constant inside the stripe."""
    values = {}
    for image in range(feature_map.shape[0]):
        for stripe in range(4):
            block = feature_map[image, :, :, 2 * stripe : 2 * stripe + 2].reshape(3, -1)
            assert torch.equal(block, block[:, :1].expand_as(block)), (image, stripe)
            values[image, stripe] = block[:, 0].numpy()
    return values


def row_index(value, class_id):
    matches = [i for i, row in enumerate(CENTERS[class_id]) if np.array_equal(row, value)]
    assert len(matches) == 1, (class_id, value)
    return matches[0]


def test_feature_sampler_draws_centres_per_instance():
    inst = crafted_instances()
    feature_map = FeatureSampler(CENTERS, 3, seed=0).sample(inst)
    assert feature_map.shape == (2, 3, 6, 8) and feature_map.dtype == torch.float32
    values = stripe_values(feature_map)
    classes = {(0, 0): 26, (0, 1): 33, (0, 2): 7, (1, 0): 26, (1, 1): 26, (1, 2): 7}
    for key, class_id in classes.items():
        row_index(values[key], class_id)
    # class 11 has no clusters: exactly zero (the reference left these pixels uninitialised)
    assert not feature_map[:, :, :, 6:].any()

    # seeded: the same seed draws the same centres
    assert torch.equal(FeatureSampler(CENTERS, 3, seed=0).sample(inst), feature_map)
    # over seeds, draws differ between instances of one class, between images, and across seeds
    draws = []
    for seed in range(20):
        values = stripe_values(FeatureSampler(CENTERS, 3, seed=seed).sample(inst))
        draws.append({key: row_index(values[key], class_id) for key, class_id in classes.items()})
    assert any(d[0, 0] != d[1, 0] for d in draws)  # 26001 vs 26002
    assert any(d[0, 0] != d[1, 1] for d in draws)  # 26001 in image 0 vs 26001 in image 1
    assert {d[0, 1] for d in draws} == {0, 1, 2}  # all three centres of class 33 get drawn
    # several styles from one sampler: successive calls draw anew
    sampler = FeatureSampler(CENTERS, 3, seed=0)
    styles = [sampler.sample(inst) for _ in range(6)]
    assert any(not torch.equal(styles[0], style) for style in styles[1:])


def test_feature_choice_per_class_and_instance():
    inst = crafted_instances()
    for seed in range(5):
        values = stripe_values(FeatureSampler(CENTERS, 3, choices={26: 1}, seed=seed).sample(inst))
        for key in ((0, 0), (1, 0), (1, 1)):
            np.testing.assert_array_equal(values[key], CENTERS[26][1])
        # instance choices win over class choices
        choices = parse_int_pairs('26:1,26002:0', '--feat_choice')
        assert choices == {26: 1, 26002: 0}
        values = stripe_values(FeatureSampler(CENTERS, 3, choices=choices, seed=seed).sample(inst))
        np.testing.assert_array_equal(values[1, 0], CENTERS[26][0])  # 26002
        np.testing.assert_array_equal(values[0, 0], CENTERS[26][1])  # 26001
        np.testing.assert_array_equal(values[1, 1], CENTERS[26][1])  # 26001
        values = stripe_values(FeatureSampler(CENTERS, 3, choices={33001: 2}, seed=seed).sample(inst))
        np.testing.assert_array_equal(values[0, 1], CENTERS[33][2])


def test_feature_choice_errors_list_what_exists():
    with pytest.raises(OptionsError) as error:
        FeatureSampler(CENTERS, 3, choices={26: 2})
    assert '0..1' in str(error.value) and '26' in str(error.value)
    with pytest.raises(OptionsError) as error:
        FeatureSampler(CENTERS, 3, choices={33001: 3})
    assert '0..2' in str(error.value) and '33001' in str(error.value)
    with pytest.raises(OptionsError) as error:
        FeatureSampler(CENTERS, 3, choices={26: -1})
    assert '0..1' in str(error.value)
    for missing in ({11: 0}, {24001: 0}):
        with pytest.raises(OptionsError) as error:
            FeatureSampler(CENTERS, 3, choices=missing)
        message = str(error.value)
        assert 'no clusters' in message
        for available in ('7 (1)', '26 (2)', '33 (3)'):
            assert available in message, message
    with pytest.raises(OptionsError):
        parse_int_pairs('26-1', '--feat_choice')


# ----------------------------------------------------------------------------- 3. a chosen cluster changes G locally
def test_cluster_choice_changes_the_instance_region(tiny_model):
    model, opt = tiny_model
    dataset = AlignedDataset(opt)
    samples = [dataset[i] for i in range(len(dataset))]
    sample = max(samples, key=lambda s: int((class_of(s['inst'].numpy()) == 26).sum()))
    input_label, inst_map, _, _ = model.encode_input(sample['label'][None], sample['inst'][None])
    assert input_label.shape == (1, 36, 64, 128)
    inside = torch.from_numpy(class_of(inst_map[0, 0].numpy()) == 26)
    assert 200 < int(inside.sum()) < 64 * 128 // 4  # a sizeable but minor region: the comparison means something

    centers = {26: np.array([[0.9] * 3, [-0.9] * 3], np.float32), 7: np.zeros((1, 3), np.float32)}
    maps = [FeatureSampler(centers, 3, choices={26: c}, seed=0).sample(inst_map) for c in (0, 1)]
    changed = (maps[0] != maps[1]).any(dim=1)[0]
    assert torch.equal(changed, inside)  # the feature maps differ exactly on the class-26 pixels

    # A fixed G. With instance norm, a *random* G spreads any input change over the whole image (the
    # normalisation statistics are global; measured ratio ~1.1); a trained G learns locality. A random
    # G with batch norm in eval mode (running statistics: a local operator) shows the effect directly.
    torch.manual_seed(0)
    netG = define_G(input_label.shape[1] + 3, 3, 8, 'global', 2, 1, 1, 3, 'batch', False).eval()
    with torch.no_grad():
        images = [netG(torch.cat((input_label, feature_map), dim=1)) for feature_map in maps]
    difference = (images[0] - images[1]).abs().mean(dim=1)[0]
    inside_mean = difference[inside].mean().item()
    outside_mean = difference[~inside].mean().item()
    assert inside_mean > 3 * outside_mean, (inside_mean, outside_mean)  # measured ~8.9x


# ----------------------------------------------------------------------------- 4. relabelling
def test_relabel_maps_and_the_generator_input(tiny_model):
    model, _ = tiny_model
    label = torch.full((1, 1, 8, 12), 7, dtype=torch.int32)
    inst = torch.full((1, 1, 8, 12), 7, dtype=torch.int32)
    label[..., :, 0:4] = 21
    inst[..., :, 0:4] = 21
    label[..., 0:4, 4:8] = 26
    inst[..., 0:4, 4:6] = 26003
    inst[..., 0:4, 6:8] = 26004
    label[..., 4:8, 8:12] = 11
    inst[..., 4:8, 8:12] = 11
    inst[..., 0:2, 8:10] = 33001  # a class the mapping does not name, above every mapped id
    original_label, original_inst = label.clone(), inst.clone()

    new_label, new_inst = relabel_maps(label, inst, {21: 11})
    assert torch.equal(label, original_label) and torch.equal(inst, original_inst)  # inputs untouched
    assert new_label.dtype == label.dtype and new_inst.dtype == inst.dtype
    assert torch.equal(new_label, torch.where(label == 21, torch.tensor(11, dtype=torch.int32), label))
    assert torch.equal(new_inst, torch.where(inst == 21, torch.tensor(11, dtype=torch.int32), inst))

    new_label, new_inst = relabel_maps(label, inst, {21: 11, 26: 24})
    assert not (new_label == 21).any() and not (new_label == 26).any()
    assert torch.equal(new_label == 24, label == 26)
    assert torch.equal(new_inst == 24003, inst == 26003) and torch.equal(new_inst == 24004, inst == 26004)
    assert torch.equal(new_inst == 33001, inst == 33001)
    assert torch.equal(new_inst == 7, inst == 7)

    input_label, _, _, _ = model.encode_input(new_label, new_inst)
    assert input_label.shape == (1, 36, 8, 12)
    assert torch.equal(input_label[0, 11].bool(), ((label == 21) | (label == 11))[0, 0])
    assert not input_label[0, 21].any() and not input_label[0, 26].any()
    assert torch.equal(input_label[0, 24].bool(), (label == 26)[0, 0])
    # relabelled objects stay separate instances: the edge between 24003 and 24004 is kept
    assert input_label[0, 35, 0, 5] == 1 and input_label[0, 35, 0, 6] == 1

    assert check_relabel({21: 11, 26: 24}, 35) == {21: 11, 26: 24}
    for bad in ({35: 11}, {21: 35}, {-1: 3}):
        with pytest.raises(OptionsError) as error:
            check_relabel(bad, 35)
        assert '--label_nc 35' in str(error.value)


# ----------------------------------------------------------------------------- 5. test.py with features
def run_test(synthetic, results, *extra, name='f512', load_size=LOAD_SIZE):
    return run_tool('test.py', '--name', name, '--loadSize', load_size, '--results_dir', results, *synthetic['common'], *extra)


def result_images(results, name='f512'):
    return os.path.join(results, name, 'test_latest', 'images')


def test_test_py_several_styles_seeded(synthetic, tmp_path):
    first = run_test(synthetic, tmp_path / 'r1', '--n_styles', 3, '--seed', 0)
    assert_ok(first)
    second = run_test(synthetic, tmp_path / 'r2', '--n_styles', 3, '--seed', 0)
    assert_ok(second)

    bases = sorted(os.path.splitext(n)[0] for n in os.listdir(synthetic['dataroot'] / 'test_label'))
    assert len(bases) == 2
    expected = {
        f'{b}_{kind}.png'
        for b in bases
        for kind in ('input_label', 'synthesized_image_style0', 'synthesized_image_style1', 'synthesized_image_style2', 'real_image')
    }
    images = result_images(tmp_path / 'r1')
    assert set(os.listdir(images)) == expected
    sources = html_images(os.path.join(tmp_path / 'r1', 'f512', 'test_latest', 'index.html'))
    assert sorted(sources) == sorted(f'images/{n}' for n in expected)
    for name in expected:
        data = (tmp_path / 'r1' / 'f512' / 'test_latest' / 'images' / name).read_bytes()
        assert data == (tmp_path / 'r2' / 'f512' / 'test_latest' / 'images' / name).read_bytes(), name
        assert Image.open(os.path.join(images, name)).size == (128, 64)
    for base in bases:
        styles = [np.asarray(Image.open(os.path.join(images, f'{base}_synthesized_image_style{i}.png'))) for i in range(3)]
        assert any(not np.array_equal(styles[0], style) for style in styles[1:])  # new cluster draws per style
    # another seed, other draws
    other = run_test(synthetic, tmp_path / 'r3', '--n_styles', 3, '--seed', 1)
    assert_ok(other)
    assert any(
        (tmp_path / 'r1' / 'f512' / 'test_latest' / 'images' / name).read_bytes()
        != (tmp_path / 'r3' / 'f512' / 'test_latest' / 'images' / name).read_bytes()
        for name in expected
        if 'style' in name
    )


def test_test_py_feature_choice(synthetic, tmp_path):
    with np.load(synthetic['dir'] / 'features_clustered_010.npz') as archive:
        counts = {int(key): len(archive[key]) for key in archive.files}
    assert counts.get(26, 0) >= 2  # the synthetic cars have several clusters
    # choosing a cluster for every clustered class leaves nothing random: all styles are identical
    choice_file = tmp_path / 'choice.json'
    choice_file.write_text(json.dumps({str(class_id): count - 1 for class_id, count in counts.items()}))
    result = run_test(synthetic, tmp_path / 'r', '--n_styles', 2, '--seed', 0, '--feat_choice', choice_file)
    assert_ok(result)
    images = result_images(tmp_path / 'r')
    for base in {n.rsplit('_synthesized', 1)[0] for n in os.listdir(images) if 'synthesized' in n}:
        style0 = np.asarray(Image.open(os.path.join(images, f'{base}_synthesized_image_style0.png')))
        style1 = np.asarray(Image.open(os.path.join(images, f'{base}_synthesized_image_style1.png')))
        assert np.array_equal(style0, style1)

    bad = run_test(synthetic, tmp_path / 'bad', '--feat_choice', '26:99')
    assert_one_line_error(bad, '--feat_choice 26:99', 'out of range', f'0..{counts[26] - 1}')
    unclustered = min(set(range(35)) - set(counts))  # a class id without clusters (absent, or all too small)
    bad = run_test(synthetic, tmp_path / 'bad', '--feat_choice', f'{unclustered}:0')
    assert_one_line_error(bad, f'class {unclustered} has no clusters', '26 (')


def test_test_py_relabel(synthetic, tmp_path):
    label_dir = synthetic['dataroot'] / 'test_label'
    labels = [np.asarray(Image.open(label_dir / n)) for n in sorted(os.listdir(label_dir))]
    assert any((label == 21).any() for label in labels)  # vegetation to relabel
    plain = run_test(synthetic, tmp_path / 'plain', '--how_many', 2)
    assert_ok(plain)
    relabelled = run_test(synthetic, tmp_path / 'relabel', '--how_many', 2, '--relabel', '21:11')
    assert_ok(relabelled)
    changed = 0
    for name in sorted(os.listdir(result_images(tmp_path / 'plain'))):
        if name.endswith('_input_label.png'):
            before = np.asarray(Image.open(os.path.join(result_images(tmp_path / 'plain'), name)))
            after = np.asarray(Image.open(os.path.join(result_images(tmp_path / 'relabel'), name)))
            changed += not np.array_equal(before, after)
    assert changed == sum((label == 21).any() for label in labels)
    bad = run_test(synthetic, tmp_path / 'bad', '--relabel', '21:40')
    assert_one_line_error(bad, '--relabel 21:40', '--label_nc 35')


# ----------------------------------------------------------------------------- 6. cluster files of the reference
def test_pickled_and_malformed_cluster_files(synthetic, tmp_path):
    pickled = tmp_path / 'reference_clusters.npy'
    np.save(pickled, {26: np.zeros((2, 3)), 7: np.ones((1, 3))})  # what the reference wrote: a pickled dict
    refused = run_test(synthetic, tmp_path / 'r', '--cluster_path', pickled, '--how_many', 1)
    message = assert_one_line_error(refused, '--allow_pickle', str(pickled))
    assert 'pickle' in message.replace('--allow_pickle', '')
    assert not os.path.exists(tmp_path / 'r')  # refused before anything ran
    accepted = run_test(synthetic, tmp_path / 'r', '--cluster_path', pickled, '--how_many', 1, '--allow_pickle')
    assert_ok(accepted)
    assert len([n for n in os.listdir(result_images(tmp_path / 'r')) if 'synthesized' in n]) == 1

    wide = tmp_path / 'wide.npz'
    np.savez(wide, **{'26': np.zeros((2, 4), np.float32)})
    assert_one_line_error(run_test(synthetic, tmp_path / 'w', '--cluster_path', wide), '--feat_num', '3')

    missing = tmp_path / 'missing.npz'
    assert_one_line_error(run_test(synthetic, tmp_path / 'm', '--cluster_path', missing), 'encode_features.py', str(missing))


def test_pickled_cluster_file_with_other_content_is_a_user_error(tmp_path):
    # With --allow_pickle, a .npy that is not the reference's {class: centres} dict must end in a
    # ModelError (one `error:` line from the scripts), not a ValueError/UnpicklingError traceback.
    not_a_dict = tmp_path / 'array.npy'
    np.save(not_a_dict, np.zeros((2, 3)))
    garbage = tmp_path / 'garbage.npy'
    garbage.write_bytes(b'not a numpy file')
    for path in (not_a_dict, garbage):
        with pytest.raises(ModelError) as error:
            load_clusters(str(path), 3, allow_pickle=True)
        assert str(path) in str(error.value)
    reference = tmp_path / 'reference.npy'
    np.save(reference, {26: np.zeros((2, 3)), 7: np.ones((1, 3))})
    centers = load_clusters(str(reference), 3, allow_pickle=True)
    assert set(centers) == {26, 7} and centers[26].shape == (2, 3) and centers[26].dtype == np.float32


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


# ----------------------------------------------------------------------------- 7. the full feature recipe
def test_feature_recipe_two_stages(synthetic, tmp_path, cityscapes_root):
    dataroot, checkpoints, stage1 = synthetic['dataroot'], synthetic['checkpoints'], synthetic['dir']
    assert (stage1 / 'features_clustered_010.npz').is_file()

    # precompute_feature_maps: E's pooled features, x2 nearest, RGB PNGs named as the label maps
    result = run_tool('precompute_feature_maps.py', '--name', 'f512', '--loadSize', LOAD_SIZE, *synthetic['common'])
    assert_ok(result)
    label_names = sorted(os.listdir(dataroot / 'train_label'))
    assert sorted(os.listdir(dataroot / 'train_feat')) == sorted([*label_names, 'feature_maps.json'])
    record = json.loads((dataroot / 'train_feat' / 'feature_maps.json').read_text())
    assert record['maps'] == label_names and record['experiment'] == str(stage1) and record['which_epoch'] == 'latest'
    for name, inst_name in zip(label_names, sorted(os.listdir(dataroot / 'train_inst'))):
        feat = Image.open(dataroot / 'train_feat' / name)
        assert feat.mode == 'RGB' and feat.size == (256, 128)
        feat = np.asarray(feat)
        inst = read_map(dataroot / 'train_inst' / inst_name)
        assert inst.shape == (64, 128)
        inst = inst.repeat(2, axis=0).repeat(2, axis=1)
        for instance_id in np.unique(inst):  # instance-wise pooled: one colour per instance
            colours = np.unique(feat[inst == instance_id], axis=0)
            assert len(colours) == 1, (name, instance_id, colours)
        assert len(np.unique(feat.reshape(-1, 3), axis=0)) > 1

    # stage 2: local enhancer on 256x128 with precomputed features, global part from stage 1
    result = run_train(
        checkpoints,
        dataroot,
        'f1024',
        '--netG',
        'local',
        '--ngf',
        '4',
        '--num_D',
        '3',
        '--instance_feat',
        '--load_features',
        '--load_pretrain',
        stage1,
        '--niter_fix_global',
        1,
        '--niter',
        1,
        '--niter_decay',
        1,
        '--loadSize',
        256,
        '--n_blocks_global',
        1,
        '--n_blocks_local',
        1,
        '--save_epoch_freq',
        1,
    )
    assert_ok(result)
    report = [line for line in result.stdout.splitlines() if line.startswith('--load_pretrain:')]
    g_line = [line for line in report if 'network G' in line]
    assert len(g_line) == 1 and g_line[0].endswith('left initialised, in: model1_1, model1_2'), report
    d_line = [line for line in report if 'network D' in line]
    assert len(d_line) == 1 and 'scale0' not in d_line[0] and 'scale1' not in d_line[0] and 'scale2_layer0' in d_line[0], report
    assert not any('network E' in line for line in report)  # --load_features: no encoder in stage 2
    stage2 = checkpoints / 'f1024'
    assert not (stage2 / 'latest_net_E.pth').exists()
    # during the --niter_fix_global epoch the global part kept the stage-1 weights exactly
    global_g = torch.load(stage1 / 'latest_net_G.pth', weights_only=True)
    after_fixed = torch.load(stage2 / '1_net_G.pth', weights_only=True)
    shared = [key for key in after_fixed if key.startswith('model.') and key in global_g]
    assert len(shared) >= 10
    for key in shared:
        assert torch.equal(after_fixed[key], global_g[key]), key
    assert after_fixed['model1_1.1.weight'].shape[0] == 4  # --ngf 4 enhancer

    # the final test: clusters from stage 1, images at 256x128
    result = run_test(synthetic, tmp_path / 'r', '--cluster_path', stage1 / 'features_clustered_010.npz', name='f1024', load_size=256)
    assert_ok(result)
    images = result_images(tmp_path / 'r', 'f1024')
    names = sorted(os.listdir(images))
    assert len(names) == 6 and sum('synthesized_image' in n for n in names) == 2 and sum('real_image' in n for n in names) == 2
    for name in names:
        assert Image.open(os.path.join(images, name)).size == (256, 128)


def test_load_features_without_precomputed_maps(tmp_path, cityscapes_root):
    result = run_train(
        tmp_path / 'checkpoints', cityscapes_root, 'nofeat', '--instance_feat', '--load_features', '--loadSize', LOAD_SIZE, *STAGE1_ARCH
    )
    assert_one_line_error(result, 'train_feat', 'precompute_feature_maps.py')


def test_feature_maps_are_one_set_of_one_model(synthetic, tmp_path):
    """precompute_feature_maps.py writes a set as one transaction: killed midway, it leaves the previous set whole (and
    its leftovers are swept by the next run); --load_features refuses maps without the set's record, or mixed with
    another run's, naming the folder and the fix."""
    dataroot = tmp_path / 'data'
    shutil.copytree(synthetic['dataroot'], dataroot)
    common = [
        '--name',
        'f512',
        '--loadSize',
        LOAD_SIZE,
        '--checkpoints_dir',
        synthetic['checkpoints'],
        '--dataroot',
        dataroot,
        '--gpu_ids',
        '-1',
    ]
    assert_ok(run_tool('precompute_feature_maps.py', *common))
    feat = dataroot / 'train_feat'
    before = tree_bytes(feat)
    # A run killed after some maps: its staging folder is all it left; the published set is untouched.
    partial = dataroot / f'train_feat.partial-{dead_pid()}'
    partial.mkdir()
    (partial / sorted(os.listdir(feat))[0]).write_bytes(b'half')
    train = ['--instance_feat', '--load_features', '--loadSize', LOAD_SIZE, *ONE_EPOCH, *STAGE1_ARCH]
    assert tree_bytes(feat) == before
    assert_ok(run_tool('precompute_feature_maps.py', *common))  # the next run sweeps the dead one's folder
    assert not partial.exists() and tree_bytes(feat) == before  # same model, same maps
    # Another program's maps (no record), and a set with another run's map added: refused before training.
    (feat / 'feature_maps.json').rename(tmp_path / 'record.json')
    assert_one_line_error(run_train(tmp_path / 'checkpoints', dataroot, 'a', *train), 'train_feat: no feature_maps.json', 'precompute')
    (tmp_path / 'record.json').rename(feat / 'feature_maps.json')
    record = json.loads((feat / 'feature_maps.json').read_text())
    record['maps'] = record['maps'][1:]
    (feat / 'feature_maps.json').write_text(json.dumps(record))
    assert_one_line_error(
        run_train(tmp_path / 'checkpoints', dataroot, 'b', *train), 'maps of two runs mixed', 'run precompute_feature_maps.py again'
    )
    assert not (tmp_path / 'checkpoints').exists()


def test_load_features_of_another_size_is_a_user_error(tmp_path):
    # Feature maps that do not match the label map after preprocessing (here precomputed for another
    # --loadSize: 128x64 maps for 64x32 labels with --resize_or_crop none) must be refused like a photo
    # of the wrong size, naming the file, not crash in torch.cat inside the training step.
    dataroot = tmp_path / 'data'
    make_synthetic_dataset(str(dataroot), n_train=1, n_test=0, width=64, height=32, seed=0)
    os.makedirs(dataroot / 'train_feat')
    name = os.listdir(dataroot / 'train_label')[0]
    Image.fromarray(np.full((64, 128, 3), 128, np.uint8)).save(dataroot / 'train_feat' / name)
    (dataroot / 'train_feat' / 'feature_maps.json').write_text(json.dumps({'maps': [name]}))  # as a complete set records it
    result = run_train(
        tmp_path / 'checkpoints',
        dataroot,
        'badfeat',
        '--instance_feat',
        '--load_features',
        '--resize_or_crop',
        'none',
        '--loadSize',
        64,
        *ONE_EPOCH,
        *STAGE1_ARCH,
    )
    assert_one_line_error(result, name)
