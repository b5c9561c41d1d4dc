"""Reproduce the 2018 reference's numbers on one Cityscapes sample."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from data.aligned_dataset import AlignedDataset
from helpers import assert_ok, run_tool
from models import METHODS
from models.pix2pixhd.model import Pix2PixHDModel
from options.train_options import TrainOptions

ATOL = 1e-4


def reference_flags(reference_fixture):
    with open(os.path.join(reference_fixture, 'meta.json')) as handle:
        meta = json.load(handle)
    # "--a b --c ... (all else default: ...)": keep the flags before the parenthesis
    flags = meta['flags'].split('(')[0].split()
    assert flags[:2] == ['--phase', 'train'] and '--instance_feat' in flags
    return meta, flags


@pytest.fixture(scope='module')
def meta(reference_fixture):
    return reference_flags(reference_fixture)[0]


@pytest.fixture(scope='module')
def reference_opt(reference_fixture, tmp_path_factory):
    _, flags = reference_flags(reference_fixture)
    return TrainOptions('', METHODS).parse(
        [*flags, '--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path_factory.mktemp('ckpt'))], save=False
    )


def load_reference_model(opt, reference_fixture) -> Pix2PixHDModel:
    """A model for `opt` holding the fixture's G, D and E (loaded strictly), on opt's device."""
    torch.manual_seed(123)
    model = Pix2PixHDModel(opt)
    for label, net in (('G', model.netG), ('D', model.netD), ('E', model.netE)):
        state_dict = torch.load(os.path.join(reference_fixture, f'net_{label}.pth'), map_location='cpu', weights_only=True)
        result = net.load_state_dict(state_dict, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
    return model.to(opt.device)


@pytest.fixture(scope='module')
def model(reference_opt, reference_fixture):
    return load_reference_model(reference_opt, reference_fixture)


@pytest.fixture(scope='module')
def sample(reference_fixture):
    data = np.load(os.path.join(reference_fixture, 'sample.npz'))
    return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def expected(reference_fixture):
    data = np.load(os.path.join(reference_fixture, 'expected.npz'))
    return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def inputs(sample):
    label = torch.from_numpy(sample['label'].astype(np.int64))[None, None]
    inst = torch.from_numpy(sample['inst'])[None, None]
    image = torch.from_numpy(sample['image'])[None]
    return label, inst, image


def assert_close(actual, expected_array, name):
    actual = actual.detach().cpu().numpy()
    assert actual.shape == expected_array.shape, name
    difference = float(np.abs(actual - expected_array).max())
    assert difference <= ATOL, f'{name}: max abs difference {difference}'


def test_options_from_meta(reference_opt):
    opt = reference_opt
    assert (opt.ngf, opt.ndf, opt.nef, opt.num_D, opt.loadSize) == (8, 8, 4, 2, 256)
    assert opt.instance_feat and opt.no_vgg_loss and opt.no_flip and opt.serial_batches
    assert opt.label_nc == 35 and opt.netG == 'global' and opt.n_layers_D == 3


def test_sample_holds_true_16_bit_ids(sample):
    assert sample['inst'].dtype == np.int32
    assert sample['inst'].max() > 32767  # ids such as 33001 survive
    assert sample['label'].dtype == np.uint8


def test_encode_input_matches_reference(model, inputs, expected):
    label, inst, image = inputs
    input_label, inst_map, real_image, feat_map = model.encode_input(label, inst, image)
    assert input_label.shape == (1, 36) + tuple(label.shape[-2:])
    assert torch.equal(input_label[0], torch.from_numpy(expected['input_label_edge']))
    assert torch.equal(inst_map, inst)
    assert torch.equal(real_image, image)
    assert feat_map is None


def test_encoder_matches_reference(model, inputs, expected):
    _, inst, image = inputs
    with torch.no_grad():
        pooled = model.netE(image, inst)
    assert_close(pooled[0], expected['encoder_pooled'], 'encoder_pooled')


def test_generator_matches_reference(model, expected):
    input_concat = torch.cat([torch.from_numpy(expected['input_label_edge']), torch.from_numpy(expected['encoder_pooled'])])[None]
    with torch.no_grad():
        fake = model.netG(input_concat)
    assert_close(fake[0], expected['fake_image'], 'fake_image')


def test_discriminator_matches_reference(model, inputs, expected):
    _, _, image = inputs
    d_input = torch.cat([torch.from_numpy(expected['input_label_edge'])[None], image], dim=1)
    with torch.no_grad():
        outputs = model.netD(d_input)
    keys = sorted(key for key in expected if key.startswith('D_real_level'))
    levels = {int(re.match(r'D_real_level(\d+)_out(\d+)', key).group(1)) for key in keys}
    assert len(outputs) == len(levels) == 2
    assert len(keys) == 2 * 5
    for key in keys:
        i, j = map(int, re.match(r'D_real_level(\d+)_out(\d+)', key).groups())
        assert_close(outputs[i][j][0], expected[key], key)


def test_forward_losses_match_reference(model, inputs, meta):
    label, inst, image = inputs
    torch.manual_seed(0)
    with torch.no_grad():
        losses, fake = model.forward(label, inst, image, torch.zeros(0), infer=True)
    assert set(losses) == {'G_GAN', 'G_GAN_Feat', 'D_real', 'D_fake'}
    for name, value in meta['losses'].items():
        assert losses[name].item() == pytest.approx(value, rel=1e-4), name
    assert fake.shape == (1, 3) + tuple(label.shape[-2:])


def test_aligned_dataset_reproduces_reference_sample(reference_fixture, cityscapes_root, sample, meta, tmp_path):
    _, flags = reference_flags(reference_fixture)
    opt = TrainOptions('', METHODS).parse(
        [*flags, '--dataroot', cityscapes_root, '--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path)], save=False
    )
    dataset = AlignedDataset(opt)
    item = dataset[0]
    source_id = meta['source_files'].split('_gtFine')[0]
    assert source_id == 'aachen_000000_000019'
    assert os.path.basename(item['path']).startswith(source_id)
    assert item['label'].shape == (1,) + sample['label'].shape
    assert np.array_equal(item['label'][0].numpy(), sample['label'].astype(np.int32))
    assert item['inst'].dtype == torch.int32
    assert np.array_equal(item['inst'][0].numpy(), sample['inst'])
    assert item['image'].shape == sample['image'].shape
    assert float(np.abs(item['image'].numpy() - sample['image']).max()) <= 1e-6


# ---------------------------------------------------------------- the pixels the scripts write
# The reference writes ((x + 1) / 2 * 255).astype(uint8): truncation. Its uint8 arrays are exact functions
# of its float arrays, and those differ by ~1e-5 from one machine to another (ours included), so a
# written pixel may differ from the expected one only where the float lies within BOUNDARY of a level
# boundary (an integer after scaling); everywhere else the pixels must be identical.
BOUNDARY = 1e-4


def assert_reference_pixels(png_path, expected_uint8, expected_float):
    """The PNG decodes to the reference's uint8 pixels, up to levels the float puts at a boundary."""
    with Image.open(png_path) as image:
        assert image.mode == 'RGB'
        written = np.asarray(image)
    assert written.shape == expected_uint8.shape
    levels = (expected_float.transpose(1, 2, 0).astype(np.float64) + 1) / 2 * 255
    at_boundary = np.abs(levels - np.round(levels)) < BOUNDARY * 255 / 2
    differ = written != expected_uint8
    assert not np.any(differ & ~at_boundary), f'{int((differ & ~at_boundary).sum())} pixels differ away from a level boundary'
    assert int(np.abs(written.astype(int) - expected_uint8).max()) <= 1


