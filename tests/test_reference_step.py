"""Two full training iterations of the 2018 reference, reproduced through the trainer's real step.

tests/fixtures/reference_step (see its meta.json): local enhancer, num_D 3, instance features and
the VGG loss with deterministic weights rebuilt here from the recipe in meta.json. The trainer is
built from the options parser with the fixture's flags, starts from the reference's initial weights
and runs `train_step` twice on the fixture's sample; losses, first-iteration gradients and weights
after each iteration are compared as meta.json prescribes.
"""

import json
import os

import numpy as np
import pytest
import torch

from helpers import reference_vgg19_state_dict
from models import METHODS
from models.pix2pixhd.networks import LocalEnhancer
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.train_options import TrainOptions

NETWORKS = ('G', 'D', 'E')
LOSS_RTOL = 1e-4
# After one iteration 99.3-99.7% of the weights agree within 1e-7 (meta.json): Adam's first step moves
# each weight by lr * sign(grad), and weights whose gradient is float noise may move the other way.
SHARE_AFTER_ONE = 0.99
WEIGHT_ATOL_AFTER_ONE = 1e-7
# The second step starts from those few flipped weights, so its updates differ by more than float
# noise; a wrong step still moves most weights by about lr (2e-4), half of which is the tolerance here.
SHARE_AFTER_TWO = 0.97
WEIGHT_ATOL_AFTER_TWO = 1e-4
# Global norm of the gradient difference relative to the reference gradient's (meta.json: G and E
# about 2e-3, as the VGG term's sign flips at zero features; D about 1e-6).
GRADIENT_RTOL = {'G': 5e-3, 'E': 5e-3, 'D': 1e-5}


@pytest.fixture(scope='module')
def step_fixture(reference_step_fixture):
    """(folder, meta.json contents)."""
    with open(os.path.join(reference_step_fixture, 'meta.json')) as handle:
        return reference_step_fixture, json.load(handle)


@pytest.fixture(scope='module')
def vgg_weights(tmp_path_factory) -> str:
    """The recipe's VGG19 weights in a file for --vgg_weights."""
    path = str(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    torch.save(reference_vgg19_state_dict(), path)
    return path


def build_trainer(step_fixture: tuple, vgg_weights: str, checkpoints_dir: str, *extra_flags: str) -> Pix2PixHDTrainer:
    """The trainer for meta.json's flags (plus extra_flags), holding the reference's initial weights."""
    folder, meta = step_fixture
    flags = meta['flags'].split('(')[0].split()  # "--a b ... (all else default: ...)"
    opt = TrainOptions('', METHODS).parse(
        [*flags, '--gpu_ids', '-1', '--checkpoints_dir', checkpoints_dir, '--vgg_weights', vgg_weights, *extra_flags], save=False
    )
    trainer = Pix2PixHDTrainer(opt)
    for label, net in trainer.model.networks_by_name().items():
        net.load_state_dict(torch.load(os.path.join(folder, f'init_net_{label}.pth'), map_location='cpu', weights_only=True), strict=True)
    return trainer


@pytest.fixture(scope='module')
def trainer(step_fixture, vgg_weights, tmp_path_factory):
    """The trainer for meta.json's flags, holding the reference's initial weights."""
    return build_trainer(step_fixture, vgg_weights, str(tmp_path_factory.mktemp('checkpoints')))


@pytest.fixture(scope='module')
def batch(step_fixture):
    """The fixture's sample as the data loader batches it."""
    sample = np.load(os.path.join(step_fixture[0], 'sample.npz'))
    return {
        'label': torch.from_numpy(sample['label'].astype(np.int32))[None, None],
        'inst': torch.from_numpy(sample['inst'])[None, None],
        'image': torch.from_numpy(sample['image'])[None],
        'feat': torch.zeros(0),
    }


def run_iterations(trainer: Pix2PixHDTrainer, batch: dict) -> dict:
    """Two train_steps; per iteration the losses and the weights after it, plus the first iteration's gradients (on the CPU)."""
    nets = trainer.model.networks_by_name()
    record = {'losses': [], 'weights': [], 'gradients': None}
    for iteration in range(2):
        losses, _ = trainer.train_step(batch)
        record['losses'].append({name: value.item() for name, value in losses.items()})
        record['weights'].append(
            {label: {key: value.cpu().clone() for key, value in net.state_dict().items()} for label, net in nets.items()}
        )
        if iteration == 0:
            # train_step leaves each network's gradients of this iteration on its parameters.
            record['gradients'] = {
                label: {key: parameter.grad.cpu().clone() for key, parameter in net.named_parameters()} for label, net in nets.items()
            }
    return record


@pytest.fixture(scope='module')
def iterations(trainer, batch):
    """Per iteration: losses, and the weights after it; plus the first iteration's gradients."""
    return run_iterations(trainer, batch)


def load_reference(folder: str, stage: str, label: str) -> dict:
    """`{stage}_net_{label}.pth` of the fixture."""
    return torch.load(os.path.join(folder, f'{stage}_net_{label}.pth'), map_location='cpu', weights_only=True)


def share_within(actual: dict, expected: dict, atol: float) -> float:
    """Fraction of all values of a state_dict within atol of the reference's (same keys required)."""
    assert list(actual) == list(expected)
    differences = torch.cat([(actual[key] - expected[key]).abs().flatten() for key in expected])
    return (differences <= atol).double().mean().item()


def test_options_are_the_fixture_configuration(trainer):
    opt = trainer.opt
    assert isinstance(trainer.model.netG, LocalEnhancer)
    assert (opt.num_D, opt.n_layers_D, opt.ngf, opt.ndf, opt.nef, opt.loadSize) == (3, 2, 4, 4, 4, 256)
    assert opt.instance_feat and trainer.model.netE is not None
    assert trainer.model.criterionVGG is not None and not opt.no_ganFeat_loss
    assert opt.pool_size == 0 and trainer.model.shares_fake_pass
    assert opt.amp == 'off'


@pytest.mark.parametrize('iteration', [0, 1])
def test_losses_match_reference(iterations, step_fixture, iteration):
    expected = step_fixture[1]['losses'][iteration]
    actual = iterations['losses'][iteration]
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=LOSS_RTOL), f'iteration {iteration + 1} {name}'


