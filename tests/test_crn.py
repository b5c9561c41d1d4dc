"""CRN (models/crn): the official TensorFlow step reproduced, the architecture value, the label layout, the VGG19
readers, the converter from TF variables, the 1024p fine-tuning and the optimiser.

tests/fixtures/crn_step (see its meta.json) is demo_256p.py's graph run on a tiny network (modules 4x8, 8x16,
16x32; widths 32, 32, 16) with a VGG19 of deterministic weights rebuilt here from meta.json's recipe. The trainer
is built from the options parser with the CRN flags (as the model registry will add them), starts from the
fixture's TF variables through the converter and runs train_step once on the fixture's sample.
"""

import argparse
import io
import json
import os
import shlex

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from helpers import assert_one_line_error, reference_vgg19_state_dict, run_tool
from models import METHODS, crn
from models.crn.loss import crn_loss
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions
from util.cityscapes import LABEL_IDS, LABEL_TO_TRAIN_ID
from util.errors import ModelError, OptionsError

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'crn_step')
FIXTURE_FLAGS = ['--crn_sp', '16', '--crn_widths', '32,32,16']
# meta.json's "compare".
OUTPUT_RTOL, LOSS_RTOL, GRADIENT_RTOL, WEIGHT_ATOL = 1e-3, 1e-4, 1e-3, 1e-6


class CRNTrainOptions(TrainOptions):
    """train.py's options of --model crn, as the model registry assembles them."""

    def __init__(self) -> None:
        super().__init__('', METHODS)
        self.model = 'crn'

    def choose_model(self, args) -> str:
        """--model crn whatever the command line says."""
        return 'crn'


def crn_options(tmp_path, *flags: str) -> argparse.Namespace:
    """Parsed, frozen training options for CRN on the CPU."""
    return CRNTrainOptions().parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), *flags], save=False)


def load_vars(name: str) -> dict:
    """One of the fixture's {TF variable name: array} files."""
    with np.load(os.path.join(FIXTURE, f'{name}_vars.npz')) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope='module')
def sample() -> dict:
    """The fixture's sample.npz."""
    with np.load(os.path.join(FIXTURE, 'sample.npz')) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope='module')
