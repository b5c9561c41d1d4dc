"""Scaling and robustness of training: why data parallel equals the doubled batch, exact resume, interrupted
saves, AMP, the compiled fp32 and the channels-last paths against the plain one (DDP itself:
tests/test_ddp.py)."""

import collections
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from builders import build_data, build_trainer
from helpers import REPO_ROOT, TINY, run_script
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.train_options import TrainOptions
from util.checkpoint import save_network
from util.errors import OptionsError


def load_all(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def test_batch_gradient_is_the_mean_of_per_sample_gradients(tmp_path, dataroot):
    # Why averaging across processes (tests/test_ddp.py) trains like one process with the whole batch: nothing in
    # the model couples the samples of a batch, so its gradient is the mean of the per-sample ones.
    opt = TrainOptions('', METHODS).parse(
        TINY + ['--dataroot', dataroot, '--serial_batches', '--no_flip', '--batchSize', '2', '--checkpoints_dir', str(tmp_path)], save=False
    )
    torch.manual_seed(0)
    trainer = Pix2PixHDTrainer(opt)
    model = trainer.model
    data = next(iter(build_data(opt)[1]))

    def generator_grad(index: slice) -> torch.Tensor:
        model.zero_grad()
        losses, _ = model(data['label'][index], data['inst'][index], data['image'][index], data['feat'])
        (losses['G_GAN'] + losses['G_GAN_Feat']).backward()
        return torch.cat([parameter.grad.reshape(-1) for parameter in model.netG.parameters()])

    both = generator_grad(slice(0, 2))
    averaged = (generator_grad(slice(0, 1)) + generator_grad(slice(1, 2))) / 2
    assert ((both - averaged).norm() / both.norm()) < 1e-5


def test_several_gpu_ids_without_torchrun_point_at_torchrun(tmp_path, dataroot, monkeypatch):
    import options.base_options as base_options

    monkeypatch.setattr(base_options, 'resolve_gpu_ids', lambda ids: [0, 1])
    with pytest.raises(base_options.OptionsError, match='torchrun --nproc_per_node 2'):
        TrainOptions('', METHODS).parse(TINY[2:] + ['--dataroot', dataroot, '--gpu_ids', '0,1'], save=False)


def test_sigterm_then_continue_equals_straight_training(tmp_path, dataroot):
    flags = TINY + [
        '--dataroot',
        dataroot,
        '--checkpoints_dir',
        str(tmp_path),
        '--seed',
        '3',
        '--niter',
        '10',
        '--niter_decay',
        '10',
        '--print_freq',
        '1',
        '--save_epoch_freq',
        '100',
    ]
    straight = run_script(*['train.py', '--name', 'straight'] + flags)
    assert straight.returncode == 0, straight.stderr[-2000:]

    env = dict(os.environ, OMP_NUM_THREADS='1')
    process = subprocess.Popen(
        [sys.executable, 'train.py', '--name', 'resumed'] + flags,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log_path = tmp_path / 'resumed' / 'loss_log.txt'
    deadline = time.time() + 120
    while time.time() < deadline:
        if log_path.exists() and log_path.read_text().count('(epoch') >= 7:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-2000:]
    assert 'Stopped by SIGTERM' in output and '--continue_train' in output
    epoch, epoch_iter = np.loadtxt(tmp_path / 'resumed' / 'iter.txt', dtype=int)
    assert (epoch, epoch_iter) < (21, 0)  # it really stopped early (80 iterations leave a wide margin)

    resumed = run_script(*['train.py', '--name', 'resumed', '--continue_train'] + flags)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f'Resuming from epoch {epoch} at iteration {epoch_iter}' in resumed.stdout
    for label in ('G', 'D'):
        expected = load_all(tmp_path / 'straight' / f'latest_net_{label}.pth')
        actual = load_all(tmp_path / 'resumed' / f'latest_net_{label}.pth')
        assert all(torch.equal(expected[key], actual[key]) for key in expected), label
    expected_state = load_all(tmp_path / 'straight' / 'latest_train_state.pth')
    actual_state = load_all(tmp_path / 'resumed' / 'latest_train_state.pth')
    assert expected_state['lr'] == actual_state['lr']  # bit-identical schedule
    assert expected_state['lr'] == pytest.approx(0.0, abs=1e-12)  # linear decay reached zero (up to float subtraction)
    for name in ('optimizer_G', 'optimizer_D'):
        for expected, actual in zip(expected_state[name]['state'].values(), actual_state[name]['state'].values()):
            assert torch.equal(expected['exp_avg'], actual['exp_avg']) and torch.equal(expected['exp_avg_sq'], actual['exp_avg_sq'])


def test_checkpoint_write_killed_midway_keeps_previous_latest(tmp_path):
    net = torch.nn.Conv2d(3, 4, 3)
    path = tmp_path / 'latest_net_G.pth'
    save_network(net, str(path))
    before = path.read_bytes()
    script = (
        "import os, signal, torch, sys\n"
        f"sys.path.insert(0, {REPO_ROOT!r})\n"
        "from util.checkpoint import save_network\n"
        "def dying_save(obj, target):\n"
        "    open(target, 'wb').write(b'PK partial checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = dying_save\n"
        f"save_network(torch.nn.Conv2d(3, 4, 3), {str(path)!r})\n"
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    reloaded = load_all(path)
    assert torch.equal(reloaded['weight'], net.weight.detach())


def test_amp_bf16_trains_on_cpu_with_finite_losses(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--amp', 'bf16', '--checkpoints_dir', str(tmp_path)], save=False)
    torch.manual_seed(0)
    trainer = Pix2PixHDTrainer(opt)
    before = {key: value.clone() for key, value in trainer.model.netG.state_dict().items()}
    for data in build_data(opt)[1]:
        losses, _ = trainer.train_step(data)
        assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    assert any(not torch.equal(before[key], value) for key, value in trainer.model.netG.state_dict().items())
    assert all(parameter.dtype == torch.float32 for parameter in trainer.model.netG.parameters())


def test_fp16_flag_is_amp_fp16_with_a_scaler_per_optimiser(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--fp16', '--checkpoints_dir', str(tmp_path)], save=False)
    assert opt.amp == 'fp16'
    trainer = Pix2PixHDTrainer(opt)
    assert trainer.scaler_G.is_enabled() and trainer.scaler_D.is_enabled() and trainer.scaler_G is not trainer.scaler_D


def first_step(tmp_path, dataroot: str, extra: list) -> tuple:
    """Losses and the gradients of every network (G, D, E if any) after one seeded training step (batch 1),
    through train.py's options and trainer."""
    # TINY's size flags are pix2pixHD's; another --model brings its own.
    base = TINY if '--model' not in extra else ['--gpu_ids', '-1', '--seed', '0', '--nThreads', '0']
    opt = TrainOptions(methods=METHODS).parse(
        base + ['--dataroot', dataroot, '--serial_batches', '--no_flip', '--checkpoints_dir', str(tmp_path)] + extra, save=False
    )
    torch.manual_seed(0)
    trainer = build_trainer(opt)
    losses, _ = trainer.train_step(next(iter(build_data(opt)[1])))
    grads = {
        name: torch.cat([parameter.grad.reshape(-1) for parameter in net.parameters() if parameter.grad is not None])
        for name, net in trainer.model.networks_by_name().items()
    }
    return {name: float(value) for name, value in losses.items()}, grads, trainer


def assert_same_step(plain: tuple, fast: tuple, loss_rtol: float, grad_rtol: float) -> None:
    """first_step()'s losses and gradients of a faster path equal the plain path's: each loss within `loss_rtol`,
    each network's gradient within `grad_rtol` of its norm."""
    (plain_losses, plain_grads), (fast_losses, fast_grads) = plain[:2], fast[:2]
    for name, value in plain_losses.items():
        assert fast_losses[name] == pytest.approx(value, rel=loss_rtol), name
    assert set(fast_grads) == set(plain_grads)
    for name, grads in plain_grads.items():
        assert float((fast_grads[name] - grads).norm() / grads.norm()) < grad_rtol, name


def test_compiled_fp32_path_equals_the_plain_path(tmp_path, dataroot):
    # --compile really compiles (inductor, ~1 minute on two cores).
    assert_same_step(first_step(tmp_path, dataroot, []), first_step(tmp_path, dataroot, ['--compile']), 1e-5, 1e-5)


def test_compile_under_a_cpu_capability_override_compiles_afresh(tmp_path, monkeypatch):
    """torch 2.14's inductor reuses its on-disk compiled graphs whatever ATEN_CPU_CAPABILITY says: after a run with the
    machine's AVX-512 kernels, a run under avx2 got NaN losses from them (and under default, a crash). With the
    override set, --compile turns those caches off (a fresh compile is right: this file's compiled-step test passes)."""
    import torch._functorch.config
    import torch._inductor.config

    for config, name in ((torch._inductor.config, 'fx_graph_cache'), (torch._functorch.config, 'enable_autograd_cache')):
        monkeypatch.setattr(config, name, True)  # restored after the test
    args = TINY + ['--checkpoints_dir', str(tmp_path), '--compile']
    monkeypatch.delenv('ATEN_CPU_CAPABILITY', raising=False)  # also when the suite itself runs under an override
    Pix2PixHDTrainer(TrainOptions('', METHODS).parse(args, save=False))
    assert torch._inductor.config.fx_graph_cache and torch._functorch.config.enable_autograd_cache  # no override: cached
    monkeypatch.setenv('ATEN_CPU_CAPABILITY', 'avx2')
    Pix2PixHDTrainer(TrainOptions('', METHODS).parse(args, save=False))
    assert not torch._inductor.config.fx_graph_cache and not torch._functorch.config.enable_autograd_cache


def test_compiled_step_survives_a_new_input_size(tmp_path, monkeypatch):
    # A new size recompiles with dynamic shapes, and such a compiled backward donated its buffers, which D's
    # backward with retain_graph=True (the shared pass over the fakes) then refused: train.py --compile crashed
    # at the second image size. The donation is AOTAutograd's, so its quick aot_eager backend shows it.
    import torch._dynamo
    import torch._functorch.config

    monkeypatch.syspath_prepend(os.path.join(REPO_ROOT, 'scripts'))
    from benchmark import synthetic_batch

    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, 'compile', lambda self, **kwargs: compile_module(self, backend='aot_eager', **kwargs))
    monkeypatch.setattr(torch._functorch.config, 'donated_buffer', torch._functorch.config.donated_buffer)  # restored after
    opt = TrainOptions('', METHODS).parse(TINY + ['--checkpoints_dir', str(tmp_path), '--compile', '--resize_or_crop', 'none'], save=False)
    trainer = Pix2PixHDTrainer(opt)
    try:
        for width, height in ((64, 32), (96, 64)):
            losses, _ = trainer.train_step(synthetic_batch(opt, width, height))
            assert all(torch.isfinite(value) for value in losses.values())
    finally:
        torch._dynamo.reset()


# pix2pixHD with instance features (G, D and E: InstanceNorm), pix2pix with BatchNorm and with InstanceNorm
# (dropout off: its masks are drawn in memory order, so another layout draws other masks).
PIX2PIX_NO_DROPOUT = ['--model', 'pix2pix', '--netG', 'unet_128', '--ngf', '4', '--ndf', '4', '--loadSize', '128', '--fineSize', '128']
PIX2PIX_NO_DROPOUT += ['--no_dropout']


@pytest.mark.parametrize(
    'model_flags',
    [['--instance_feat', '--nef', '4'], PIX2PIX_NO_DROPOUT, PIX2PIX_NO_DROPOUT + ['--norm', 'instance']],
    ids=['pix2pixHD', 'pix2pix', 'pix2pix-instance'],
)
def test_channels_last_step_equals_the_plain_step(tmp_path, dataroot, model_flags):
    # PyTorch's instance_norm backward is wrong at batch size 1 for a channels-last incoming gradient
    # (relative error ~1 in G's gradient, CPU and CUDA); models/common/normalization.py's InstanceNorm2d
    # hands it a contiguous one. Batch 1 is the reference's default.
    fast = first_step(tmp_path, dataroot, model_flags + ['--channels_last'])
    weights = [parameter for parameter in fast[2].model.netG.parameters() if parameter.dim() == 4]
    assert weights and all(weight.is_contiguous(memory_format=torch.channels_last) for weight in weights)  # the flag took effect
    assert_same_step(first_step(tmp_path, dataroot, model_flags), fast, 1e-5, 1e-5)


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('input_format', [torch.contiguous_format, torch.channels_last])
def test_instance_norm_gradient_is_right_for_a_channels_last_incoming_gradient(batch, input_format):
    # The layer alone, as a channels-last network's TrainerBase sets it up: whatever the input's layout.
    from models.common.normalization import InstanceNorm2d

    layer = InstanceNorm2d(16)
    layer.contiguous_gradient = True
    torch.manual_seed(0)
    x, gradient = torch.randn(batch, 16, 8, 12, dtype=torch.float64), torch.randn(batch, 16, 8, 12, dtype=torch.float64)
    leaf = x.clone().requires_grad_()
    reference = torch.autograd.grad(torch.nn.functional.instance_norm(leaf), leaf, gradient)[0]
    leaf = x.contiguous(memory_format=input_format).requires_grad_()
    got = torch.autograd.grad(layer(leaf), leaf, gradient.contiguous(memory_format=torch.channels_last))[0]
    assert torch.allclose(got, reference, rtol=1e-10, atol=1e-12)


def test_generator_step_gives_the_discriminator_no_gradients(tmp_path, dataroot):
    opt = TrainOptions('', METHODS).parse(TINY + ['--dataroot', dataroot, '--checkpoints_dir', str(tmp_path)], save=False)
    trainer = Pix2PixHDTrainer(opt)
    model = trainer.model
    # Count, per parameter, the backward passes that accumulate a gradient into it during one training step:
    # D's parameters must get theirs from D's backward only, G's from G's backward only.
    accumulated = collections.Counter()
    for label, net in (('G', model.netG), ('D', model.netD)):
        for name, parameter in net.named_parameters():
            parameter.register_post_accumulate_grad_hook(lambda _, key=f'{label}.{name}': accumulated.update([key]))
    trainer.train_step(next(iter(build_data(opt)[1])))
    assert set(accumulated) == {
        f'{label}.{name}' for label, net in (('G', model.netG), ('D', model.netD)) for name, _ in net.named_parameters()
    }
    assert all(count == 1 for count in accumulated.values()), {key: count for key, count in accumulated.items() if count != 1}


def adam_step(tmp_path, dataroot: str, impl: str) -> tuple:
    """G's and D's parameters before and after one seeded training step with --adam_impl `impl` (train.py's options
    and trainer), and the trainer."""
    opt = TrainOptions(methods=METHODS).parse(
        TINY + ['--dataroot', dataroot, '--serial_batches', '--no_flip', '--checkpoints_dir', str(tmp_path), '--adam_impl', impl],
        save=False,
    )
    torch.manual_seed(0)
    trainer = build_trainer(opt)
    params = [parameter for net in trainer.model.networks_by_name().values() for parameter in net.parameters()]
    before = torch.cat([parameter.detach().reshape(-1).clone() for parameter in params])
    trainer.train_step(next(iter(build_data(opt)[1])))
    return before, torch.cat([parameter.detach().reshape(-1) for parameter in params]), trainer


def test_adam_kernels_give_the_same_step(tmp_path, dataroot):
    """--adam_impl fused / foreach / for_loop: one step moves every weight the same, up to float rounding."""
    steps = {impl: adam_step(tmp_path, dataroot, impl) for impl in ('for_loop', 'foreach', 'fused')}
    for impl, (_, _, trainer) in steps.items():  # each ran the kernel it names
        group = trainer.optimizer_G.param_groups[0]
        assert (bool(group['fused']), bool(group['foreach'])) == (impl == 'fused', impl == 'foreach'), impl
    before, reference, trainer = steps['for_loop']
    lr = trainer.opt.lr
    # Adam's first step is lr * g / (|g| + eps): every weight with a gradient well above eps moves by about lr, at most lr.
    moved = (reference - before).abs()
    assert float(moved.max()) <= lr * (1 + 1e-3) and float((moved > 0.5 * lr).float().mean()) > 0.5
    # The kernels compute that same formula in other orders: each of its few float32 operations rounds the update
    # (<= lr) by at most u = 2^-24 of it, and the subtraction from the weight by half an ulp of the weight; 16 roundings
    # of the update and one ulp of the weight bound the difference.
    bound = reference.abs() * 2**-23 + 16 * 2**-24 * lr
    for impl in ('foreach', 'fused'):
        assert torch.equal(steps[impl][0], before)  # the same seeded start
        assert bool((steps[impl][1] - reference).abs().le(bound).all()), impl


def test_compile_mode_needs_compile(tmp_path):
    """--compile_mode (reduce-overhead: CUDA graphs, the GPU check's row) is torch.compile's: alone it is refused."""
    args = TINY + ['--checkpoints_dir', str(tmp_path), '--compile_mode', 'reduce-overhead']
    with pytest.raises(OptionsError, match='add --compile'):
        TrainOptions('', METHODS).parse(args, save=False)
    assert TrainOptions('', METHODS).parse(args + ['--compile'], save=False).compile_mode == 'reduce-overhead'


def test_adam_impl_changed_on_resume_takes_effect(tmp_path, dataroot):
    """A saved optimiser's groups carry the kernel it ran with: --continue_train with another --adam_impl runs that one
    from the next step, its moments kept."""
    _, _, saved = adam_step(tmp_path, dataroot, 'fused')
    _, _, resumed = adam_step(tmp_path, dataroot, 'for_loop')
    state = saved.training_state(epoch=1)
    resumed.restore_training_state(state, {'adam_impl': ('fused', 'for_loop')})
    for optimizer in resumed.optimizers().values():
        assert all(not group['fused'] and group['foreach'] is False for group in optimizer.param_groups)
    moments = state['optimizer_G']['state'][0]['exp_avg']
    assert torch.equal(resumed.optimizer_G.state_dict()['state'][0]['exp_avg'], moments) and moments.abs().max() > 0


def test_decomposed_instance_norm_keeps_channels_last_and_the_step(tmp_path, dataroot):
    """--channels_last --instance_norm_impl decomposed: every InstanceNorm of pix2pixHD's G, D and E gives a channels-last
    output (no conversion around it), and the step equals the plain one as the native channels-last step does (1e-5:
    the same sums in another order, through InstanceNorm's division by small standard deviations at this size)."""
    from models.common.normalization import InstanceNorm2d

    flags = ['--instance_feat', '--nef', '4']
    layouts: list = []
    original = InstanceNorm2d.forward

    def recording(self: InstanceNorm2d, input: torch.Tensor) -> torch.Tensor:
        output = original(self, input)
        layouts.append((self.decomposed, output.is_contiguous(memory_format=torch.channels_last)))
        return output

    mp = pytest.MonkeyPatch()
    mp.setattr(InstanceNorm2d, 'forward', recording)
    try:
        fast = first_step(tmp_path, dataroot, flags + ['--channels_last', '--instance_norm_impl', 'decomposed'])
        assert layouts and set(layouts) == {(True, True)}, set(layouts)
        layouts.clear()
        native = first_step(tmp_path, dataroot, flags + ['--channels_last'])
        assert (False, False) in set(layouts)  # PyTorch's kernel hands back NCHW: what the decomposed one saves
    finally:
        mp.undo()
    plain = first_step(tmp_path, dataroot, flags)
    assert_same_step(plain, native, 1e-5, 1e-5)
    assert_same_step(plain, fast, 1e-5, 1e-5)
