"""pix2pix (models/pix2pix): the authors' fixture through the real step and inference, keys, depths, inputs, flags, test mode.

tests/fixtures/pix2pix_step (see its meta.json) was made by junyanz's pix2pix code: G and D at init, an eval-mode
forward, the four losses of one iteration in the authors' order and the weights after it.
"""

import argparse
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from models import METHODS
from models.pix2pix import Architecture, Pix2PixModel, Pix2PixTrainer, build_networks
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import ModelError, OptionsError

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'pix2pix_step')
# The fixture's networks (meta.json): 4-channel A in [-1, 1] (so --label_nc 0 --input_nc 4), U-Net with 5 levels.
FIXTURE_ARCH = Architecture(
    label_nc=0, input_nc=4, no_instance=True, output_nc=3, num_downs=5, ngf=8, ndf=8, n_layers_D=3, norm='batch', use_dropout=True
)
TINY_ARCH = dataclasses.replace(FIXTURE_ARCH, ngf=2, ndf=2)
LR = 0.0002
# Adam's first step moves a weight by lr * g / (|g| + 1e-8): by lr where |g| >> 1e-8 (those agree to meta.json's
# 1e-6), not at all where g is 0, and by a fraction of lr where |g| is float noise (~1e-8, 1e-7 of the largest
# gradient). That noise is the summation order's (CPU kernels, thread count): there any move in [-lr, lr] is
# right, so the bound checked is Adam's own, |move| <= lr, plus the weight's rounding (float32 at |w| < 1: < 1e-7).
# A wrong step moves most weights by about lr, and the weights with a real gradient catch it.
WEIGHT_ATOL = 1e-6
ADAM_FIRST_STEP_BOUND = LR + 1e-7


@pytest.fixture(scope='module')
def fixture() -> tuple:
    """(meta.json, sample arrays as tensors, {name: state_dict})."""
    with open(os.path.join(FIXTURE, 'meta.json')) as handle:
        meta = json.load(handle)
    with np.load(os.path.join(FIXTURE, 'sample.npz')) as sample:
        arrays = {key: torch.from_numpy(sample[key]) for key in sample.files}
    states = {
        f'{when}_{net}': torch.load(os.path.join(FIXTURE, f'{when}_net_{net}.pth'), map_location='cpu', weights_only=True)
        for when in ('init', 'after1')
        for net in ('G', 'D')
    }
    return meta, arrays, states


def fixture_model(states: dict, arch: Architecture = FIXTURE_ARCH, **kwargs) -> Pix2PixModel:
    """A training model with the fixture's initial weights, loaded strictly."""
    model = Pix2PixModel(arch, **kwargs)
    model.netG.load_state_dict(states['init_G'], strict=True)
    model.netD.load_state_dict(states['init_D'], strict=True)
    return model


def test_fixture_eval_forward(fixture):
    """G and D at init in eval mode (running statistics, no dropout): the authors' fake and D's logits to 1e-5."""
    _, sample, states = fixture
    model = fixture_model(states, eval_mode=True)
    fake = model.inference(sample['A'], torch.zeros(0))
    torch.testing.assert_close(fake, sample['fake_eval'], rtol=0, atol=1e-5)
    with torch.no_grad():
        scores = model.netD.eval()(torch.cat((sample['A'], fake), 1))
    torch.testing.assert_close(scores, sample['D_eval'], rtol=0, atol=1e-5)