def vgg_weights(tmp_path_factory) -> str:
    """meta.json's VGG19 (reference_step's recipe) as a torchvision state_dict file for --vgg_weights."""
    path = str(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    torch.save(reference_vgg19_state_dict(), path)
    return path


@pytest.fixture(scope='module')
def vgg(vgg_weights) -> crn.CRNVgg19:
    """The loss network of those weights, read through --vgg_weights."""
    return crn.load_vgg(argparse.Namespace(crn_vgg_mat='', vgg_weights=vgg_weights))


def label_ids_from_train_ids(train_ids: np.ndarray) -> np.ndarray:
    """The fixture's trainIds (19: void) as a Cityscapes labelIds map (void as 'unlabeled'), what the data loader reads."""
    table = np.zeros(20, dtype=np.int32)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[train_id] = label_id
    table[19] = LABEL_IDS['unlabeled']
    return table[train_ids]


@pytest.fixture(scope='module')
def batch(sample) -> dict:
    """The fixture's sample as the data loader batches it (labelIds, photo in [-1, 1], no instance map)."""
    photo = torch.from_numpy(sample['photo'][0].transpose(2, 0, 1).copy())
    return {
        'label': torch.from_numpy(label_ids_from_train_ids(sample['label_ids']))[None, None],
        'inst': torch.zeros(0),
        'image': (photo / 127.5 - 1.0)[None],
        'feat': torch.zeros(0),
    }


@pytest.fixture(scope='module')
def step(vgg_weights, batch, tmp_path_factory) -> dict:
    """The trainer from the fixture's TF variables: the model's forward before the step, train_step's losses and
    gradients, and the weights after it."""
    opt = crn_options(tmp_path_factory.mktemp('checkpoints'), *FIXTURE_FLAGS, '--vgg_weights', vgg_weights)
    trainer = crn.CRNTrainer(opt, crn.build_model(opt, **crn.read_files(opt)))  # as builders.py builds it
    trainer.model.netG.load_state_dict(crn.tf_variables_to_state_dict(load_vars('init')), strict=True)
    with torch.no_grad():
        losses, images = trainer.model(batch['label'], batch['image'])
    step_losses, _ = trainer.train_step(batch)
    params = dict(trainer.model.netG.named_parameters())
    return {
        'trainer': trainer,
        'losses': losses,
        'images': images,
        'step_losses': step_losses,
        'gradients': {key: param.grad.clone() for key, param in params.items()},
        'after': {key: value.clone() for key, value in trainer.model.netG.state_dict().items()},
    }


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    """Elementwise within rtol of the reference, and absolutely within rtol of its largest value (for exact zeros)."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 1e-3 * np.abs(expected).max(), err_msg=what)


# ---------------------------------------------------------------- the official step


def test_fixture_configuration(step):
    arch = step['trainer'].model.arch
    assert arch == crn.Architecture('cityscapes', 20, (32, 32, 16), 9, 3)
    assert isinstance(step['trainer'].optimizer_G, crn.TFAdam)
    assert step['trainer'].optimizer_G.defaults['lr'] == 1e-4 and step['trainer'].optimizer_G.defaults['betas'] == (0.9, 0.999)


def test_input_is_the_official_label_layout(step, batch, sample):
    """labelIds -> 19 trainId channels + void, exactly the official one-hot the fixture was fed."""
    encoded = step['trainer'].model.encode_input(batch['label'])
    np.testing.assert_array_equal(encoded[0].permute(1, 2, 0).numpy(), sample['label_one_hot'][0])
    # The same channels from ids 0..19 with --crn_label_layout onehot --label_nc 20.
    onehot = crn.CRNModel(crn.Architecture('onehot', 20, (4,), 1)).encode_input(torch.from_numpy(sample['label_ids'])[None, None])
    assert torch.equal(onehot, encoded)


def test_nine_outputs_match_reference(step, sample):
    images = step['images'][0]  # K x 3 x H x W in [-1, 1]
    assert images.shape == (9, 3, 16, 32)
    assert_close(((images + 1) / 2 * 255).permute(0, 2, 3, 1).numpy(), sample['output'], OUTPUT_RTOL, 'output')


@pytest.mark.parametrize('layer', [f'p{index}' for index in range(6)])
def test_layer_errors_per_image_and_class_match_reference(step, sample, layer):
    actual = step['losses'][layer][0].numpy()  # K x classes
    assert actual.shape == (9, 20)
    assert_close(actual, sample[layer], OUTPUT_RTOL, layer)


def test_loss_matches_reference(step, sample):
    assert step['step_losses']['G_loss'].item() == pytest.approx(float(sample['G_loss']), rel=LOSS_RTOL)
    assert step['losses']['G_loss'].item() == pytest.approx(float(sample['G_loss']), rel=LOSS_RTOL)


def test_gradients_match_reference_by_global_norm(step):
    expected = crn.tf_variables_to_state_dict(load_vars('grad1'))
    assert set(expected) == set(step['gradients'])
    difference = torch.cat([(step['gradients'][key] - value).flatten() for key, value in expected.items()]).norm()
    reference = torch.cat([value.flatten() for value in expected.values()]).norm()
    assert (difference / reference).item() <= GRADIENT_RTOL


def test_weights_after_one_adam_step_match_reference(step):
    expected = crn.tf_variables_to_state_dict(load_vars('after1'))
    init = crn.tf_variables_to_state_dict(load_vars('init'))
    gradients = crn.tf_variables_to_state_dict(load_vars('grad1'))
    # The step moved every weight with a gradient by about lr (the rest are the label channels of absent classes),
    # so a tolerance of 1e-6 tells the right step from none.
    moved = torch.cat([(expected[key] - init[key]).abs().flatten() for key in expected])
    has_gradient = torch.cat([gradients[key].ne(0).flatten() for key in expected])
    assert has_gradient.double().mean().item() > 0.9 and moved[has_gradient].min().item() > 10 * WEIGHT_ATOL
    for key, value in expected.items():
        assert (step['after'][key] - value).abs().max().item() <= WEIGHT_ATOL, key


def test_batch_of_two_is_two_samples(step, batch):
    """The official code runs one map at a time; a batch gives each sample its K images and averages their losses."""
    model = step['trainer'].model
    double = {key: torch.cat([value, value]) for key, value in batch.items() if key in ('label', 'image')}
    with torch.no_grad():
        single_losses, single_images = model(batch['label'], batch['image'])
        losses, images = model(double['label'], double['image'])
    torch.testing.assert_close(images, torch.cat([single_images, single_images]))
    assert losses['G_loss'].item() == pytest.approx(single_losses['G_loss'].item(), rel=1e-6)


def test_inference_is_the_first_image_clipped(step, batch):
    model = step['trainer'].model
    with torch.no_grad():
        _, images = model(batch['label'], batch['image'])
    synthesized = model.inference(batch['label'], batch['inst'])
    assert synthesized.shape == (1, 3, 16, 32)
    torch.testing.assert_close(synthesized, images[:, 0].clamp(-1, 1))
    assert images[:, 0].abs().max() > 1  # the clip is exercised
    with pytest.raises(ModelError, match='divisible by 4, got 30x16'):
        model.inference(batch['label'][..., :30])


# ---------------------------------------------------------------- architecture, flags and layout


def test_official_architectures_from_flags(tmp_path):
    arch = crn.Architecture.from_options(crn_options(tmp_path))
    assert arch == crn.Architecture('cityscapes', 20, (1024,) * 5 + (512, 512), 9, 3)
    arch_1024 = crn.Architecture.from_options(crn_options(tmp_path, '--crn_sp', '1024', '--crn_n_images', '1'))
    assert arch_1024.widths == (1024,) * 5 + (512, 512, 128, 32) and arch_1024.n_images == 1
    onehot = crn.Architecture.from_options(crn_options(tmp_path, '--crn_label_layout', 'onehot', '--label_nc', '7', '--crn_widths', '8'))
    assert (onehot.label_layout, onehot.input_nc, onehot.widths) == ('onehot', 7, (8,) * 7)
    rgb = crn.Architecture.from_options(crn_options(tmp_path, '--label_nc', '0', '--crn_sp', '8', '--crn_widths', '4,4'))
    assert (rgb.label_layout, rgb.input_nc) == ('rgb', 3)


def test_crn_defaults_and_help_group(tmp_path):
    opt = crn_options(tmp_path)
    assert (opt.lr, opt.beta1, opt.niter, opt.niter_decay, opt.no_instance, opt.no_flip, opt.loadSize) == (
        1e-4,
        0.9,
        200,
        0,
        True,
        True,
        512,
    )
    group = next(group for group in CRNTrainOptions().make_parser()._action_groups if group.title == 'crn model')
    flags = {action.dest for action in group._group_actions}
    assert flags == {'crn_sp', 'crn_widths', 'crn_n_images', 'crn_loss', 'crn_label_layout', 'crn_train_modules', 'crn_vgg_mat'}
    assert all(action.help and 'default' not in action.help.lower() for action in group._group_actions)


@pytest.mark.parametrize(
    'flags, message',
    [
        (['--crn_sp', '48'], '--crn_sp 48: must be a power of two'),
        (['--crn_widths', '8,8'], '--crn_widths \'8,8\': --crn_sp 256 has 7 refinement modules'),
        (['--crn_widths', 'wide'], 'not comma-separated integers'),
        (['--crn_n_images', '0'], '--crn_n_images 0'),
        (['--crn_sp', '2048'], 'no widths above 1024'),
    ],
)
def test_bad_architecture_flags_are_one_line_errors(tmp_path, flags, message):
    with pytest.raises(OptionsError, match=message):
        crn.Architecture.from_options(crn_options(tmp_path, *flags))


def test_the_cityscapes_layout_refuses_another_label_set(tmp_path):
    """Label ids of another set under the Cityscapes layout would all map to void: one line naming the fix (train.py
    and test.py parse the same way); the one-hot layout takes them."""
    with pytest.raises(OptionsError, match='--label_nc 8 would all become void.*pass --crn_label_layout onehot'):
        crn_options(tmp_path, '--label_nc', '8')
    opt = crn_options(tmp_path, '--label_nc', '8', '--crn_label_layout', 'onehot', '--crn_sp', '8', '--crn_widths', '4')
    assert crn.Architecture.from_options(opt).input_nc == 8
    assert crn_options(tmp_path, '--label_nc', '35').crn_label_layout == 'cityscapes'


def test_architecture_round_trips_through_json():
    arch = crn.Architecture('onehot', 7, (16, 8, 4), 3, 3)
    assert crn.Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    with pytest.raises(ModelError, match='saved by another model'):
        crn.Architecture.from_dict({**arch.to_dict(), 'ngf': 64})
    with pytest.raises(ModelError, match="label_layout 'labels'"):
        crn.Architecture.from_dict({**arch.to_dict(), 'label_layout': 'labels'})


def test_cityscapes_layout_is_19_train_ids_plus_void():
    model = crn.CRNModel(crn.Architecture('cityscapes', 20, (4,), 1))
    ids = [LABEL_IDS[name] for name in ('road', 'bicycle', 'unlabeled', 'parking', 'car')] + [300]
    encoded = model.encode_input(torch.tensor(ids, dtype=torch.int32).view(1, 1, 1, -1))
    assert encoded.shape == (1, 20, 1, len(ids))
    assert encoded.sum(dim=1).eq(1).all()
    # road and bicycle are trainIds 0 and 18, car 13; parking (trainId 255), unlabeled and ids beyond the table are void.
    assert encoded[0, :, 0].argmax(dim=0).tolist() == [0, 18, 19, 19, 13, 19]


def test_networks_are_initialised_as_slim(tmp_path):
    net = crn.build_networks(crn.Architecture('onehot', 5, (8, 6), 2, 3))['G']
    keys = set(net.state_dict())
    assert 'g_8.conv100.bias' in keys and 'g_4.conv100.weight' not in keys and 'g_4.conv1.bias' not in keys
    weight = net.g_8.conv1.weight  # 3x3, 8 + 5 in, 6 out: Glorot-uniform bound sqrt(6 / (9 * 13 + 9 * 6))
    bound = (6 / (9 * 13 + 9 * 6)) ** 0.5
    assert bound * 0.9 < weight.abs().max().item() <= bound
    assert net.g_8.conv100.bias.eq(0).all() and net.g_4.norm1.weight.eq(1).all() and net.g_4.norm1.bias.eq(0).all()
    assert net(torch.zeros(2, 5, 8, 16)).shape == (2, 2, 3, 8, 16)


# ---------------------------------------------------------------- VGG19 weights


def tiny_vgg_mat(path: str, rng: np.random.Generator, widths=(4, 6, 8, 8, 8), kernel_hw=(3, 3)) -> list:
    """A .mat in the layout of imagenet-vgg-verydeep-19.mat (layers cell of structs name/type/weights/..., filters HWIO), tiny widths."""
    block_widths = [widths[0]] * 2 + [widths[1]] * 2 + [widths[2]] * 4 + [widths[3]] * 4 + [widths[4]] * 2
    names = [name for name, _ in crn.vgg.VGG_CONVS]
    layers, kernels, channels = [], [], 3
    for index in range(37):  # up to pool5 (the real file goes on with the classifier)
        conv = next((names[position] for position, (_, at) in enumerate(crn.vgg.VGG_CONVS) if at == index), None)
        if conv is not None:
            out = block_widths[names.index(conv)]
            kernel = rng.standard_normal((*kernel_hw, channels, out)).astype(np.float32) * 0.3
            bias = rng.standard_normal((1, out)).astype(np.float32) * 0.1
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0], weights[0, 1] = kernel, bias
            layers.append(
                {'name': conv, 'type': 'conv', 'weights': weights, 'size': np.array(kernel.shape, float), 'pad': 1.0, 'stride': 1.0}
            )
            kernels.append((kernel, bias))
            channels = out
        else:
            layers.append({'name': f'layer{index}', 'type': 'relu'})
    cell = np.empty((1, len(layers)), dtype=object)
    for index, layer in enumerate(layers):
        cell[0, index] = layer
    scipy.io.savemat(path, {'layers': cell, 'classes': {'description': 'x'}})
    return kernels


def test_vgg_mat_reader_takes_filters_as_hwio(tmp_path):
    path = str(tmp_path / 'vgg.mat')
    kernels = tiny_vgg_mat(path, np.random.default_rng(0))
    vgg = crn.CRNVgg19(crn.read_vgg_mat(path))
    image = torch.rand(1, 3, 16, 32) * 255
    features = vgg(image)
    assert [tuple(feature.shape[1:]) for feature in features] == [(3, 16, 32), (4, 16, 32), (6, 8, 16), (8, 4, 8), (8, 2, 4), (8, 1, 2)]
    # conv1_1 at an inner pixel, straight from the HWIO filters as tf.nn.conv2d reads them.
    kernel, bias = kernels[0]
    centred = (image - torch.tensor(crn.vgg.IMAGENET_MEAN_255).view(1, 3, 1, 1))[0].permute(1, 2, 0).numpy()
    y, x = 5, 9
    expected = np.maximum(np.einsum('ijc,ijco->o', centred[y - 1 : y + 2, x - 1 : x + 2], kernel) + bias[0], 0)
    actual = F.relu(vgg.convs[0](features[0]))[0, :, y, x].numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-3)
    # Odd sizes pool as TF's 'SAME' does: the partial last window counts (5x9 -> 3x5, not floor's 2x4).
    odd = vgg(torch.rand(1, 3, 20, 36) * 255)
    assert [tuple(feature.shape[-2:]) for feature in odd[3:]] == [(5, 9), (3, 5), (2, 3)]


def test_vgg_mat_reader_refuses_other_files(tmp_path):
    with pytest.raises(ModelError, match='file not found'):
        crn.read_vgg_mat(str(tmp_path / 'missing.mat'))
    scipy.io.savemat(str(tmp_path / 'other.mat'), {'weights': np.zeros(3)})
    with pytest.raises(ModelError, match="not MatConvNet's imagenet-vgg-verydeep-19.mat"):
        crn.read_vgg_mat(str(tmp_path / 'other.mat'))
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = {'name': 'fc6', 'type': 'conv', 'weights': np.zeros((1, 2))}, {'name': 'x', 'type': 'relu'}
    scipy.io.savemat(str(tmp_path / 'short.mat'), {'layers': cell})
    with pytest.raises(ModelError, match='not the VGG19 .mat'):
        crn.read_vgg_mat(str(tmp_path / 'short.mat'))


@pytest.mark.parametrize('kernel_hw', [(3, 5), (2, 2), (1, 1)])
def test_vgg_mat_reader_refuses_kernels_that_are_not_3x3(tmp_path, kernel_hw):
    """Every VGG19 convolution is 3x3: a .mat with other kernels is another network (a 1x1 one would run silently)."""
    path = str(tmp_path / 'vgg.mat')
    tiny_vgg_mat(path, np.random.default_rng(0), kernel_hw=kernel_hw)
    with pytest.raises(ModelError, match=r'conv1_1 with 3 x 3 x 3 x out filters'):
        crn.read_vgg_mat(path)


def test_training_needs_local_vgg_weights(tmp_path):
    with pytest.raises(OptionsError, match='--crn_vgg_mat imagenet-vgg-verydeep-19.mat'):
        crn.read_files(crn_options(tmp_path, '--crn_sp', '8', '--crn_widths', '4'))


def test_torchvision_state_dict_gives_the_same_network(vgg_weights, vgg):
    """--vgg_weights reads torchvision's features.N into the CRN code's layers (same indices as the .mat)."""
    state_dict = torch.load(vgg_weights, map_location='cpu', weights_only=True)
    for conv, (_, index) in zip(vgg.convs, crn.vgg.VGG_CONVS):
        assert torch.equal(conv.weight, state_dict[f'features.{index}.weight'])
        assert not conv.weight.requires_grad


# ---------------------------------------------------------------- losses, fine-tuning, optimiser, converter


def test_single_image_loss_uses_the_512p_layer_weights():
    torch.manual_seed(0)
    vgg = crn.CRNVgg19([(torch.randn(out, cin, 3, 3) * 0.2, torch.zeros(out)) for cin, out in zip([3] + [4] * 13, [4] * 14)])
    fake, real = torch.rand(2, 1, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    losses = crn_loss(vgg, fake, real, torch.ones(2, 1, 16, 16), 'single')
    fake_features, real_features = vgg((fake[:, 0] + 1) * 127.5), vgg((real + 1) * 127.5)
    weights = (1, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)  # demo_512p.py and demo_1024p.py
    expected = [weight * (f - r).abs().mean().item() for weight, f, r in zip(weights, fake_features, real_features)]
    assert [losses[f'p{index}'].item() for index in range(6)] == pytest.approx(expected, rel=1e-5)
    assert losses['G_loss'].item() == pytest.approx(sum(expected), rel=1e-5)


def test_1024p_recipe_trains_the_last_two_modules(tmp_path, vgg_weights, vgg, batch):
    flags = ('--crn_sp', '16', '--crn_widths', '4,4,4', '--crn_n_images', '1', '--vgg_weights', vgg_weights)
    opt = crn_options(tmp_path, *flags, '--crn_loss', 'single')
    opt_last_two = crn_options(tmp_path, *flags, '--crn_train_modules', '2')
    assert opt.crn_train_modules == 0
    trainer = crn.CRNTrainer(opt_last_two, crn.CRNModel(crn.Architecture.from_options(opt), 'single', vgg))
    before = {key: value.clone() for key, value in trainer.model.netG.state_dict().items()}
    losses, _ = trainer.train_step(batch)
    assert set(losses) == {'G_loss', 'p0', 'p1', 'p2', 'p3', 'p4', 'p5'} and losses['p5'].dim() == 0
    after = trainer.model.netG.state_dict()
    changed = {key.split('.')[0] for key in before if not torch.equal(before[key], after[key])}
    assert changed == {'g_8', 'g_16'}
    assert all(param.grad is None for param in trainer.model.netG.g_4.parameters())
    with pytest.raises(OptionsError, match='--crn_train_modules 4: the generator has 3'):
        crn.CRNTrainer(crn_options(tmp_path, '--crn_sp', '16', '--crn_widths', '4', '--crn_train_modules', '4'), trainer.model)


def test_training_state_resumes_the_same_steps(tmp_path, vgg_weights, vgg, batch):
    opt = crn_options(tmp_path, '--crn_sp', '16', '--crn_widths', '4,4,4', '--crn_n_images', '2', '--vgg_weights', vgg_weights)
    torch.manual_seed(1)
    first = crn.CRNTrainer(opt, crn.CRNModel(crn.Architecture.from_options(opt), 'diversity', vgg))
    first.train_step(batch)
    resumed = crn.CRNTrainer(opt, crn.CRNModel(crn.Architecture.from_options(opt), 'diversity', vgg))
    resumed.model.netG.load_state_dict(first.model.netG.state_dict())
    saved = io.BytesIO()  # through a file, as a checkpoint holds it (no tensors shared with `first`)
    torch.save(first.training_state(), saved)
    saved.seek(0)
    resumed.restore_training_state(torch.load(saved, weights_only=True))
    for trainer in (first, resumed):
        trainer.train_step(batch)
    for key, value in first.model.netG.state_dict().items():
        assert torch.equal(value, resumed.model.netG.state_dict()[key]), key


def test_tf_adam_adds_epsilon_before_the_bias_correction():
    """TF's first step is lr * g / (|g| + eps / sqrt(1 - beta2)), not torch.optim.Adam's lr * g / (|g| + eps)."""
    gradient = torch.tensor([1e-7, -3e-7, 1.0])
    param = torch.zeros(3, requires_grad=True)
    optimizer = crn.TFAdam([param], lr=1e-4)
    param.grad = gradient.clone()
    optimizer.step()
    expected = -1e-4 * gradient / (gradient.abs() + 1e-8 / (1 - 0.999) ** 0.5)
    torch.testing.assert_close(param.detach(), expected, rtol=1e-5, atol=0)


def test_converter_skips_optimizer_slots_and_refuses_unknown_variables():
    variables = load_vars('init')
    with_slots = {**variables, 'g_4_conv1/weights/Adam': variables['g_4_conv1/weights'], 'beta1_power': np.float32(0.9)}
    assert set(crn.tf_variables_to_state_dict(with_slots)) == set(crn.tf_variables_to_state_dict(variables))
    state_dict = crn.tf_variables_to_state_dict(variables)
    assert crn.architecture_from_state_dict(state_dict) == crn.Architecture('cityscapes', 20, (32, 32, 16), 9, 3)
    assert torch.equal(state_dict['g_8.conv1.weight'][5, 40], torch.from_numpy(variables['g_8_conv1/weights'][:, :, 40, 5]))
    with pytest.raises(ModelError, match='not variables of the official CRN generator: vgg_conv1_1/weights'):
        crn.tf_variables_to_state_dict({**variables, 'vgg_conv1_1/weights': np.zeros(1)})


def _bad_npz(tmp_path, case: str) -> tuple[str, str]:
    """(--npz, --out) for one of the converter's bad inputs."""
    good = load_vars('init')
    npz, out = tmp_path / 'bad.npz', tmp_path / 'crn_bad' / 'latest_net_G.pth'
    if case == 'truncated':
        np.savez(npz, **good)
        npz.write_bytes(npz.read_bytes()[:200])
    elif case == 'empty file':
        npz.write_bytes(b'')
    elif case == 'no arrays':
        np.savez(npz)
    elif case == 'weights of rank 2':
        np.savez(npz, **{**good, 'g_4_conv1/weights': np.zeros((3, 20), np.float32)})
    elif case == 'a module without conv1':
        np.savez(npz, **{name: value for name, value in good.items() if not name.startswith('g_8_conv1/')})
    elif case == 'shapes that disagree':
        np.savez(npz, **{**good, 'g_8_conv2/weights': np.zeros((3, 3, 5, 7), np.float32)})
    elif case == '--out a folder':
        np.savez(npz, **good)
        out = tmp_path
    elif case == '--out under a file':
        np.savez(npz, **good)
        (tmp_path / 'a_file').write_text('x')
        out = tmp_path / 'a_file' / 'latest_net_G.pth'
    return str(npz), str(out)


@pytest.mark.parametrize(
    'case, fragment',
    [
        ('truncated', 'cannot read it as an .npz'),
        ('empty file', 'cannot read it as an .npz'),
        ('no arrays', 'expected g_4, g_8'),
        ('weights of rank 2', 'g_4_conv1/weights: an array of shape (3, 20)'),
        ('a module without conv1', 'no g_8_conv1/weights'),
        ('shapes that disagree', 'do not form one CRN generator'),
        ('--out a folder', 'is a folder: name the file to write'),
        ('--out under a file', 'a_file is a file, not a folder'),
    ],
)
def test_convert_script_refuses_bad_inputs_in_one_line(tmp_path, case, fragment):
    npz, out = _bad_npz(tmp_path, case)
    assert_one_line_error(run_tool('scripts/convert_crn_tf.py', '--npz', npz, '--out', out), fragment)
    assert not os.path.exists(os.path.join(tmp_path, 'crn_bad'))  # nothing written


def test_convert_script_writes_a_strictly_loadable_checkpoint(tmp_path):
    npz = str(tmp_path / 'crn.npz')
    np.savez(npz, **load_vars('init'))
    out = str(tmp_path / 'crn_tiny' / 'latest_net_G.pth')
    result = run_tool('scripts/convert_crn_tf.py', '--npz', npz, '--out', out)
    assert result.returncode == 0, result.stderr
    with open(str(tmp_path / 'crn_tiny' / 'architecture.json')) as handle:
        record = json.load(handle)
    arch = crn.Architecture.from_dict(record['architecture'])
    net = crn.build_networks(arch)['G']
    net.load_state_dict(torch.load(out, map_location='cpu', weights_only=True), strict=True)
    # the printed test.py command needs no architecture flag: test.py takes --model and them from architecture.json
    command = shlex.split(result.stdout.split('test it with:')[1].strip())
    assert command[command.index('--name') + 1] == 'crn_tiny' and command[command.index('--which_epoch') + 1] == 'latest'
    assert '--model' not in command and '--crn_widths' not in command
    parsed = _TestOptions(methods=METHODS).parse(command[command.index('--name') : command.index('--dataroot')], save=False)
    assert parsed.model == 'crn' and crn.Architecture.from_options(parsed) == arch
    bad = run_tool('scripts/convert_crn_tf.py', '--npz', str(tmp_path / 'none.npz'), '--out', out)
    assert bad.returncode == 1 and bad.stderr.startswith('error: --npz')
