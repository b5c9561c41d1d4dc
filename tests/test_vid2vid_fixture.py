"""vid2vid against its authors' code: tests/fixtures/vid2vid_step (see its meta.json) was made by NVIDIA/vid2vid's own
modules on the CPU: one training iteration of three generated frames with the temporal discriminator, then one Adam
step each for G0, D and D_T0. It is reproduced here through the method's own training step (Vid2VidTrainer.train_step).
"""

import copy
import json
import os

import numpy as np
import pytest
import torch

from helpers import reference_vgg19_state_dict
from models.common.losses import load_vgg19_features
from models.vid2vid import Architecture, Discriminators, LossSettings, Vid2VidModel, Vid2VidTrainer
from util.flow import warp

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'vid2vid_step')
NETS = ('G0', 'D', 'D_T0')
LR = 0.0002
# meta.json's "changes_for_size": label_nc 6, ngf 8, n_downsample_G 2, n_blocks 3, ndf 8, n_layers_D 2, num_D 2,
# n_frames_G 3, n_frames_D 3, one temporal scale, three frames per forward.
ARCH = Architecture(
    label_nc=6,
    input_nc=3,
    output_nc=3,
    use_instance=False,
    ngf=8,
    norm='batch',
    n_frames_G=3,
    n_downsample_G=2,
    n_blocks=3,
    n_blocks_local=3,
    n_scales_spatial=1,
    fg=False,
    fg_labels=(26,),
    no_flow=False,
)
DISCRIMINATORS = Discriminators(ndf=8, n_layers_D=2, num_D=2, n_frames_D=3, n_scales_temporal=1, get_interm_feat=True)
# meta.json's tolerances: outputs to 1e-5 absolute; losses 1e-4 relative (VGG19 on random weights sums many terms);
# gradients by the norm of the difference over a network, 1e-4 relative; weights after the step 1e-6 absolute.
OUTPUT_ATOL = 1e-5
LOSS_RTOL = 1e-4
GRAD_RTOL = {'G0': 1e-3, 'D': 1e-4, 'D_T0': 1e-4}
WEIGHT_ATOL = 1e-6
# G0's gradient sums float32 rounding over three frames, VGG19 and both discriminators: the fixture's own G0 gradient
# lies 5.4e-4 (relative norm) from a float64 evaluation of the same step at the same inputs, so 1e-4 is below its
# own precision; 1e-3 is twice that. Each frame is made from the previous frames G made: a frame's rounding (about
# 5e-6, as one frame's outputs show) grows through the next frames (the fixture's third frame lies 1.2e-4 from a
# float64 run). So the step is checked with G fed the fixture's previous frames (teacher forcing: the hook checks
# they are the frames the method chose), and the free-running clip against RECURSION_ATOL.
RECURSION_ATOL = 1e-3