def test_fixture_one_iteration(fixture):
    """train_step: the four losses (1e-5 relative), the iteration's fake (1e-5), the weights and buffers after it (1e-6; see LR)."""
    meta, sample, states = fixture
    # meta.json: the iteration runs the same weights without dropout.
    model = fixture_model(states, dataclasses.replace(FIXTURE_ARCH, use_dropout=False))
    trainer = Pix2PixTrainer(model, lr=LR, beta1=0.5)
    losses, generated = trainer.train_step({'label': sample['A'], 'inst': torch.zeros(0), 'image': sample['B']}, infer=True)
    assert set(losses) == set(meta['losses'])
    for name, expected in meta['losses'].items():
        assert losses[name].item() == pytest.approx(expected, rel=1e-5), name
    torch.testing.assert_close(generated, sample['fake_train'], rtol=0, atol=1e-5)
    for name, net in model.networks_by_name().items():
        expected_state = states[f'after1_{name}']
        parameters = dict(net.named_parameters())
        for key, value in net.state_dict().items():
            expected = expected_state[key]
            if key not in parameters:  # BatchNorm running statistics: D ran fake, real, fake
                torch.testing.assert_close(
                    value, expected, rtol=0, atol=WEIGHT_ATOL, msg=lambda m, name=name, key=key: f'{name} {key}: {m}'
                )
                continue
            moved = (expected - states[f'init_{name}'][key]).abs()
            noisy = (moved > 0) & (moved < 0.9 * LR)  # the authors' run saw a gradient of float noise there
            difference = (value - expected).abs()
            assert difference[~noisy].max() <= WEIGHT_ATOL, (name, key, difference[~noisy].max().item())
            ours_moved = (value - states[f'init_{name}'][key]).abs()
            assert ours_moved.max() <= ADAM_FIRST_STEP_BOUND, (name, key, ours_moved.max().item())


@pytest.mark.parametrize('netG, levels', [('unet_128', 7), ('unet_256', 8)])
def test_dropout_is_in_the_innermost_ngf8_levels_only(netG, levels):
    """The authors' U-Net: Dropout(0.5) after the up-convolution's norm of each of the num_downs - 5 levels of ngf * 8
    below the four fixed outer ones (and above the innermost), none elsewhere; none with --no_dropout."""
    arch = dataclasses.replace(FIXTURE_ARCH, num_downs=levels, use_dropout=True)
    levels_with = [
        module.model for module in build_networks(arch)['G'].modules() if hasattr(module, 'model') and hasattr(module, 'outermost')
    ]
    dropouts = [layers for layers in levels_with if any(isinstance(layer, torch.nn.Dropout) for layer in layers)]
    assert len(dropouts) == levels - 5
    for layers in dropouts:
        assert isinstance(layers[-1], torch.nn.Dropout) and layers[-1].p == 0.5  # the level's last layer
        assert isinstance(layers[-2], torch.nn.BatchNorm2d) and isinstance(layers[-3], torch.nn.ConvTranspose2d)
        assert layers[-3].in_channels == 2 * layers[-3].out_channels == 2 * 8 * arch.ngf  # an ngf * 8 level
    no_dropout = build_networks(dataclasses.replace(arch, use_dropout=False))['G']
    assert not any(isinstance(module, torch.nn.Dropout) for module in no_dropout.modules())


@pytest.mark.parametrize('lambda_L1', [100.0, 7.0])
def test_the_l1_loss_is_weighted_by_lambda_l1(fixture, lambda_L1):
    """G_L1 = --lambda_L1 * mean |fake - real| (the fixture's 100 and another weight: a hard-coded 100 fails), and
    G_GAN does not depend on it."""
    meta, sample, states = fixture
    model = fixture_model(states, dataclasses.replace(FIXTURE_ARCH, use_dropout=False), lambda_L1=lambda_L1)
    trainer = Pix2PixTrainer(model, lr=LR, beta1=0.5)
    losses, generated = trainer.train_step({'label': sample['A'], 'inst': torch.zeros(0), 'image': sample['B']}, infer=True)
    assert losses['G_L1'].item() == pytest.approx(lambda_L1 * (generated - sample['B']).abs().mean().item(), rel=1e-5)
    assert losses['G_GAN'].item() == pytest.approx(meta['losses']['G_GAN'], rel=1e-5)


def test_keys_load_strictly_both_ways(fixture):
    """Our state_dicts have the authors' keys and shapes (theirs load into ours strictly, ours into theirs)."""
    _, _, states = fixture
    nets = build_networks(FIXTURE_ARCH)
    for name, net in nets.items():
        ours = net.state_dict()
        theirs = states[f'init_{name}']
        assert {key: tuple(value.shape) for key, value in ours.items()} == {key: tuple(value.shape) for key, value in theirs.items()}
        net.load_state_dict(theirs, strict=True)
        build_networks(FIXTURE_ARCH)[name].load_state_dict(ours, strict=True)


