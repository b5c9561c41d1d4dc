"""--model biggan: the authors' own numbers (tests/fixtures/biggan_step, made by ajbrock/BigGAN-PyTorch's code, its
meta.json says how) reproduced through the method's training step, the truncation rule on known draws, and the
method through train.py / test.py (train, test page, resume, bf16), its flags' errors and its recipes.

Tolerances are meta.json's "compare" (float32 rounding of a different summation order, on values of known size):
G outputs 1e-5 absolute (tanh), D outputs and losses 1e-5 relative, gradients 1e-4 relative by tensor norm (those
meta.json names as float noise: 1e-5 absolute; exact zeros stay below 1e-6), u0 1e-5 absolute, sv0 and the BN
statistics 1e-5 relative, weights after each step 1e-6 absolute (Adam's first step moves each by about its lr)."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import models.biggan.trainer as biggan_trainer
from helpers import REPO_ROOT, SUBPROCESS_ENV, assert_ok, assert_one_line_error, interrupt_job, random_inception_weights, run_test, run_tool
from models import METHODS
from models.biggan import BigGANModel, BigGANTrainer, build_model, build_trainer
from models.biggan.layers import StoredStatsNorm
from models.biggan.networks import Discriminator, Generator
from models.biggan.sampling import ema_update, sample_noise, truncated_noise
from options.train_options import TrainOptions

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'biggan_step')
META = json.load(open(os.path.join(FIXTURE, 'meta.json')))
# meta.json's configuration as this method's flags.
FIXTURE_FLAGS = (
    '--model biggan --dataset synthetic --resolution 32 --n_classes 5 --G_ch 4 --D_ch 4 --dim_z 20 --shared_dim 8 --hier '
    '--G_shared --G_attn 16 --D_attn 0 --batch_size 4 --num_D_steps 2 --G_ortho 1e-4 --ema --ema_start 0 --seed 0 --gpu_ids -1'
).split()
ROUNDING_ONLY = set(META['rounding_only_gradients']['keys'])
# A tiny configuration for the end-to-end runs: 32 x 32, 4 channels per block, 4 synthetic classes.
TINY_BIGGAN = [
    '--model', 'biggan', '--dataset', 'synthetic', '--n_classes', '4', '--resolution', '32', '--G_ch', '2', '--D_ch', '2',
    '--dim_z', '8', '--G_attn', '16', '--D_attn', '16', '--batch_size', '4', '--synthetic_samples', '16', '--gpu_ids', '-1',
    '--seed', '0', '--nThreads', '0', '--niter', '1', '--display_freq', '8', '--print_freq', '8', '--G_shared', '--hier',
    '--shared_dim', '4', '--ema',
]  # fmt: skip


def load(name: str) -> dict:
    """A state_dict (or gradients) file of the fixture."""
    return torch.load(os.path.join(FIXTURE, name), weights_only=True)


@pytest.fixture(scope='module')
def sample() -> dict:
    """sample.npz as tensors."""
    return {key: torch.from_numpy(value) for key, value in np.load(os.path.join(FIXTURE, 'sample.npz')).items()}


def close_abs(ours: torch.Tensor, theirs: torch.Tensor, tol: float, what: str) -> None:
    """|ours - theirs| <= tol everywhere."""
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    error = (ours.detach().float() - theirs.float()).abs().max().item()
    assert error <= tol, f'{what}: max |difference| {error:.3g} > {tol:g}'


def close_rel(ours: torch.Tensor, theirs: torch.Tensor, tol: float, what: str) -> None:
    """|ours - theirs| <= tol x the largest |theirs| (values of one scale: D's scores, a loss, sv0, BN statistics)."""
    scale = theirs.float().abs().max().item()
    close_abs(ours, theirs, tol * scale if scale > 0 else 1e-6, what)


def close_grad(ours: torch.Tensor, theirs: torch.Tensor, key: str, what: str) -> None:
    """meta.json's rule for a gradient: 1e-4 relative by norm; float-noise ones 1e-5 absolute; exact zeros stay zero."""
    if key in ROUNDING_ONLY:
        close_abs(ours, theirs, 1e-5, f'{what} {key}')
    elif theirs.norm() == 0:
        close_abs(ours, theirs, 1e-6, f'{what} {key} (exactly zero in the authors\' run)')
    else:
        error = (ours.float() - theirs.float()).norm() / theirs.float().norm()
        assert error <= 1e-4, f'{what} {key}: relative error by norm {error:.3g} > 1e-4'


def close_state(ours: dict, theirs: dict, what: str, weights_tol: float = 1e-6, init: dict | None = None) -> None:
    """A state_dict after a step: the same keys; weights to `weights_tol`, u0 1e-5 absolute, sv0 / stored_* 1e-5 relative.
    With `init`, meta.json's float-noise biases are checked to have moved by at most G's lr (Adam's first step)."""
    assert list(ours) == list(theirs), what
    for key, value in theirs.items():
        leaf = key.rsplit('.', 1)[-1]
        if leaf.startswith('u'):
            close_abs(ours[key], value, 1e-5, f'{what} {key}')
        elif leaf.startswith('sv') or leaf.startswith('stored_'):
            close_rel(ours[key], value, 1e-5, f'{what} {key}')
        elif init is not None and key in ROUNDING_ONLY:
            close_abs(ours[key], init[key], 5e-5 * (1 + 1e-4), f'{what} {key} (moved by at most G_lr)')
        else:
            close_abs(ours[key], value, weights_tol, f'{what} {key}')


def fixture_trainer(tmp_path) -> BigGANTrainer:
    """The method's trainer for meta.json's configuration, with the authors' initial G, D and G_ema loaded."""
    opt = TrainOptions('', METHODS).parse([*FIXTURE_FLAGS, '--checkpoints_dir', str(tmp_path)], save=False)
    trainer = build_trainer(opt, build_model(opt))
    for name, net in trainer.networks().items():
        net.load_state_dict(load(f'init_{name}.pth'), strict=True)
    return trainer


@pytest.fixture(scope='module')
def iteration(sample, tmp_path_factory) -> dict:
    """One training step of the method (train_step, as train.py runs it) on the saved batch and draws, observed."""
    trainer = fixture_trainer(tmp_path_factory.mktemp('biggan'))
    model = trainer.model
    draws = [(sample[f'z_{step}'], sample[f'y_{step}']) for step in ('D1', 'D2', 'G')]
    trainer.sample_noise = lambda batch: draws.pop(0)
    seen: dict = {'G_out': [], 'D_out': [], 'D_grads': [], 'D_after': [], 'D_losses': []}
    model.netG.register_forward_hook(lambda module, args, out: seen['G_out'].append(out.detach().clone()))
    model.netD.register_forward_hook(lambda module, args, out: seen['D_out'].append(out.detach().clone()))

    def grads(net: torch.nn.Module) -> dict:
        return {name: param.grad.detach().clone() for name, param in net.named_parameters() if param.grad is not None}

    trainer.optimizer_D.register_step_pre_hook(lambda *_: seen['D_grads'].append(grads(model.netD)))
    trainer.optimizer_D.register_step_post_hook(lambda *_: seen['D_after'].append(copy.deepcopy(model.netD.state_dict())))
    trainer.optimizer_G.register_step_pre_hook(lambda *_: seen.__setitem__('G_grads', grads(model.netG)))
    regularise = trainer.regularise_G

    def observed_regularise(strength: float) -> None:
        seen['G_grads_before_ortho'] = grads(model.netG)
        regularise(strength)

    trainer.regularise_G = observed_regularise  # type: ignore[method-assign]
    hinge = biggan_trainer.hinge_d_loss

    def observed_hinge(d_fake: torch.Tensor, d_real: torch.Tensor) -> tuple:
        losses = hinge(d_fake, d_real)
        seen['D_losses'].append(tuple(loss.item() for loss in losses))
        return losses

    biggan_trainer.hinge_d_loss = observed_hinge
    try:
        losses, generated = trainer.train_step({'image': sample['x_real'], 'label': sample['y_real']}, infer=True)
    finally:
        biggan_trainer.hinge_d_loss = hinge
    assert not draws, 'every saved draw was used: two D steps and one G step'
    return {**seen, 'losses': losses, 'generated': generated, 'trainer': trainer}


# ----------------------------------------------------------------------------- the authors' numbers
def test_construction_at_seed_0_draws_the_authors_initial_weights():
    """G, D, G_ema built in the authors' order after seed 0 hold init_*.pth (orthogonal init through LAPACK's QR: 1e-5)."""
    torch.manual_seed(0)
    opt = TrainOptions('', METHODS).parse([*FIXTURE_FLAGS, '--checkpoints_dir', '/nonexistent'], save=False)
    model = build_model(opt)
    for name, net in model.networks_by_name().items():
        theirs = load(f'init_{name}.pth')
        assert list(net.state_dict()) == list(theirs) == list(META['state_dict_keys'][name[0]]), name
        for key, value in theirs.items():
            assert list(value.shape) == META['state_dict_keys'][name[0]][key]
            close_abs(net.state_dict()[key], value, 1e-5, f'{name} {key}')


def test_initial_G_and_D_give_the_authors_outputs_in_eval_and_train_mode(sample):
    G = Generator(**build_model_kwargs()['G'])
    D = Discriminator(**build_model_kwargs()['D'])
    G.load_state_dict(load('init_G.pth'), strict=True)
    D.load_state_dict(load('init_D.pth'), strict=True)
    G.eval(), D.eval()
    with torch.no_grad():
        fake = G(sample['fixed_z'], G.embed(sample['fixed_y']))
        close_abs(fake, sample['G_init_eval'], 1e-5, 'G_init_eval')
        close_rel(D(sample['x_real'][:4], sample['y_real'][:4]), sample['D_init_eval_real'], 1e-5, 'D_init_eval_real')
        close_rel(D(sample['G_init_eval'], sample['fixed_y']), sample['D_init_eval_fake'], 1e-5, 'D_init_eval_fake')
        close_state(G.state_dict(), load('init_G.pth'), 'G after an eval forward (u0 is read, not written)', 0.0)
        G.train()
        close_abs(G(sample['fixed_z'], G.embed(sample['fixed_y'])), sample['G_init_train'], 1e-5, 'G_init_train')
    buffers = load('G_buffers_after_one_train_forward.pth')
    close_state({key: G.state_dict()[key] for key in buffers}, buffers, 'G buffers after one train forward')


def test_truncation_samples_reproduce_the_authors(sample):
    """Their z_var sampling (normal_(0, z_var) after prepare_z_y's creation draw, seed 2), and G on both truncations."""
    torch.manual_seed(2)
    torch.randn(4, 20)  # prepare_z_y draws z_ once at creation, before sample_()
    z, y = sample_noise(4, 20, 5, 0.5, torch.device('cpu'))
    # The same draws; the vectorised Box-Muller transform rounds by CPU kernel (AVX2 / portable): a few float32 ulps.
    close_abs(z, sample['trunc_z_var'], 1e-6, 'trunc_z_var')
    assert torch.equal(y, sample['trunc_y'])
    G = Generator(**build_model_kwargs()['G'])
    G.load_state_dict(load('init_G.pth'), strict=True)
    G.eval()
    with torch.no_grad():
        close_abs(G(z, G.embed(y)), sample['trunc_G_var'], 1e-5, 'trunc_G_var')
        close_abs(G(sample['trunc_z_truncnorm'], G.embed(y)), sample['trunc_G_truncnorm'], 1e-5, 'trunc_G_truncnorm')
    assert sample['trunc_z_truncnorm'].abs().max() <= 2 * 0.5  # the TF-hub rule: truncation x [-2, 2]


def test_the_training_step_gives_the_authors_outputs_and_losses(iteration, sample):
    for index, step in enumerate(('D1', 'D2', 'G')):
        close_abs(iteration['G_out'][index], sample[f'Gz_{step}'], 1e-5, f'Gz_{step}')
    for index, step in enumerate(('D1', 'D2')):
        fake, real = iteration['D_out'][index].split(4)
        close_rel(fake, sample[f'D_fake_{step}'], 1e-5, f'D_fake_{step}')
        close_rel(real, sample[f'D_real_{step}'], 1e-5, f'D_real_{step}')
    close_rel(iteration['D_out'][2], sample['D_fake_G'], 1e-5, 'D_fake_G')
    for index, step in enumerate(('D_step1', 'D_step2')):
        real, fake = iteration['D_losses'][index]
        close_rel(torch.tensor(real), torch.tensor(META['losses'][step]['D_loss_real']), 1e-5, f'{step} D_loss_real')
        close_rel(torch.tensor(fake), torch.tensor(META['losses'][step]['D_loss_fake']), 1e-5, f'{step} D_loss_fake')
    for name, value in META['train_fn_returned'].items():
        close_rel(iteration['losses'][name], torch.tensor(value), 1e-5, f'returned {name}')
    close_abs(iteration['generated'], sample['Gz_G'], 1e-5, 'the generated images train_step returns')


def test_the_training_step_gives_the_authors_gradients(iteration):
    for index, name in enumerate(('grads_D_step1', 'grads_D_step2')):
        theirs = load(f'{name}.pth')
        assert set(iteration['D_grads'][index]) == set(theirs), name
        for key, value in theirs.items():
            close_grad(iteration['D_grads'][index][key], value, '', f'{name} {key}')
    before = load('grads_G_before_ortho.pth')
    for name, ours in (('grads_G_before_ortho', iteration['G_grads_before_ortho']), ('grads_G', iteration['G_grads'])):
        theirs = load(f'{name}.pth')
        assert set(ours) == set(theirs), name
        for key, value in theirs.items():
            if name == 'grads_G' and before[key].norm() == 0 and value.ndim >= 2:
                # The attention weights' gradient is only the ortho term on orthogonally initialised W: float noise.
                # |(W W^T)_ij|, i != j, is at most cols x eps32 (|w| <= 1), so each entry of 2 s ((W W^T)(1 - I)) W is
                # at most 2 s rows cols eps32, for either code: their difference at most twice that.
                rows, cols = value.shape[0], value[0].numel()
                close_abs(
                    ours[key], value, 2 * 2 * 1e-4 * rows * cols * torch.finfo(torch.float32).eps, f'{name} {key} (ortho of W W^T = I)'
                )
            else:
                close_grad(ours[key], value, key, name)


def test_the_training_step_gives_the_authors_weights_and_spectral_norm_state(iteration):
    close_state(iteration['D_after'][0], load('D_after_D_step1.pth'), 'D after D step 1')
    close_state(iteration['D_after'][1], load('D_after_D_step2.pth'), 'D after D step 2')
    networks = iteration['trainer'].networks()
    close_state(networks['D'].state_dict(), load('after1_D.pth'), 'D after the iteration')
    close_state(networks['G'].state_dict(), load('after1_G.pth'), 'G after the iteration', init=load('init_G.pth'))
    close_state(networks['G_ema'].state_dict(), load('after1_G_ema.pth'), 'G_ema after the iteration')


def test_the_ema_rule_averages_weights_and_buffers(iteration, sample):
    """after1_G_ema_decay0.5 = 0.5 init_G_ema + 0.5 after1_G, every state_dict entry; and G_ema samples as theirs."""
    G_ema = Generator(**build_model_kwargs()['G'])
    G_ema.load_state_dict(load('init_G_ema.pth'))
    G = Generator(**build_model_kwargs()['G'])
    G.load_state_dict(load('after1_G.pth'))
    ema_update(G_ema, G, 0.5)
    close_state(G_ema.state_dict(), load('after1_G_ema_decay0.5.pth'), 'G_ema with decay 0.5')
    trained = iteration['trainer'].networks()['G_ema'].eval()
    with torch.no_grad():
        close_abs(trained(sample['fixed_z'], trained.embed(sample['fixed_y'])), sample['G_ema_after1_eval'], 1e-5, 'G_ema_after1_eval')


def build_model_kwargs() -> dict:
    """Generator / Discriminator keyword arguments of meta.json's configuration."""
    opt = TrainOptions('', METHODS).parse([*FIXTURE_FLAGS, '--checkpoints_dir', '/nonexistent'], save=False)
    arch = METHODS['biggan'].architecture.from_options(opt)
    return {'G': arch.generator_kwargs(), 'D': arch.discriminator_kwargs()}


def test_standing_stats_move_the_stored_statistics_of_train_mode_forwards_then_sample_in_eval_mode():
    """--accumulate_stats: the first generate() runs G in training mode over random noise and classes (here 2 forwards
    of 6), each moving a ccbn's stored statistics by momentum 0.1 to that batch's (unbiased variance), then samples
    in eval mode (as --G_eval_mode had G before); it happens once."""
    opt = TrainOptions('', METHODS).parse([*FIXTURE_FLAGS, '--checkpoints_dir', '/nonexistent'], save=False)
    model = BigGANModel(METHODS['biggan'].architecture.from_options(opt), is_train=False, eval_mode=True, standing_stats=(2, 6))
    model.netG.load_state_dict(load('init_G.pth'), strict=True)
    norm = next(module for module in model.netG.modules() if isinstance(module, StoredStatsNorm))
    norm.stored_mean.fill_(3.0)
    norm.stored_var.fill_(5.0)
    mean, var = norm.stored_mean.clone(), norm.stored_var.clone()
    inputs = []
    handle = norm.register_forward_hook(lambda module, args, out: inputs.append((args[0].detach().clone(), module.training)))
    model.generate(torch.zeros(3, model.netG.dim_z), model.embed(torch.tensor([0, 1, 2])))
    handle.remove()
    assert [(x.shape[0], training) for x, training in inputs] == [(6, True), (6, True), (3, False)]
    for x, _ in inputs[:2]:
        mean = 0.9 * mean + 0.1 * x.mean((0, 2, 3))
        var = 0.9 * var + 0.1 * x.var((0, 2, 3), unbiased=True)
    # float32 running sums of O(1)-O(5) values over two updates: a few ulps of 5.
    torch.testing.assert_close(norm.stored_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.stored_var, var, atol=1e-5, rtol=1e-5)
    assert not model.netG.training and model.pending_standing_stats is None


# ----------------------------------------------------------------------------- truncation
def test_truncation_resamples_values_beyond_two_and_scales():
    """Known draws: 2.5 and -3.0 are out of [-2, 2], replaced in order by the next draws (-2.2 is out again)."""
    stream = [torch.tensor([0.5, 2.5, -1.0, -3.0]), torch.tensor([1.5, -2.2]), torch.tensor([0.25])]
    calls = []

    def draw(n: int) -> torch.Tensor:
        calls.append(n)
        return stream.pop(0)

    z = truncated_noise((2, 2), 0.5, draw)
    assert calls == [4, 2, 1]
    assert torch.equal(z, torch.tensor([[0.25, 0.75], [-0.5, 0.125]]))


def test_truncated_noise_has_the_truncated_normals_spread():
    """truncnorm(-2, 2) has std 0.8796; 2e5 draws put the sample's within 0.01 (about 5 standard errors)."""
    generator = torch.Generator().manual_seed(0)
    z = truncated_noise((200000,), 1.0, lambda n: torch.randn(n, generator=generator))
    assert z.abs().max() <= 2.0
    assert abs(z.std().item() - 0.8796) < 0.01


def test_orthogonal_regularisation_known_values_and_the_shared_embedding_left_out(tmp_path):
    """W = [[1, 0], [1, 1]]: W W^T = [[1, 1], [1, 2]], its off-diagonal part times W is [[1, 1], [1, 0]]; and G's step
    adds nothing to G.shared's gradient (the authors' blacklist), which the fixture cannot show: at its orthogonal
    initialisation the term is float noise for every weight with no more rows than columns."""
    param = torch.nn.Parameter(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    param.grad = torch.zeros(2, 2)
    from models.biggan.sampling import orthogonal_regularisation

    orthogonal_regularisation([param], 0.5)
    assert torch.equal(param.grad, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    trainer = fixture_trainer(tmp_path)
    G = trainer.networks()['G']
    with torch.no_grad():
        G.shared.weight.copy_(torch.arange(40.0).view(5, 8) / 40)  # far from orthogonal
        G.linear.weight.copy_(torch.arange(1280.0).view(256, 5) / 1280)
    for param in G.parameters():
        param.grad = torch.zeros_like(param)
    trainer.regularise_G(1e-4)
    assert torch.equal(G.shared.weight.grad, torch.zeros(5, 8))
    assert G.linear.weight.grad.abs().max() > 1e-3


def test_cross_replica_batch_norm_over_two_processes_equals_the_whole_batch():
    """torchrun, 2 CPU processes (gloo): tests/biggan_cross_replica.py compares each half with the whole batch."""
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', 'tests/biggan_cross_replica.py'],
        cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


# ----------------------------------------------------------------------------- through train.py and test.py
def train_biggan(checkpoints, name: str, *extra) -> subprocess.CompletedProcess:
    """train.py --model biggan on the tiny configuration, in this process."""
    return run_tool('train.py', *TINY_BIGGAN, '--name', name, '--checkpoints_dir', checkpoints, '--dataroot', checkpoints / 'none', *extra)


def test_train_test_and_resume_through_the_scripts(tmp_path):
    """A 2-epoch run equals 1 epoch plus --continue_train to 2 (weights, G_ema, the EMA's iteration count); test.py
    writes one row per class with the samples, the truncation sweep and both interpolations."""
    assert_ok(train_biggan(tmp_path, 'straight', '--niter', '2'))
    assert_ok(train_biggan(tmp_path, 'resumed', '--niter', '1'))
    assert_ok(train_biggan(tmp_path, 'resumed', '--niter', '2', '--continue_train'))
    for name in ('G', 'D', 'G_ema'):
        straight = torch.load(tmp_path / 'straight' / f'latest_net_{name}.pth', weights_only=True)
        resumed = torch.load(tmp_path / 'resumed' / f'latest_net_{name}.pth', weights_only=True)
        for key, value in straight.items():
            assert torch.equal(value, resumed[key]), (name, key)
    state = torch.load(tmp_path / 'resumed' / 'latest_train_state.pth', weights_only=False)
    assert state['itr'] == 4  # 16 images an epoch, 8 a loader batch (batch_size 4 x 2 D steps), 2 epochs
    record = json.loads((tmp_path / 'straight' / 'architecture.json').read_text())
    assert record['model'] == 'biggan' and record['flags']['n_classes'] == 4 and record['flags']['ema'] is True
    log = (tmp_path / 'straight' / 'loss_log.txt').read_text()
    assert 'G_loss' in log and 'D_loss_real' in log and 'D_loss_fake' in log
    assert any(name.endswith('_fakes.png') for name in os.listdir(tmp_path / 'straight' / 'web' / 'images'))
    standing = ['--use_ema', '--accumulate_stats', '--num_standing_accumulations', '2', '--batch_size', '4']
    for extra in ([], ['--use_ema', '--truncation', '0.5', '--G_eval_mode'], standing):
        results = tmp_path / f'results{len(extra)}'
        assert_ok(run_test(tmp_path, tmp_path / 'none', 'straight', '--results_dir', results, *extra))
        images = sorted(os.listdir(results / 'straight' / 'test_latest' / 'images'))
        columns = ('samples', 'truncation_1_0.8_0.6_0.4_0.2', 'interpolation_z', 'interpolation_to_next_class')
        assert images == sorted(f'class_{c:04d}_{column}.png' for c in range(4) for column in columns)
        page = (results / 'straight' / 'test_latest' / 'index.html').read_text()
        assert 'class_0003' in page


def test_bf16_trains_with_finite_losses(tmp_path):
    result = train_biggan(tmp_path, 'bf16', '--amp', 'bf16')
    assert_ok(result)
    state = torch.load(tmp_path / 'bf16' / 'latest_net_G.pth', weights_only=True)
    assert all(torch.isfinite(value).all() and value.dtype == torch.float32 for value in state.values())
    assert_one_line_error(train_biggan(tmp_path, 'fp16', '--amp', 'fp16'), '--amp fp16', '--amp bf16')


def test_a_class_folder_dataset_trains_with_its_class_count(tmp_path):
    """ImageFolder layout: three class folders of PNGs (one in a subfolder), --n_classes 0 takes their number."""
    from PIL import Image

    from data.class_dataset import ClassFolderDataset

    root = tmp_path / 'folders'
    for index, cls in enumerate(('cat', 'dog', 'zebra')):
        (root / cls / 'more').mkdir(parents=True)
        for k in range(3):
            image = np.full((40, 50, 3), 60 * index + 10 * k, dtype=np.uint8)
            Image.fromarray(image).save(root / cls / ('more' if k == 2 else '.') / f'{k}.png')
    args = [*TINY_BIGGAN, '--dataset', 'folder', '--n_classes', '0', '--dataroot', str(root), '--checkpoints_dir', str(tmp_path)]
    opt = TrainOptions('', METHODS).parse([*args, '--batch_size', '2'], save=False)
    assert opt.n_classes == 3 and opt.batchSize == 4
    dataset = ClassFolderDataset(opt)
    assert dataset.classes == ['cat', 'dog', 'zebra'] and len(dataset) == 9
    sample = dataset[(1, 8)]
    assert sample['label'].item() == 2 and sample['image'].shape == (3, 32, 32)
    assert abs(sample['image'].max().item() - ((120 + 20) / 127.5 - 1)) < 1e-6  # the centre crop, resized, in [-1, 1]
    assert_ok(run_tool('train.py', *args, '--batch_size', '2', '--name', 'exp'))
    assert_one_line_error(run_tool('train.py', *args, '--n_classes', '5', '--name', 'x'), 'has 3 class folders', '--n_classes 3')


def test_synthetic_classes_are_distinct_and_drawn_reproducibly():
    from data.class_dataset import SYNTHETIC_CLASSES, SyntheticClassDataset

    opt = TrainOptions('', METHODS).parse([*TINY_BIGGAN, '--n_classes', '0', '--checkpoints_dir', '/nonexistent'], save=False)
    assert opt.n_classes == SYNTHETIC_CLASSES
    dataset = SyntheticClassDataset(opt)
    first = [dataset[(1, index)] for index in range(SYNTHETIC_CLASSES)]
    assert [sample['label'].item() for sample in first] == list(range(SYNTHETIC_CLASSES))
    assert torch.equal(dataset[(1, 3)]['image'], first[3]['image']) and not torch.equal(dataset[(2, 3)]['image'], first[3]['image'])
    # Each class's mean colour of its brightest pixels differs from every other class's.
    colours = torch.stack(
        [sample['image'].flatten(1)[:, sample['image'].sum(0).flatten() > sample['image'].sum(0).mean()].mean(1) for sample in first]
    )
    distances = torch.cdist(colours, colours) + torch.eye(SYNTHETIC_CLASSES) * 10
    assert distances.min() > 0.1


@pytest.mark.parametrize(
    ('extra', 'fragments'),
    [
        (['--resolution', '48'], ['--resolution 48', '32, 64, 128, 256, 512']),
        (['--batchSize', '8'], ['--batchSize 8', '--batch_size']),
        (['--G_shared', '--hier', '--dim_z', '3'], ['--dim_z 3', '--hier']),
        (['--G_attn', 'x16'], ['--G_attn', "'x16'"]),
        (['--n_classes', '11'], ['synthetic has 10 classes', '--n_classes 10']),
    ],
)
def test_bad_flags_are_refused_in_one_line(tmp_path, extra, fragments):
    assert_one_line_error(train_biggan(tmp_path, 'bad', *extra), *fragments)


def test_hier_needs_the_shared_embedding_and_use_ema_needs_ema(tmp_path):
    flags = [flag for flag in TINY_BIGGAN if flag != '--G_shared']
    result = run_tool('train.py', *flags, '--name', 'x', '--checkpoints_dir', tmp_path)
    assert_one_line_error(result, '--hier without --G_shared')
    assert_ok(train_biggan(tmp_path, 'plain', '--G_attn', '0', '--D_attn', '0', *[]))
    flags = [flag for flag in TINY_BIGGAN if flag != '--ema']
    assert_ok(run_tool('train.py', *flags, '--name', 'no_ema', '--checkpoints_dir', tmp_path, '--dataroot', tmp_path))
    assert_one_line_error(run_test(tmp_path, tmp_path, 'no_ema', '--use_ema'), '--use_ema', 'without --ema')
    assert_one_line_error(run_test(tmp_path, tmp_path, 'no_ema', '--export_onnx', tmp_path / 'g.onnx'), '--export_onnx', 'class ids')


def test_torchrun_trains_on_two_cpu_processes(tmp_path):
    """train.py under torchrun (gloo): cross-replica BN and a noise stream per rank; rank 0 saves finite weights."""
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', 'train.py', *TINY_BIGGAN,
         '--batch_size', '2', '--name', 'ddp', '--checkpoints_dir', str(tmp_path), '--dataroot', str(tmp_path)],
        cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / 'ddp' / 'latest_net_G.pth', weights_only=True)
    assert all(torch.isfinite(value).all() for value in state.values())


# ----------------------------------------------------------------------------- recipes
def recipe_options(script: str, tmp_path, parser=TrainOptions, *extra: str):
    """The options of a recipe's one train.py / test.py command."""
    from test_scripts import python_commands

    (command,) = python_commands(os.path.join(REPO_ROOT, 'scripts', script))
    return parser('', METHODS).parse([*command[1:], '--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), *extra], save=False)


@pytest.mark.parametrize(
    ('script', 'expected'),
    [
        (
            'train_biggan_128.sh',
            dict(
                resolution=128,
                n_classes=1000,
                batch_size=32,
                num_D_accumulations=8,
                num_G_accumulations=8,
                num_D_steps=1,
                G_lr=1e-4,
                D_lr=4e-4,
                G_B1=0.0,
                D_B1=0.0,
                adam_eps=1e-6,
                SN_eps=1e-6,
                BN_eps=1e-5,
                G_ch=96,
                D_ch=96,
                dim_z=120,
                shared_dim=128,
                hier=True,
                G_shared=True,
                G_attn='64',
                D_attn='64',
                G_ortho=0.0,
                G_init='ortho',
                ema=True,
                ema_start=20000,
                ema_decay=0.9999,
                batchSize=32 * 8,
            ),
        ),  # fmt: skip
        (
            'train_biggan_cifar.sh',
            dict(
                resolution=32,
                n_classes=10,
                batch_size=64,
                num_D_steps=1,
                G_lr=1e-4,
                D_lr=4e-4,
                G_attn='0',
                D_attn='0',
                G_init='xavier',
                D_init='xavier',
                ema=True,
                ema_start=1000,
                niter=500,
                niter_decay=0,
                G_ch=64,
                D_ch=64,
                dim_z=128,
                hier=False,
                G_shared=False,
                batchSize=64,
            ),
        ),  # fmt: skip
    ],
)
def test_recipes_are_the_authors_settings_and_their_test_scripts_parse(script, expected, tmp_path):
    """The authors' launch scripts (launch_BigGAN_bs256x8.sh over 8 torchrun processes, launch_cifar_ema.sh) as flags;
    the test recipe parses against the experiment's architecture.json."""
    from builders import save_architecture

    opt = recipe_options(script, tmp_path)
    assert opt.model == 'biggan' and {key: getattr(opt, key) for key in expected} == expected
    os.makedirs(tmp_path / opt.name)
    save_architecture(opt)
    from options.test_options import TestOptions

    test = recipe_options(script.replace('train_', 'test_'), tmp_path, TestOptions)
    assert (test.model, test.name, test.use_ema, test.resolution, test.n_classes) == (
        'biggan',
        opt.name,
        True,
        opt.resolution,
        opt.n_classes,
    )


@pytest.fixture
def inception_weights(tmp_path):
    """A randomly initialised state_dict of torch-fidelity's Inception (helpers.random_inception_weights)."""
    return random_inception_weights(str(tmp_path / 'random_inception.pth'))


def test_truncation_trade_off_script_writes_its_table_and_plot(tmp_path, inception_weights):
    """scripts/biggan_truncation.py on a tiny model (random Inception weights: the numbers mean nothing, the plumbing
    is checked): FID, KID and IS per truncation in truncation.json, the FID-IS plot as a PNG."""
    assert_ok(train_biggan(tmp_path, 'tiny'))
    out = tmp_path / 'trunc'
    result = run_tool(
        'scripts/biggan_truncation.py', '--name', 'tiny', '--checkpoints_dir', tmp_path, '--gpu_ids', '-1', '--use_ema',
        '--real', 'synthetic', '--n_images', '8', '--splits', '2', '--batch', '8', '--truncations', '0,0.5',
        '--inception_weights', inception_weights, '--out', out,
    )  # fmt: skip
    assert_ok(result)
    rows = json.loads((out / 'truncation.json').read_text())['rows']
    assert [row['truncation'] for row in rows] == [0.0, 0.5]
    assert all(np.isfinite(row['FID']) and np.isfinite(row['KID']) and row['KID_std'] >= 0 and row['IS'] >= 1.0 for row in rows)
    assert (out / 'truncation.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'truncation 0.5: FID' in result.stdout and ', KID ' in result.stdout
    # Real images from class folders, fewer than --n_images (one per class): KID's subsets shrink to the smaller set.
    for cls in range(4):
        (tmp_path / 'real' / f'class{cls}').mkdir(parents=True)
        Image.fromarray(np.full((40, 48, 3), 60 * cls, np.uint8)).save(tmp_path / 'real' / f'class{cls}' / 'a.png')
    result = run_tool(
        'scripts/biggan_truncation.py', '--name', 'tiny', '--checkpoints_dir', tmp_path, '--gpu_ids', '-1', '--real', tmp_path / 'real',
        '--n_images', '8', '--splits', '2', '--batch', '8', '--truncations', '0', '--inception_weights', inception_weights, '--out', out,
    )  # fmt: skip
    assert_ok(result)
    assert np.isfinite(json.loads((out / 'truncation.json').read_text())['rows'][0]['KID'])
    # One real image in all (a one-class model): refused in one line before anything is sampled.
    assert_ok(train_biggan(tmp_path, 'one_class', '--n_classes', '1'))
    for cls in range(1, 4):
        shutil.rmtree(tmp_path / 'real' / f'class{cls}')
    result = run_tool(
        'scripts/biggan_truncation.py', '--name', 'one_class', '--checkpoints_dir', tmp_path, '--gpu_ids', '-1',
        '--real', tmp_path / 'real', '--n_images', '8', '--splits', '2', '--batch', '8', '--inception_weights', inception_weights,
        '--out', out,
    )  # fmt: skip
    assert_one_line_error(result, f"--real {tmp_path / 'real'}: 1 image", 'at least 2 real images')


@pytest.mark.parametrize('resolution', [32, 64, 128, 256, 512])
def test_every_resolution_of_the_tables_builds_and_runs(resolution):
    """G and D of each architecture table at width 1 (G without the shared embedding, thin D): the image size, D's
    score per image, and ccbn's gain and bias as class embeddings (no SN) as the authors' non-shared G has them."""
    torch.manual_seed(0)
    G = Generator(G_ch=1, dim_z=8, resolution=resolution, G_attn='0', n_classes=3, G_shared=False)
    D = Discriminator(D_ch=1, D_wide=False, resolution=resolution, D_attn='0', n_classes=3)
    classes = torch.tensor([0, 2])
    with torch.no_grad():
        images = G(torch.randn(2, 8), G.embed(classes))
        assert images.shape == (2, 3, resolution, resolution) and images.abs().max() <= 1
        assert D(images, classes).shape == (2, 1)
    n_blocks = {32: 3, 64: 4, 128: 5, 256: 6, 512: 7}[resolution]
    assert len(G.blocks) == n_blocks and len(D.blocks) == n_blocks + 1
    state = G.state_dict()
    assert state['blocks.0.0.bn1.gain.weight'].shape == (3, G.table.in_channels[0]) and 'blocks.0.0.bn1.gain.u0' not in state
    assert D.state_dict()['blocks.1.0.conv1.weight'].shape[0] == D.table.in_channels[1]  # thin: hidden = input width


def biggan_quickstart_env(tmp_path, **overrides) -> dict:
    """scripts/biggan_quickstart.sh at a tiny setting (2 channels per block, 8 images an epoch) through its overrides."""
    env = dict(SUBPROCESS_ENV, G_CH='2', D_CH='2', DIM_Z='8', SHARED_DIM='4', BATCH_SIZE='4', SAMPLES='8', NITER='1', EMA_START='0')
    env.update(PYTHON=sys.executable, CHECKPOINTS_DIR=str(tmp_path / 'ck'), RESULTS_DIR=str(tmp_path / 'res'), **overrides)
    return env


def test_biggan_quickstart_runs_end_to_end(tmp_path):
    """The one-command quickstart trains, samples the page with G_ema in eval mode and prints its timings, the last
    losses, the per-class figures and where the page is; the figures themselves are the quickstart's business."""
    env = biggan_quickstart_env(tmp_path, D_ATTN='16')
    result = subprocess.run(['bash', 'scripts/biggan_quickstart.sh'], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = tmp_path / 'res' / 'biggan_quickstart' / 'test_latest'
    assert result.stdout.strip().splitlines()[-1].endswith(str(results / 'index.html'))
    assert '[biggan quickstart] 2 iterations (1 epochs of 8 images, 4 per D step)' in result.stdout
    for phase in ('training', 'sampling the page', 'total'):
        assert re.search(rf'^\[biggan quickstart\] {phase}: \d+ s$', result.stdout, re.M), phase
    assert re.search(
        r'^\[biggan quickstart\] last losses: .*G_loss: [-\d.]+ D_loss_real: [-\d.]+ D_loss_fake: [-\d.]+', result.stdout, re.M
    )
    for cls in range(10):
        assert re.search(rf'^class {cls} \(\w+\): of 8 samples, shape right \d, colour right \d, both \d$', result.stdout, re.M), cls
    assert re.search(r'^classes whose samples look like their class \(shape and colour right in 5\+ of 8\): \d+/10 ', result.stdout, re.M)
    assert (results / 'images' / 'class_0009_samples.png').is_file()
    opt = json.loads((tmp_path / 'ck' / 'biggan_quickstart' / 'opt.json').read_text())
    assert (opt['ema'], opt['dataset'], opt['n_classes'], opt['G_ch']) == (True, 'synthetic', 10, 2)
    assert (opt['G_attn'], opt['D_attn']) == ('0', '16')  # the attention overrides reach train.py


def test_biggan_quickstart_report_recognises_real_shapes_and_not_blank_ones(tmp_path):
    """The report's figures on pages of known content: real drawn shapes are their classes, blank images are none."""
    from data.class_dataset import draw_shape

    rng = np.random.default_rng(1)
    for name, draw in (('real', lambda c: draw_shape(c, 32, rng)), ('blank', lambda c: np.full((32, 32, 3), 30, np.uint8))):
        images = tmp_path / name / 'images'
        images.mkdir(parents=True)
        for cls in range(10):
            row = np.full((36, 8 * 34 + 2, 3), 255, np.uint8)
            for i in range(8):
                row[2:34, 2 + 34 * i : 34 + 34 * i] = draw(cls)
            Image.fromarray(row).save(images / f'class_{cls:04d}_samples.png')
        result = run_tool('scripts/biggan_quickstart_report.py', '--results', tmp_path / name)
        assert_ok(result)
        expected = '10/10' if name == 'real' else '0/10'
        assert f'shape and colour right in 5+ of 8): {expected} ' in result.stdout, result.stdout


def test_biggan_quickstart_stops_when_a_signal_stops_its_training(tmp_path):
    """Ctrl-C during the quickstart's training: train.py saves and returns, and the quickstart stops there (exit 130)
    instead of sampling the page from the half-trained model."""
    env = biggan_quickstart_env(tmp_path, NITER='5000')
    returncode, stderr = interrupt_job(
        ['bash', 'scripts/biggan_quickstart.sh'], env, ready=(tmp_path / 'ck' / 'biggan_quickstart' / 'loss_log.txt').exists
    )
    assert returncode == 130, stderr[-2000:]
    assert 'stopped by a signal: the later steps did not run' in stderr
    assert (tmp_path / 'ck' / 'biggan_quickstart' / 'latest_net_G_ema.pth').is_file()  # train.py saved where it stopped
    assert not (tmp_path / 'res').exists()