@pytest.fixture(scope='module')
def fixture() -> tuple:
    """(meta.json, sample arrays as tensors, {'init_G0': state_dict, ...})."""
    with open(os.path.join(FIXTURE, 'meta.json')) as handle:
        meta = json.load(handle)
    with np.load(os.path.join(FIXTURE, 'sample.npz')) as sample:
        arrays = {key: torch.from_numpy(sample[key]) for key in sample.files}
    states = {
        f'{when}_{net}': torch.load(os.path.join(FIXTURE, f'{when}_net_{net}.pth'), map_location='cpu', weights_only=True)
        for when in ('init', 'grad1', 'after1')
        for net in NETS
    }
    return meta, arrays, states


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory) -> str:
    """meta.json's VGG19: deterministic random weights, saved as a --vgg_weights file."""
    path = str(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    torch.save(reference_vgg19_state_dict(), path)
    return path


def clip(arrays: dict) -> dict:
    """The fixture's 5-frame sequence as the sequence dataset gives one: flows of frames 1..4 to the frame before
    (the fixture has those of frames 2..4: frame 1's is never read with n_frames_G 3)."""
    flow = torch.cat((torch.zeros_like(arrays['flow_ref'][:, :1]), arrays['flow_ref']), 1)
    mask = torch.cat((torch.zeros_like(arrays['conf_ref'][:, :1]), arrays['conf_ref']), 1)
    return {'label': arrays['input_A'].long(), 'image': arrays['input_B'], 'flow': flow, 'flow_mask': mask}


@pytest.fixture(scope='module')
def stepped(fixture, vgg_file) -> dict:
    """The method's training step on the fixture's clip from its initial weights, with each optimiser's gradients as
    its step saw them."""
    _, arrays, states = fixture
    model = Vid2VidModel(ARCH, DISCRIMINATORS, LossSettings(), load_vgg19_features(vgg_file))
    for net in NETS:
        model.networks_by_name()[net].load_state_dict(states[f'init_{net}'], strict=True)
    trainer = Vid2VidTrainer(None, model, lr=LR, beta1=0.5, frames_per_forward=3)
    # The authors' previous frames of made frame t: real frames 0 and 1, then their own made frames (detached).
    authors_frames = torch.cat((arrays['input_B'][0, :2], arrays['fake_B'][0, :2]))
    calls = []

    def teacher_forcing(module, args):
        frame = len(calls)
        calls.append(frame)
        forced = authors_frames[frame : frame + 2].flatten(0, 1).unsqueeze(0)
        assert torch.allclose(args[1], forced, atol=RECURSION_ATOL, rtol=0), f'made frame {frame}: other previous frames'
        return (args[0], forced, *args[2:])

    model.netG0.register_forward_pre_hook(teacher_forcing)
    grads: dict = {}
    for name, optimizer in trainer.optimizers().items():
        net = {'optimizer_G': 'G0', 'optimizer_D': 'D', 'optimizer_D_T0': 'D_T0'}[name]

        def capture(optimizer, args, kwargs, net=net):
            grads[net] = {
                key: param.grad.clone() for key, param in model.networks_by_name()[net].named_parameters() if param.grad is not None
            }

        optimizer.register_step_pre_hook(capture)
    initial_D = copy.deepcopy(model.netD)
    initial_D_T = copy.deepcopy(model.netD_T0)
    losses, generated = trainer.train_step(clip(arrays), infer=True)
    assert calls == [0, 1, 2]
    return {
        'model': model,
        'trainer': trainer,
        'losses': losses,
        'generated': generated,
        'grads': grads,
        'D': initial_D,
        'D_T': initial_D_T,
    }


def test_the_free_running_clip(fixture):
    """Without teacher forcing: G's own frames feed the next ones, and the rounding grows (RECURSION_ATOL)."""
    _, arrays, states = fixture
    model = Vid2VidModel(ARCH, DISCRIMINATORS)
    model.netG0.load_state_dict(states['init_G0'], strict=True)
    model.train()
    with torch.no_grad():
        labels = model.encode_labels(arrays['input_A'].long())
        made = model.generate(labels, model.first_previous(arrays['input_B'], 1, (32, 64)))
    assert torch.allclose(made.images[:, 0], arrays['fake_B'][:, 0], atol=OUTPUT_ATOL, rtol=0)
    assert torch.allclose(made.images, arrays['fake_B'], atol=RECURSION_ATOL, rtol=0)
    assert torch.allclose(made.flow, arrays['flow'], atol=20 * RECURSION_ATOL, rtol=0)


def test_the_authors_state_dict_keys_load_strictly(fixture):
    _, _, states = fixture
    model = Vid2VidModel(ARCH, DISCRIMINATORS)
    for net in NETS:
        assert list(model.networks_by_name()[net].state_dict()) == list(states[f'init_{net}']), net
    counts = {net: sum(p.numel() for p in model.networks_by_name()[net].parameters()) for net in NETS}
    assert counts == fixture[0]['networks']['params']


def test_generator_outputs_per_frame(fixture, stepped):
    _, arrays, _ = fixture
    made = stepped['generated'].view(1, 3, 3, 32, 64)
    assert torch.allclose(made, arrays['fake_B'], atol=OUTPUT_ATOL, rtol=0)
    kept = stepped['trainer'].last_forward
    assert torch.allclose(kept['raw'], arrays['fake_B_raw'][0], atol=OUTPUT_ATOL, rtol=0)
    assert torch.allclose(kept['weight'], arrays['weight'][0], atol=OUTPUT_ATOL, rtol=0)
    # Flows are x20 a conv's output (tens of pixels): the same relative precision as the images.
    assert torch.allclose(kept['flow'], arrays['flow'][0], atol=20 * OUTPUT_ATOL, rtol=0)
    # G's own warp of the previous frame: image = raw * w + warp(prev, flow) * (1 - w).
    weight = arrays['weight'][0]
    composed = arrays['fake_B_raw'][0] * weight + arrays['img_warp'][0] * (1 - weight)
    assert torch.allclose(composed, arrays['fake_B'][0], atol=OUTPUT_ATOL, rtol=0)


def test_warps_as_the_authors_resample(fixture):
    _, arrays, _ = fixture
    real_B_prev = arrays['input_B'][0, 1:4]
    assert torch.allclose(warp(real_B_prev, arrays['flow'][0]), arrays['real_B_warp'], atol=OUTPUT_ATOL, rtol=0)
    fake_B_prev = torch.cat((arrays['input_B'][0, 1:2], arrays['fake_B'][0, :2]))
    assert torch.allclose(warp(fake_B_prev, arrays['flow_ref'][0]), arrays['fake_B_warp_ref'], atol=OUTPUT_ATOL, rtol=0)
    previous = torch.cat((arrays['input_B'][0, :2], arrays['fake_B'][0, :2]))
    assert torch.allclose(warp(previous[1:4], arrays['flow'][0]), arrays['img_warp'][0], atol=OUTPUT_ATOL, rtol=0)


def test_every_loss_term(fixture, stepped):
    meta = fixture[0]
    losses = stepped['losses']
    for name, expected in meta['losses'].items():
        assert losses[name].item() == pytest.approx(expected, rel=LOSS_RTOL, abs=1e-7), name
    d_total = (losses['D_fake'] + losses['D_real']) / 2
    assert d_total.item() == pytest.approx(meta['totals']['loss_D'], rel=LOSS_RTOL)
    g_names = [name for name in meta['losses'] if name.startswith(('G_', 'F_', 'W'))]
    assert sum(losses[name].item() for name in g_names) == pytest.approx(meta['totals']['loss_G'], rel=LOSS_RTOL)


def test_discriminator_outputs(fixture, stepped):
    _, arrays, _ = fixture
    real_A = arrays['real_A'][0]
    real_B = arrays['input_B'][0, 2:5]
    with torch.no_grad():
        for kind, images in (('real', real_B), ('fake', arrays['fake_B'][0]), ('raw', arrays['fake_B_raw'][0])):
            outputs = stepped['D'](torch.cat((real_A, images), 1))
            for i, scale in enumerate(outputs):
                for j, value in enumerate(scale):
                    assert torch.allclose(value, arrays[f'D_{kind}_s{i}_l{j}'], atol=OUTPUT_ATOL, rtol=0), (kind, i, j)
        flows = arrays['flow_ref'][0, 1:].flatten(0, 1).unsqueeze(0) / 20
        for kind, frames in (('real', real_B), ('fake', arrays['fake_B'][0])):
            outputs = stepped['D_T'](torch.cat((frames.flatten(0, 1).unsqueeze(0), flows), 1))
            for i, scale in enumerate(outputs):
                for j, value in enumerate(scale):
                    assert torch.allclose(value, arrays[f'DT_{kind}_s{i}_l{j}'], atol=OUTPUT_ATOL, rtol=0), (kind, i, j)


@pytest.mark.parametrize('net', NETS)
def test_gradients_at_each_step(fixture, stepped, net):
    meta, _, states = fixture
    skipped = set(meta['bn_fed_biases'][net])
    expected = states[f'grad1_{net}']
    got = stepped['grads'][net]
    keys = [key for key in expected if key not in skipped]
    difference = torch.sqrt(sum(((got[key] - expected[key]) ** 2).sum() for key in keys))
    norm = torch.sqrt(sum((expected[key] ** 2).sum() for key in keys))
    assert difference <= GRAD_RTOL[net] * norm, (net, difference.item(), norm.item())


@pytest.mark.parametrize('net', NETS)
def test_weights_and_batchnorm_buffers_after_the_step(fixture, stepped, net):
    """Adam's first step moves a weight by lr * g / (|g| + 1e-8): two gradients g1, g2 of one element give moves
    that differ by at most lr * min(2, 2 |g1 - g2| / max(|g1|, |g2|)) (equal signs: far less; opposite: 2 lr). So
    each weight is checked against that bound from the two gradients (plus float32 rounding, 1e-6), and the buffers
    (BatchNorm's running statistics after every train-mode pass) to 1e-6. A conv bias ahead of a train-mode
    BatchNorm has true gradient 0 (meta.json's bn_fed_biases): its two gradients are rounding, and so is the bound."""
    _, _, states = fixture
    after = stepped['model'].networks_by_name()[net].state_dict()
    expected = states[f'after1_{net}']
    assert list(after) == list(expected)
    authors_grads, our_grads = states[f'grad1_{net}'], stepped['grads'][net]
    for key, value in expected.items():
        if not value.is_floating_point():
            assert torch.equal(after[key], value), key
            continue
        bound = torch.full_like(value, WEIGHT_ATOL)
        if key in authors_grads:
            g1, g2 = authors_grads[key], our_grads[key]
            relative = 2 * (g1 - g2).abs() / torch.maximum(g1.abs(), g2.abs()).clamp(min=1e-30)
            bound = bound + LR * relative.clamp(max=2.0)
        assert ((after[key] - value).abs() <= bound).all(), (key, ((after[key] - value).abs() - bound).max().item())