def test_init_is_the_authors_normal():
    """init_weights('normal', 0.02): conv weights ~N(0, 0.02), conv biases 0, BatchNorm weight ~N(1, 0.02), bias 0."""
    torch.manual_seed(0)
    nets = build_networks(dataclasses.replace(FIXTURE_ARCH, ngf=16, ndf=16))
    convs = [m for net in nets.values() for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    norms = [m for net in nets.values() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(m.bias is None or not m.bias.any() for m in convs)
    assert any(m.bias is not None for m in convs)  # the outermost and first D convs keep theirs (zeroed)
    assert torch.cat([m.weight for m in norms]).sub(1).abs().max() < 0.15 and not any(m.bias.any() for m in norms)


def levels(net: torch.nn.Module) -> int:
    """Number of U-Net levels (one transposed conv each)."""
    return sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


@pytest.mark.parametrize('netG, depth, side', [('unet_32', 5, 32), ('unet_64', 6, 64), ('unet_128', 7, 128), ('unet_256', 8, 256)])
def test_unet_depth(netG, depth, side):
    """--netG unet_32 ... unet_256: 5 ... 8 levels, dropout in the inner decoder ones, 1x1 bottleneck at 32 ... 256 pixels."""
    opt = parse_train(['--netG', netG, '--ngf', '1', '--ndf', '1', '--no_instance', '--label_nc', '3'])
    arch = Architecture.from_options(opt)
    assert arch.num_downs == depth
    model = Pix2PixModel(arch, eval_mode=True)
    assert levels(model.netG) == depth
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.netG.modules()) == depth - 5
    bottleneck = []
    innermost = [m for m in model.netG.modules() if isinstance(m, torch.nn.Conv2d)][depth - 1]
    innermost.register_forward_hook(lambda module, inputs, output: bottleneck.append(output.shape[-2:]))
    label = torch.randint(0, 3, (1, 1, side, side))
    assert model.inference(label).shape == (1, 3, side, side)
    assert bottleneck == [(1, 1)]
    with pytest.raises(ModelError, match=f'{side // 2}x{side}.*multiple of {side}'):
        model.inference(torch.zeros(1, 1, side, side // 2, dtype=torch.long))


def test_label_nc_0_takes_the_image_as_it_is():
    """--label_nc 0: G's input is the RGB image itself; with labels: one-hot classes plus the instance edge map."""
    rgb = torch.rand(1, 3, 32, 32) * 2 - 1
    model = Pix2PixModel(dataclasses.replace(TINY_ARCH, input_nc=3))
    assert torch.equal(model.encode_input(rgb), rgb)
    assert model.netG.model.model[0].in_channels == 3 and model.netD.model[0].in_channels == 6

    label = torch.zeros(1, 1, 32, 32, dtype=torch.int32)
    label[..., 8:, :] = 4
    inst = torch.zeros(1, 1, 32, 32, dtype=torch.int32)
    inst[..., :, 16:] = 1000
    model = Pix2PixModel(dataclasses.replace(TINY_ARCH, label_nc=5, no_instance=False))
    encoded = model.encode_input(label, inst)
    assert encoded.shape == (1, 6, 32, 32) and model.netG.model.model[0].in_channels == 6
    assert torch.equal(encoded[:, :5].argmax(1, keepdim=True), label.long()) and torch.equal(encoded[:, :5].sum(1), torch.ones(1, 32, 32))
    edge = encoded[0, 5]
    assert torch.equal(edge[:, 15:17], torch.ones(32, 2)) and edge.sum() == 64  # the two columns either side of the boundary


def test_architecture_round_trip():
    """to_dict is JSON-safe and from_dict gives the same value back; a damaged dict is refused naming the fields."""
    arch = Architecture.from_options(
        parse_train(['--netG', 'unet_128', '--label_nc', '7', '--netD', 'n_layers', '--n_layers_D', '2', '--no_dropout'])
    )
    assert (arch.label_nc, arch.num_downs, arch.n_layers_D, arch.use_dropout, arch.norm) == (7, 7, 2, False, 'batch')
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    damaged = {**arch.to_dict(), 'depth': 3}
    del damaged['ngf']
    with pytest.raises(ModelError, match=r"missing fields \['ngf'\], unknown fields \['depth'\]"):
        Architecture.from_dict(damaged)


def dropout_model() -> tuple:
    """A model whose U-Net has dropout levels (6 levels), and a 64x64 label map."""
    torch.manual_seed(0)
    arch = dataclasses.replace(TINY_ARCH, label_nc=3, num_downs=6)
    return Pix2PixModel(arch, is_train=False), torch.randint(0, 3, (1, 1, 64, 64))


def test_default_test_mode_keeps_dropout_on():
    """The authors' test.py default: G in train mode, so dropout draws a new mask per run; --eval turns it off."""
    model, label = dropout_model()
    assert model.netD is None  # the authors build only G at test time
    torch.manual_seed(1)
    first = model.inference(label)
    torch.manual_seed(2)
    assert not torch.equal(first, model.inference(label))
    torch.manual_seed(1)
    assert torch.equal(first, model.inference(label))  # the same mask: only dropout differed
    assert model.netG.training  # inference restores the mode it found

    model.eval_mode = True
    model.netG.eval()
    torch.manual_seed(2)
    evaluated = model.inference(label)
    with torch.no_grad():
        torch.testing.assert_close(evaluated, model.netG(model.encode_input(label)), rtol=0, atol=0)
    assert not torch.equal(evaluated, first)


def parse_train(args: list) -> argparse.Namespace:
    """Training flags of --model pix2pix as the registry assembles them: its own added, its DEFAULTS applied (no derive/validate)."""
    options = TrainOptions('', METHODS)
    options.model = 'pix2pix'
    opt = options.make_parser().parse_args(args)
    opt.isTrain, opt.device = True, 'cpu'
    return opt


def test_flags_defaults_and_help_group():
    """add_flags adds only new flags (argparse refuses a duplicate) in 'pix2pix model'; the defaults are the authors'."""
    opt = parse_train([])
    assert (opt.netG, opt.norm, opt.gan_mode, opt.lambda_L1, opt.lr, opt.beta1, opt.niter, opt.niter_decay, opt.pool_size) == (
        'unet_256',
        'batch',
        'vanilla',
        100.0,
        0.0002,
        0.5,
        100,
        100,
        0,
    )
    test_options = TestOptions('', METHODS)
    test_options.model = 'pix2pix'
    test_parser = test_options.make_parser()
    group = next(group for group in test_parser._action_groups if group.title == 'pix2pix model')
    assert {action.dest for action in group._group_actions} == {'gan_mode', 'lambda_L1', 'netD', 'no_dropout', 'eval'}
    assert test_parser.parse_args(['--eval']).eval
    model = Pix2PixModel.from_options(parse_train(['--ngf', '1', '--ndf', '1', '--gan_mode', 'lsgan', '--eval']))
    assert model.criterionGAN.use_lsgan and model.eval_mode and model.lambda_L1 == 100.0
    with pytest.raises(SystemExit):  # argparse: --netG takes the U-Nets only
        parse_train(['--netG', 'global'])
    with pytest.raises(OptionsError, match='--netG global'):
        Architecture.from_options(argparse.Namespace(**{**vars(parse_train([])), 'netG': 'global'}))


def test_lr_schedule_and_training_state(fixture):
    """The authors' linear policy (lr for niter epochs, then towards 0 over niter_decay) and an optimiser round trip."""
    _, sample, states = fixture
    trainer = Pix2PixTrainer(fixture_model(states), lr=0.0002, niter=100, niter_decay=100)
    lrs = []
    # the epoch that ended: the lr is the next one's (1, 100, 101, 200); past the schedule (a resume with a shorter
    # --niter_decay) it stays at 0, never below
    for epoch in (0, 99, 100, 199, 250):
        trainer.update_learning_rate(epoch)
        lrs.append(trainer.optimizer_G.param_groups[0]['lr'])
    assert lrs == pytest.approx([0.0002, 0.0002, 0.0002 * 100 / 101, 0.0002 / 101, 0.0])
    trainer.update_learning_rate(199)
    trainer.train_step({'label': sample['A'], 'inst': torch.zeros(0), 'image': sample['B']})
    state = trainer.training_state()
    other = Pix2PixTrainer(fixture_model(states), lr=0.0002)
    other.restore_training_state(state)
    assert other.current_lr == pytest.approx(0.0002 / 101) and other.optimizer_D.param_groups[0]['lr'] == other.current_lr
    assert other.optimizer_G.state_dict()['state'][0]['step'] == 1