@pytest.fixture(scope='module')
def reference_run(reference_fixture, sample, tmp_path_factory):
    """The fixture's sample as a dataroot (train and test folders) and its G/E as a reference-format experiment."""
    base = tmp_path_factory.mktemp('reference_run')
    photo = np.round((sample['image'].transpose(1, 2, 0) * 0.5 + 0.5) * 255).astype(np.uint8)  # ToTensor's k/255, undone
    for phase in ('train', 'test'):
        for kind, array in (('label', sample['label']), ('inst', sample['inst'].astype(np.uint16)), ('img', photo)):
            os.makedirs(base / 'data' / f'{phase}_{kind}')
            Image.fromarray(array).save(base / 'data' / f'{phase}_{kind}' / 'sample.png')
    experiment = base / 'checkpoints' / 'reference'
    os.makedirs(experiment)
    for label in ('G', 'E'):
        shutil.copy(os.path.join(reference_fixture, f'net_{label}.pth'), experiment / f'latest_net_{label}.pth')
    # The fixture's architecture and preprocessing (meta.json); the photo is 256 wide, so scale_width keeps it.
    flags = [
        '--name',
        'reference',
        '--checkpoints_dir',
        base / 'checkpoints',
        '--dataroot',
        base / 'data',
        '--gpu_ids',
        '-1',
        '--loadSize',
        256,
        '--ngf',
        8,
        '--nef',
        4,
        '--instance_feat',
    ]
    return base, flags


def test_test_py_writes_the_reference_pixels(reference_run, expected):
    base, flags = reference_run
    # --use_encoded_image: G sees E's pooled features of the real photo, as in the fixture's forward.
    assert_ok(run_tool('test.py', *flags, '--use_encoded_image', '--results_dir', base / 'results'))
    png = base / 'results' / 'reference' / 'test_latest' / 'images' / 'sample_synthesized_image.png'
    assert_reference_pixels(png, expected['fake_image_uint8'], expected['fake_image'])


def test_precompute_feature_maps_writes_the_reference_pixels(reference_run, expected):
    base, flags = reference_run
    assert_ok(run_tool('precompute_feature_maps.py', *flags))
    upsampled = np.repeat(np.repeat(expected['encoder_pooled'], 2, axis=1), 2, axis=2)  # x2 nearest
    assert_reference_pixels(base / 'data' / 'train_feat' / 'sample.png', expected['feature_map_uint8'], upsampled)