@pytest.mark.parametrize('label', NETWORKS)
def test_first_iteration_gradients_match_reference(iterations, step_fixture, label):
    expected = load_reference(step_fixture[0], 'grad1', label)
    actual = iterations['gradients'][label]
    assert set(actual) == set(expected)
    difference = torch.cat([(actual[key] - expected[key]).flatten() for key in expected]).norm()
    reference = torch.cat([expected[key].flatten() for key in expected]).norm()
    assert reference > 0
    assert (difference / reference).item() <= GRADIENT_RTOL[label]


@pytest.mark.parametrize('label', NETWORKS)
def test_weights_after_one_iteration_match_reference(iterations, step_fixture, label):
    expected = load_reference(step_fixture[0], 'after1', label)
    init = load_reference(step_fixture[0], 'init', label)
    # The step did move the weights (else "within 1e-7" would test nothing).
    assert share_within(expected, init, WEIGHT_ATOL_AFTER_ONE) < 0.5
    assert share_within(iterations['weights'][0][label], expected, WEIGHT_ATOL_AFTER_ONE) >= SHARE_AFTER_ONE


@pytest.mark.parametrize('label', NETWORKS)
def test_weights_after_two_iterations_match_reference(iterations, step_fixture, label):
    expected = load_reference(step_fixture[0], 'after2', label)
    after_one = load_reference(step_fixture[0], 'after1', label)
    assert share_within(expected, after_one, WEIGHT_ATOL_AFTER_TWO) < 0.5
    assert share_within(iterations['weights'][1][label], expected, WEIGHT_ATOL_AFTER_TWO) >= SHARE_AFTER_TWO


def test_separate_pass_of_d_over_the_fakes_gives_the_same_iteration(step_fixture, vgg_weights, tmp_path, batch, iterations):
    """With the pool off, D_fake and G_GAN share one pass of D; with --pool_size 1 D_fake gets its own pass
    over the pool's output, which in the first iteration (pool not yet full) is the current fakes:
    the reference's separate passes. Both must give the same iteration."""
    separate = build_trainer(step_fixture, vgg_weights, str(tmp_path), '--pool_size', '1')
    assert not separate.model.shares_fake_pass
    losses, _ = separate.train_step(batch)
    for name, value in iterations['losses'][0].items():
        assert losses[name].item() == pytest.approx(value, rel=1e-6), name
    for label, net in separate.model.networks_by_name().items():
        shared = iterations['gradients'][label]
        difference = torch.cat([(parameter.grad - shared[key]).flatten() for key, parameter in net.named_parameters()]).norm()
        assert (difference / torch.cat([grad.flatten() for grad in shared.values()]).norm()).item() <= 1e-6, label
        assert share_within(net.state_dict(), iterations['weights'][0][label], WEIGHT_ATOL_AFTER_ONE) >= 0.999, label
