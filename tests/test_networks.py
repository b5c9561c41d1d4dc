"""Tests for models/pix2pixhd/networks (architecture, keys, shapes, pooling) and the checkpoint helpers of the model."""

import gc
import os
import pickle
import shlex

import pytest
import torch
import torch.nn as nn

from builders import build_model
from models import METHODS
from models.pix2pixhd.model import Pix2PixHDModel
from models.pix2pixhd.networks import count_parameters, define_D, define_E, define_G, instance_average_pool
from options.base_options import save_options
from options.train_options import TrainOptions
from util.checkpoint import load_network_partial, load_network_strict, read_state_dict, save_network, save_networks
from util.errors import ModelError
from util.records import experiment_dir


def train_opt(tmp_path, *flags):
    return TrainOptions('', METHODS).parse([*flags, '--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path)], save=False)


def snapshot(net):
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


# ---------------------------------------------------------------- parameter counts (reference values)


@pytest.mark.parametrize(
    'build, expected',
    [
        (lambda: define_G(36, 3, 64, 'global', 4, 9), 182_546_755),
        (lambda: define_G(36, 3, 32, 'local', 4, 9, 1, 3), 182_857_059),
        (lambda: define_D(39, 64, 3, 'instance', 2, True), 5_603_202),
        (lambda: define_D(39, 64, 3, 'instance', 3, True), 8_404_803),
        (lambda: define_E(3, 3, 16, 4), 788_803),
    ],
    ids=['G_global_default', 'G_local_ngf32', 'D_numD2', 'D_numD3', 'E_default'],
)
def test_parameter_counts_match_reference(build, expected):
    net = build()
    try:
        assert count_parameters(net) == expected
    finally:
        del net
        gc.collect()


@pytest.mark.parametrize(
    'label, build',
    [
        ('G', lambda: define_G(39, 3, 8, 'global', 4, 9)),
        ('D', lambda: define_D(39, 8, 3, 'instance', 2, True)),
        ('E', lambda: define_E(3, 3, 4, 4)),
    ],
)
def test_count_parameters_matches_the_reference_fixture_even_when_frozen(reference_fixture, label, build):
    # The fixture's networks (flags in its meta.json: ngf/ndf 8, nef 4, num_D 2, instance features, so G and
    # D see 35 + 1 + 3 channels), written by the reference; instance norm keeps no buffers, so the sizes of
    # their state_dict tensors are the reference's parameter counts.
    state_dict = torch.load(os.path.join(reference_fixture, f'net_{label}.pth'), map_location='cpu', weights_only=True)
    expected = sum(value.numel() for value in state_dict.values())
    net = build()
    assert count_parameters(net) == expected
    for parameter in net.parameters():
        parameter.requires_grad = False
    assert count_parameters(net) == expected  # frozen parameters count too


# ---------------------------------------------------------------- state_dict keys


def test_global_generator_keys():
    keys = set(define_G(36, 3, 4, 'global', 4, 9).state_dict())
    for key in (
        'model.1.weight',
        'model.16.conv_block.1.weight',
        'model.16.conv_block.5.weight',
        'model.24.conv_block.5.weight',
        'model.25.weight',
        'model.34.weight',
        'model.38.weight',
        'model.38.bias',
    ):
        assert key in keys, key
    assert 'model.39.weight' not in keys and 'model.25.conv_block.1.weight' not in keys
    # instance norm (affine=False, no running stats) adds no tensors
    assert not any(key.startswith('model.2.') for key in keys)


def test_dropout_keeps_the_reference_keys_and_is_active_in_training_only(reference_fixture):
    # The reference parses --use_dropout but never applies it, so its checkpoints (trained with the flag or
    # not) have the plain keys; here dropout shares the ReLU's slot, so they load strictly either way.
    state_dict = torch.load(os.path.join(reference_fixture, 'net_G.pth'), map_location='cpu', weights_only=True)
    torch.manual_seed(0)
    net = define_G(39, 3, 8, 'global', 4, 9, use_dropout=True)
    net.load_state_dict(state_dict, strict=True)
    assert set(define_G(36, 3, 4, 'local', 4, 1, 1, 1, use_dropout=True).state_dict()) == set(
        define_G(36, 3, 4, 'local', 4, 1, 1, 1).state_dict()
    )
    assert sum(isinstance(module, nn.Dropout) for module in net.modules()) == 9  # one per residual block
    plain = define_G(39, 3, 8, 'global', 4, 9)
    plain.load_state_dict(state_dict, strict=True)
    image = torch.randn(1, 39, 32, 32)
    with torch.no_grad():
        net.eval()
        assert torch.equal(net(image), plain.eval()(image))  # evaluation: no dropout
        net.train()
        assert not torch.allclose(net(image), plain(image))


def test_batch_norm_adds_affine_and_running_stats():
    keys = set(define_G(36, 3, 4, 'global', 4, 1, norm='batch').state_dict())
    for key in ('model.2.weight', 'model.2.bias', 'model.2.running_mean', 'model.2.running_var'):
        assert key in keys, key
    net = define_G(36, 3, 4, 'global', 4, 1, norm='batch')
    assert torch.all(net.state_dict()['model.2.bias'] == 0)
    keys_e = set(define_E(3, 3, 4, 4, norm='batch').state_dict())
    assert 'model.2.running_mean' in keys_e


def test_local_enhancer_keys():
    keys = set(define_G(36, 3, 4, 'local', 4, 9, 1, 3).state_dict())
    for key in (
        'model1_1.1.weight',
        'model1_1.4.weight',
        'model1_2.0.conv_block.1.weight',
        'model1_2.2.conv_block.5.weight',
        'model1_2.3.weight',
        'model1_2.7.weight',
        'model.1.weight',
        'model.34.weight',
    ):
        assert key in keys, key
    assert not any(key.startswith('model.38.') or key.startswith('model.37.') for key in keys)
    assert not any(key.startswith('model2_') for key in keys)
    net = define_G(36, 3, 4, 'local', 4, 9, 1, 3)
    assert isinstance(net.model1_2[3], nn.ConvTranspose2d)
    assert isinstance(net.model1_2[7], nn.Conv2d) and net.model1_2[7].out_channels == 3
    assert isinstance(net.model[34], nn.ConvTranspose2d)
    # the global part has ngf*2 filters: its first conv outputs 8 channels for --ngf 4
    assert net.state_dict()['model.1.weight'].shape == (8, 36, 7, 7)
    assert net.state_dict()['model1_1.1.weight'].shape == (4, 36, 7, 7)


def test_two_local_enhancers_keys():
    net = define_G(36, 3, 4, 'local', 4, 1, 2, 3)
    keys = set(net.state_dict())
    for prefix in ('model1_1.', 'model1_2.', 'model2_1.', 'model2_2.'):
        assert any(key.startswith(prefix) for key in keys), prefix
    assert 'model2_2.7.weight' in keys
    assert not any(key.startswith('model1_2.7') or key.startswith('model1_2.6') for key in keys)
    # widths: model1 works at ngf*2, model2 at ngf, global at ngf*4
    assert net.state_dict()['model1_1.1.weight'].shape[0] == 8
    assert net.state_dict()['model2_1.1.weight'].shape[0] == 4
    assert net.state_dict()['model.1.weight'].shape[0] == 16
    assert net.state_dict()['model2_2.7.weight'].shape == (3, 4, 7, 7)


def test_discriminator_keys_with_feature_matching():
    keys = set(define_D(39, 4, 3, 'instance', 2, True).state_dict())
    for i in range(2):
        for j in range(5):
            assert f'scale{i}_layer{j}.0.weight' in keys
    assert not any(key.startswith('scale2_') or key.startswith('scale0_layer5') for key in keys)
    assert not any(key.startswith('layer') for key in keys)


def test_discriminator_keys_without_feature_matching():
    keys = set(define_D(39, 4, 3, 'instance', 2, False).state_dict())
    assert 'layer0.0.weight' in keys and 'layer1.0.weight' in keys
    assert not any(key.startswith('scale') for key in keys)
    # flat Sequential: the last conv is at index 11 (2 + 3 + 3 + 3 modules before it)
    assert 'layer0.11.weight' in keys and 'layer0.12.weight' not in keys


def test_encoder_keys():
    keys = set(define_E(3, 3, 4, 4).state_dict())
    assert 'model.1.weight' in keys and 'model.29.weight' in keys
    assert 'model.30.weight' not in keys


def test_batch_norm_weights_initialised_normal_1_002():
    torch.manual_seed(0)
    nets = (define_G(36, 3, 16, 'global', 4, 9, norm='batch'), define_D(39, 16, 3, 'batch', 2, True), define_E(3, 3, 16, 4, norm='batch'))
    norms = [module for net in nets for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
    weights = torch.cat([module.weight.detach() for module in norms])
    assert len(norms) > 40 and weights.numel() > 5000
    assert abs(weights.mean().item() - 1.0) < 0.002
    assert abs(weights.std().item() - 0.02) < 0.002
    assert all(torch.count_nonzero(module.bias) == 0 for module in norms)


def test_conv_weights_initialised_normal_002():
    torch.manual_seed(0)
    net = define_E(3, 3, 16, 4)
    weight = net.model[4].weight
    assert abs(weight.mean().item()) < 0.003
    assert abs(weight.std().item() - 0.02) < 0.002


@pytest.mark.parametrize('netG', ['global', 'local'])
def test_netG_init_delta_keeps_each_kernels_centre_draw_only(tmp_path, netG):
    """--netG_init delta through the model train.py builds: the same draws as the reference's init, each Conv2d
    kernel's centre tap times its width and the other taps 0; transposed convs (n_downsample_global > 0) keep
    their draws (centre-only would start them as a checkerboard); D and E are the reference's."""
    flags = ['--netG', netG, '--ngf', '4', '--n_downsample_global', '1', '--n_blocks_global', '1', '--n_blocks_local', '1']
    flags += ['--ndf', '4', '--no_vgg_loss', '--instance_feat', '--nef', '4']
    models = {}
    for init in ('normal', 'delta'):
        torch.manual_seed(0)
        models[init] = build_model(train_opt(tmp_path, *flags, '--netG_init', init))
    normal_G, delta_G = (dict(models[init].netG.named_modules()) for init in ('normal', 'delta'))
    kernels = 0
    for name, module in delta_G.items():
        reference = normal_G[name]
        if type(module) is nn.Conv2d and module.kernel_size[0] > 1:
            k = module.kernel_size[0]
            centre = module.weight[:, :, k // 2, k // 2]
            assert torch.equal(centre, reference.weight[:, :, k // 2, k // 2] * k), name
            off_centre = module.weight.clone()
            off_centre[:, :, k // 2, k // 2] = 0
            assert torch.count_nonzero(off_centre) == 0, name
            kernels += 1
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            assert torch.equal(module.weight, reference.weight), name
    assert kernels == (5 if netG == 'global' else 9)  # every 3x3 and 7x7 Conv2d of G
    for net in ('netD', 'netE'):
        normal_state, delta_state = (getattr(models[init], net).state_dict() for init in ('normal', 'delta'))
        assert all(torch.equal(delta_state[key], value) for key, value in normal_state.items()), net
    with pytest.raises(ValueError, match='--netG_init normal or --netG_init delta'):
        define_G(36, 3, 4, netG, 1, 1, init='xavier')


# ---------------------------------------------------------------- output shapes


def test_global_generator_output_shape_and_range():
    torch.manual_seed(0)
    net = define_G(36, 3, 4, 'global', 4, 2)
    out = net(torch.randn(1, 36, 64, 128))
    assert out.shape == (1, 3, 64, 128)
    assert out.min().item() >= -1 and out.max().item() <= 1
    assert out.std().item() > 0


@pytest.mark.parametrize('n_local, size', [(1, (64, 128)), (2, (128, 128))])
def test_local_enhancer_keeps_input_size(n_local, size):
    torch.manual_seed(0)
    net = define_G(36, 3, 4, 'local', 4, 1, n_local, 1)
    out = net(torch.randn(1, 36, *size))
    assert out.shape == (1, 3, *size)
    assert out.min().item() >= -1 and out.max().item() <= 1


def test_local_enhancer_pools_its_input_without_counting_padding():
    torch.manual_seed(0)
    net = define_G(5, 3, 4, 'local', 1, 1, 1, 1)
    image = torch.randn(1, 5, 8, 12)
    seen = []
    net.model.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach()))
    net(image)
    (pooled,) = seen  # what the global part got: the input downsampled once
    # 3x3 windows, stride 2, padding 1: the mean of the window's pixels that lie inside the image
    # (a corner averages 4 pixels, an edge 6, where counting the padding would divide by 9).
    expected = torch.zeros(1, 5, 4, 6)
    for row in range(4):
        for col in range(6):
            window = image[:, :, max(2 * row - 1, 0) : 2 * row + 2, max(2 * col - 1, 0) : 2 * col + 2]
            expected[:, :, row, col] = window.mean(dim=(2, 3))
    torch.testing.assert_close(pooled, expected, rtol=1e-6, atol=1e-6)


def expected_d_sizes(size, n_layers):
    sizes = []
    for _ in range(n_layers):
        size = size // 2 + 1  # kernel 4, stride 2, padding 2
        sizes.append(size)
    for _ in range(2):
        size = size + 1  # kernel 4, stride 1, padding 2
        sizes.append(size)
    return sizes


@pytest.mark.parametrize('num_D', [1, 2, 3])
def test_multiscale_discriminator_outputs_with_feature_matching(num_D):
    torch.manual_seed(0)
    n_layers, ndf = 3, 4
    net = define_D(39, ndf, n_layers, 'instance', num_D, True)
    outputs = net(torch.randn(1, 39, 64, 96))
    assert isinstance(outputs, list) and len(outputs) == num_D
    for level, scale_outputs in enumerate(outputs):
        assert len(scale_outputs) == n_layers + 2
        heights = expected_d_sizes(64 // 2**level, n_layers)
        widths = expected_d_sizes(96 // 2**level, n_layers)
        channels = [ndf, ndf * 2, ndf * 4, ndf * 8, 1]
        for j, out in enumerate(scale_outputs):
            assert out.shape == (1, channels[j], heights[j], widths[j]), (level, j)


def test_multiscale_discriminator_outputs_without_feature_matching():
    torch.manual_seed(0)
    net = define_D(39, 4, 3, 'instance', 2, False)
    outputs = net(torch.randn(1, 39, 64, 64))
    assert len(outputs) == 2
    assert [len(o) for o in outputs] == [1, 1]
    assert outputs[0][0].shape == (1, 1, 11, 11)
    assert outputs[1][0].shape == (1, 1, 7, 7)


def test_discriminator_full_resolution_goes_to_last_scale():
    torch.manual_seed(0)
    net = define_D(39, 4, 3, 'instance', 2, True)
    x = torch.randn(1, 39, 32, 32)
    outputs = net(x)
    single = [x]
    for j in range(5):
        single.append(getattr(net, f'scale1_layer{j}')(single[-1]))
    torch.testing.assert_close(outputs[0][-1], single[-1])
    down = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)(x)
    lower = [down]
    for j in range(5):
        lower.append(getattr(net, f'scale0_layer{j}')(lower[-1]))
    torch.testing.assert_close(outputs[1][-1], lower[-1])


def test_encoder_output_shape_and_pooled():
    torch.manual_seed(0)
    net = define_E(3, 3, 4, 4)
    inst = torch.zeros(1, 1, 32, 32, dtype=torch.int32)
    inst[:, :, :, 16:] = 26001
    out = net(torch.randn(1, 3, 32, 32), inst)
    assert out.shape == (1, 3, 32, 32)
    left, right = out[0, :, :, :16], out[0, :, :, 16:]
    assert torch.allclose(left, left[:, :1, :1].expand_as(left))
    assert torch.allclose(right, right[:, :1, :1].expand_as(right))


# ---------------------------------------------------------------- coarse-to-fine transfer


def test_load_pretrain_global_into_local_enhancer(tmp_path, capsys):
    torch.manual_seed(0)
    global_g = define_G(36, 3, 8, 'global', 4, 9)  # the 512p layout (9 blocks), small width
    save_network(global_g, str(tmp_path / 'latest_net_G.pth'))
    local_g = define_G(36, 3, 4, 'local', 4, 9, 1, 3)
    before = snapshot(local_g)
    left = load_network_partial(local_g, str(tmp_path), 'G', 'latest')

    saved = global_g.state_dict()
    own = local_g.state_dict()
    model_keys = [key for key in saved if key.startswith('model.')]
    copied = [key for key in model_keys if not key.startswith('model.38.')]
    assert len(copied) == len(model_keys) - 2  # the final conv (weight + bias) has no place in the enhancer
    for key in copied:
        assert torch.equal(own[key], saved[key]), key
        assert not torch.equal(before[key], saved[key]), key  # it really changed
    assert 'model.38.weight' not in own
    assert {key.split('.')[0] for key in left} == {'model1_1', 'model1_2'}
    assert set(left) == {key for key in own if not key.startswith('model.')}
    for key in left:
        assert torch.equal(own[key], before[key]), key
    printed = capsys.readouterr().out
    assert 'model1_1' in printed and 'model1_2' in printed


def test_load_pretrain_num_D_2_into_num_D_3(tmp_path):
    torch.manual_seed(0)
    d2 = define_D(39, 4, 3, 'instance', 2, True)
    save_network(d2, str(tmp_path / 'latest_net_D.pth'))
    d3 = define_D(39, 4, 3, 'instance', 3, True)
    before = snapshot(d3)
    left = load_network_partial(d3, str(tmp_path), 'D', 'latest')
    own = d3.state_dict()
    for key, value in d2.state_dict().items():
        assert key.startswith('scale0_') or key.startswith('scale1_')
        assert torch.equal(own[key], value), key
    assert set(left) == {key for key in own if key.startswith('scale2_')}
    assert left
    for key in left:
        assert torch.equal(own[key], before[key])


def test_model_load_pretrain_option(tmp_path):
    """--load_pretrain through Pix2PixHDModel: G from a 512p-style global run, D scales 0-1 from num_D 2."""
    torch.manual_seed(0)
    pre_dir = tmp_path / 'pre'
    pre_dir.mkdir()
    global_g = define_G(36, 3, 8, 'global', 4, 1)
    d2 = define_D(39, 4, 3, 'instance', 2, True)
    save_network(global_g, str(pre_dir / 'latest_net_G.pth'))
    save_network(d2, str(pre_dir / 'latest_net_D.pth'))
    opt = train_opt(
        tmp_path,
        '--netG',
        'local',
        '--ngf',
        '4',
        '--n_blocks_global',
        '1',
        '--n_blocks_local',
        '1',
        '--ndf',
        '4',
        '--num_D',
        '3',
        '--no_vgg_loss',
        '--load_pretrain',
        str(pre_dir),
    )
    model = build_model(opt)
    g_state = model.netG.state_dict()
    last_conv = 'model.30.'  # 1 block: 4 + 12 + 1 + 12 + pad modules before the final conv
    assert isinstance(global_g.model[30], nn.Conv2d) and global_g.model[30].out_channels == 3
    for key, value in global_g.state_dict().items():
        if key.startswith(last_conv):
            assert key not in g_state
        else:
            assert torch.equal(g_state[key], value), key
    d_state = model.netD.state_dict()
    for key, value in d2.state_dict().items():
        assert torch.equal(d_state[key], value), key


# ---------------------------------------------------------------- strict loading and checkpoint files


def test_load_network_strict_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = define_G(36, 3, 4, 'global', 4, 1)
    save_network(net, str(tmp_path / 'latest_net_G.pth'))
    other = define_G(36, 3, 4, 'global', 4, 1)
    opt = train_opt(tmp_path, '--ngf', '4', '--n_blocks_global', '1')
    load_network_strict(other, str(tmp_path), 'G', 'latest', opt)
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_load_network_strict_names_differing_ngf(tmp_path):
    saved_opt = train_opt(tmp_path, '--name', 'exp', '--ngf', '8', '--n_blocks_global', '1')
    save_options(saved_opt)
    save_dir = tmp_path / 'exp'
    assert (save_dir / 'opt.json').is_file()
    save_network(define_G(36, 3, 8, 'global', 4, 1), str(save_dir / 'latest_net_G.pth'))

    opt = train_opt(tmp_path, '--name', 'exp', '--ngf', '4', '--n_blocks_global', '1')
    net = define_G(36, 3, 4, 'global', 4, 1)
    with pytest.raises(ModelError) as info:
        load_network_strict(net, str(save_dir), "G", "latest", opt, METHODS["pix2pixHD"].architecture_options)
    message = str(info.value)
    assert '--ngf 8 (saved) vs 4 (now)' in message
    assert 'shape mismatch' in message
    assert '(8, 36, 7, 7) in file vs (4, 36, 7, 7) in model' in message
    assert '--n_blocks_global' not in message  # only the flags that differ are named


def test_load_network_strict_missing_epoch_lists_available(tmp_path):
    net = define_E(3, 3, 4, 1)
    save_network(net, str(tmp_path / 'latest_net_E.pth'))
    save_network(net, str(tmp_path / '10_net_E.pth'))
    save_network(net, str(tmp_path / '20_net_G.pth'))  # another network's epoch is not offered
    opt = train_opt(tmp_path)
    with pytest.raises(ModelError) as info:
        load_network_strict(net, str(tmp_path), 'E', '7', opt)
    message = str(info.value)
    assert '7_net_E.pth' in message
    assert '--which_epoch 10, latest' in message
    assert '20' not in message.split('available')[1]


class ArbitraryObject:
    def __init__(self):
        self.payload = [1, 2, 3]


class MarkerWriter:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(self.marker)}',))


def test_read_state_dict_refuses_pickled_objects(tmp_path):
    path = tmp_path / 'latest_net_G.pth'
    torch.save(ArbitraryObject(), str(path))
    with pytest.raises(ModelError, match='not a loadable weights file'):
        read_state_dict(str(path), 'G', 'latest', str(tmp_path))


def test_read_state_dict_does_not_run_pickled_code(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'latest_net_G.pth'
    with open(path, 'wb') as handle:
        pickle.dump(MarkerWriter(str(marker)), handle, protocol=2)
    with pytest.raises(ModelError) as info:
        read_state_dict(str(path), 'G', 'latest', str(tmp_path))
    assert str(path) in str(info.value)
    assert not marker.exists()
    # also through the strict loader of a model
    with pytest.raises(ModelError):
        load_network_strict(define_E(3, 3, 4, 1), str(tmp_path), 'G', 'latest', train_opt(tmp_path))
    assert not marker.exists()
    # the file really is an exploit: unsafe unpickling would have created the marker
    with open(path, 'rb') as handle:
        pickle.load(handle)
    assert marker.exists()


def test_read_state_dict_rejects_non_dict(tmp_path):
    path = tmp_path / 'latest_net_G.pth'
    torch.save([torch.zeros(2)], str(path))
    with pytest.raises(ModelError, match='expected a state_dict, found list'):
        read_state_dict(str(path), 'G', 'latest', str(tmp_path))


def test_save_network_plain_cpu_state_dict(tmp_path):
    net = define_D(39, 4, 2, 'batch', 2, True)
    path = tmp_path / 'latest_net_D.pth'
    save_network(net, str(path))
    loaded = torch.load(str(path), map_location='cpu', weights_only=True)
    assert isinstance(loaded, dict)
    assert list(loaded) == list(net.state_dict())
    assert not any(key.startswith('module.') or '.module.' in key for key in loaded)
    for key, value in loaded.items():
        assert value.device.type == 'cpu'
        assert torch.equal(value, net.state_dict()[key])
        assert not value.requires_grad
    assert os.listdir(tmp_path) == ['latest_net_D.pth']


def test_model_save_writes_reference_layout(tmp_path):
    opt = train_opt(
        tmp_path, '--name', 'exp', '--ngf', '4', '--ndf', '4', '--n_blocks_global', '1', '--no_vgg_loss', '--instance_feat', '--nef', '4'
    )
    model = Pix2PixHDModel(opt)
    save_dir = experiment_dir(opt)
    os.makedirs(save_dir, exist_ok=True)
    save_networks(model.networks_by_name(), save_dir, 'latest')
    assert sorted(os.listdir(save_dir)) == ['latest_net_D.pth', 'latest_net_E.pth', 'latest_net_G.pth']
    for label, net in (('G', model.netG), ('D', model.netD), ('E', model.netE)):
        loaded = torch.load(os.path.join(save_dir, f'latest_net_{label}.pth'), weights_only=True)
        assert list(loaded) == list(net.state_dict())


def test_save_network_failure_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'latest_net_E.pth'
    torch.manual_seed(0)
    save_network(define_E(3, 3, 4, 1), str(path))
    previous = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        with open(f, 'wb') as handle:
            handle.write(b'PK\x03\x04 partial checkpoint')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        save_network(define_E(3, 3, 4, 1), str(path))
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ['latest_net_E.pth']


# ---------------------------------------------------------------- instance-wise average pooling


def slow_instance_pool(features, inst):
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        ids = inst[b, 0]
        for value in torch.unique(ids).tolist():
            mask = ids == value
            for c in range(features.shape[1]):
                out[b, c][mask] = features[b, c][mask].mean()
    return out


def test_instance_average_pool_matches_loop_reference():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 6, 7)
    inst = torch.zeros(2, 1, 6, 7, dtype=torch.int32)
    inst[0, 0, :3, :] = 33001
    inst[0, 0, 3:, :4] = 7
    inst[0, 0, 3:, 4:] = 26000  # only in image 0
    inst[1, 0, :, :2] = 33001
    inst[1, 0, :, 2:5] = 65535  # only in image 1
    inst[1, 0, 2, 6] = 7
    inst[1, 0, 4:, 5:] = 24002  # only in image 1
    pooled = instance_average_pool(features, inst)
    expected = slow_instance_pool(features, inst)
    assert pooled.shape == features.shape
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
    # constant inside each instance, and per image: 33001 differs between the two images
    for b in range(2):
        for value in torch.unique(inst[b]).tolist():
            mask = inst[b, 0] == value
            for c in range(3):
                values = pooled[b, c][mask]
                assert torch.allclose(values, values[0].expand_as(values))
                assert values[0].item() == pytest.approx(features[b, c][mask].mean().item(), abs=1e-6)
    assert not torch.allclose(pooled[0, :, 0, 0], pooled[1, :, 0, 0])
    # a single pixel instance keeps its own value
    torch.testing.assert_close(pooled[1, :, 2, 6], features[1, :, 2, 6])
