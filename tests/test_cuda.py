"""On the device: the scripts end to end, the reference fixtures with TF32 off, checkpoints across devices,
mixed precision, --channels_last / --compile, --data_type 16 and --norm batch under torchrun.

Every test here is marked `cuda` and runs on PIX2PIXHD_TEST_DEVICE (default `cuda`); without CUDA they
skip. `PIX2PIXHD_TEST_DEVICE=cpu python -m pytest -m cuda tests/test_cuda.py` rehearses the
device-parametrised ones on the CPU (the CUDA-only ones skip, saying why). scripts/gpu_check.sh runs them.
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import test_reference_fixture as reference_fixture_tests
import test_reference_step as reference_step_tests
import test_scaling as scaling_tests
from builders import build_data
from data.synthetic import make_synthetic_dataset
from helpers import REPO_ROOT, SUBPROCESS_ENV, TINY, assert_ok, run_script
from models import METHODS
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.train_options import TrainOptions
from test_features import LOAD_SIZE, STAGE1_ARCH

# The fixtures of the CPU reference tests, shared here (pytest finds fixtures among a module's names).
expected, inputs, meta = reference_fixture_tests.expected, reference_fixture_tests.inputs, reference_fixture_tests.meta
sample = reference_fixture_tests.sample
reference_run = reference_fixture_tests.reference_run
batch, step_fixture, vgg_weights = reference_step_tests.batch, reference_step_tests.step_fixture, reference_step_tests.vgg_weights

TEST_DEVICE = os.environ.get('PIX2PIXHD_TEST_DEVICE', 'cuda')
pytestmark = pytest.mark.cuda

# Scripts compared with the reference's numbers run without TF32 (cuDNN convolutions use it by default on
# Ampere and later, ~1e-3 relative error); NVIDIA's libraries honour this variable process-wide.
NO_TF32_ENV = dict(SUBPROCESS_ENV, NVIDIA_TF32_OVERRIDE='0')


@pytest.fixture(scope='module', params=[TEST_DEVICE])
def device(request):
    """The device under test, with TF32 off in this process; skips without CUDA."""
    if request.param not in ('cuda', 'cpu'):
        pytest.fail(f'PIX2PIXHD_TEST_DEVICE={request.param}: use cuda (default) or cpu', pytrace=False)
    if request.param == 'cuda' and not torch.cuda.is_available():
        pytest.skip('CUDA not available (torch.cuda.is_available() is false)')
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device(request.param)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def require_cuda(device: torch.device, why: str) -> None:
    """Skip a CUDA-only test in a CPU rehearsal."""
    if device.type != 'cuda':
        pytest.skip(f'CUDA only: {why}')


def gpu_flags(device: torch.device) -> list:
    """--gpu_ids for the device (placed after TINY's -1: argparse keeps the last value)."""
    return ['--gpu_ids', '0' if device.type == 'cuda' else '-1']


def load_all(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def share_within(actual: dict, expected_: dict, atol: float) -> float:
    """reference_step's share of values within atol, over float tensors only (BatchNorm counters are ints)."""
    keys = [key for key in expected_ if expected_[key].is_floating_point()]
    return reference_step_tests.share_within({k: actual[k] for k in keys}, {k: expected_[k] for k in keys}, atol)


def run_script_on(device: torch.device, script: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """run_script with the device's --gpu_ids appended (and an optional environment)."""
    if env is None:
        return run_script(script, *args, *gpu_flags(device))
    return subprocess.run(
        [sys.executable, script, *[str(a) for a in (*args, *gpu_flags(device))]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int16)


# ----------------------------------------------------------------------------- 1. the scripts end to end
def test_feature_recipe_through_the_scripts(device, tmp_path):
    """train -> test -> encode_features -> precompute_feature_maps -> train --load_features -> test with styles."""
    dataroot, checkpoints = tmp_path / 'data', tmp_path / 'checkpoints'
    make_synthetic_dataset(str(dataroot), n_train=4, n_test=2, width=128, height=64, seed=0)
    common = ['--checkpoints_dir', checkpoints, '--dataroot', dataroot]
    stage1 = ['--name', 'f512', '--loadSize', LOAD_SIZE, *common]
    assert_ok(run_script_on(device, 'train.py', *TINY, '--instance_feat', *STAGE1_ARCH, '--niter', 1, '--niter_decay', 0, *stage1))
    with open(checkpoints / 'f512' / 'opt.json') as handle:
        assert json.load(handle)['device'] == ('cuda:0' if device.type == 'cuda' else 'cpu')  # it really ran there
    # before any clusters exist, test.py takes E's features of the real test photos
    assert_ok(run_script_on(device, 'test.py', *stage1, '--use_encoded_image', '--results_dir', tmp_path / 'r512'))
    assert len(os.listdir(tmp_path / 'r512' / 'f512' / 'test_latest' / 'images')) == 6
    assert_ok(run_script_on(device, 'encode_features.py', *stage1))
    assert (checkpoints / 'f512' / 'features_clustered_010.npz').is_file()
    assert_ok(run_script_on(device, 'precompute_feature_maps.py', *stage1))
    assert len(glob.glob(str(dataroot / 'train_feat' / '*.png'))) == 4  # and the set's feature_maps.json
    stage2_arch = ['--netG', 'local', '--ngf', 4, '--num_D', 3, '--n_blocks_global', 1, '--n_blocks_local', 1, '--instance_feat']
    stage2 = ['--name', 'f1024', '--loadSize', 256, *common]
    result = run_script_on(
        device,
        'train.py',
        *TINY,
        *stage2_arch,
        '--load_features',
        '--load_pretrain',
        checkpoints / 'f512',
        '--niter',
        1,
        '--niter_decay',
        0,
        *stage2,
    )
    assert_ok(result)
    assert not (checkpoints / 'f1024' / 'latest_net_E.pth').exists()  # --load_features: no encoder
    clusters = checkpoints / 'f512' / 'features_clustered_010.npz'
    results = tmp_path / 'r1024'
    assert_ok(run_script_on(device, 'test.py', *stage2, '--cluster_path', clusters, '--n_styles', 2, '--seed', 0, '--results_dir', results))
    images = results / 'f1024' / 'test_latest' / 'images'
    styles = sorted(name for name in os.listdir(images) if '_style' in name)
    assert len(styles) == 4
    arrays = [read_png(images / name) for name in styles]
    assert all(array.shape == (128, 256, 3) for array in arrays)
    # styles 0 and 1 of the two test layouts: a fresh cluster draw per style changes at least one of them
    assert not np.array_equal(arrays[0], arrays[1]) or not np.array_equal(arrays[2], arrays[3])


# ----------------------------------------------------------------------------- 2. the reference fixtures
@pytest.fixture(scope='module')
def device_model(device, reference_fixture, tmp_path_factory):
    """tests/test_reference_fixture.py's model (the 2018 weights) on the device."""
    _, flags = reference_fixture_tests.reference_flags(reference_fixture)
    opt = TrainOptions('', METHODS).parse(
        [*flags, *gpu_flags(device), '--checkpoints_dir', str(tmp_path_factory.mktemp('ckpt'))], save=False
    )
    return reference_fixture_tests.load_reference_model(opt, reference_fixture)


def test_reference_encoder_generator_discriminator_on_device(device, device_model, inputs, expected):
    _, inst, image = (tensor.to(device) for tensor in inputs)
    label_edge = torch.from_numpy(expected['input_label_edge']).to(device)
    pooled = torch.from_numpy(expected['encoder_pooled']).to(device)
    check = reference_fixture_tests.assert_close
    with torch.no_grad():
        check(device_model.netE(image, inst)[0], expected['encoder_pooled'], 'encoder_pooled')
        check(device_model.netG(torch.cat([label_edge, pooled])[None])[0], expected['fake_image'], 'fake_image')
        outputs = device_model.netD(torch.cat([label_edge[None], image], dim=1))
    for i, level in enumerate(outputs):
        for j, output in enumerate(level):
            check(output[0], expected[f'D_real_level{i}_out{j}'], f'D_real_level{i}_out{j}')


def test_reference_forward_losses_on_device(device_model, inputs, meta):
    reference_fixture_tests.test_forward_losses_match_reference(device_model, inputs, meta)


def test_reference_pixels_from_the_scripts_on_device(device, reference_run, expected):
    base, flags = reference_run
    results = base / f'results_{device.type}'
    assert_ok(run_script_on(device, 'test.py', *flags, '--use_encoded_image', '--results_dir', results, env=NO_TF32_ENV))
    png = results / 'reference' / 'test_latest' / 'images' / 'sample_synthesized_image.png'
    reference_fixture_tests.assert_reference_pixels(png, expected['fake_image_uint8'], expected['fake_image'])
    assert_ok(run_script_on(device, 'precompute_feature_maps.py', *flags, env=NO_TF32_ENV))
    upsampled = np.repeat(np.repeat(expected['encoder_pooled'], 2, axis=1), 2, axis=2)
    reference_fixture_tests.assert_reference_pixels(base / 'data' / 'train_feat' / 'sample.png', expected['feature_map_uint8'], upsampled)


@pytest.fixture(scope='module')
def device_iterations(device, step_fixture, vgg_weights, batch, tmp_path_factory):
    """tests/test_reference_step.py's two iterations, on the device."""
    trainer = reference_step_tests.build_trainer(step_fixture, vgg_weights, str(tmp_path_factory.mktemp('checkpoints')), *gpu_flags(device))
    assert trainer.device.type == device.type
    return reference_step_tests.run_iterations(trainer, batch)


@pytest.mark.parametrize('iteration', [0, 1])
def test_reference_step_losses_on_device(device_iterations, step_fixture, iteration):
    reference_step_tests.test_losses_match_reference(device_iterations, step_fixture, iteration)


@pytest.mark.parametrize('label', reference_step_tests.NETWORKS)
def test_reference_step_gradients_and_weights_on_device(device_iterations, step_fixture, label):
    reference_step_tests.test_first_iteration_gradients_match_reference(device_iterations, step_fixture, label)
    reference_step_tests.test_weights_after_one_iteration_match_reference(device_iterations, step_fixture, label)
    reference_step_tests.test_weights_after_two_iterations_match_reference(device_iterations, step_fixture, label)


# ----------------------------------------------------------------------------- 3. checkpoints across devices
def test_checkpoints_move_between_devices(device, dataroot, tmp_path):
    """Train on the device, resume (weights, Adam, scalers, RNG) on the CPU, then again on the device; test.py
    on both devices from the last checkpoint gives the same image."""
    cpu = torch.device('cpu')
    names = ['--name', 'x', '--dataroot', dataroot, '--checkpoints_dir', tmp_path, '--loadSize', 64, '--nThreads', 0]
    flags = [*TINY, *names, '--niter_decay', 0]
    assert_ok(run_script_on(device, 'train.py', *flags, '--niter', 1))
    for epochs, where in ((2, cpu), (3, device)):  # written on the device, read on the CPU; and the reverse
        for path in (tmp_path / 'x').glob('latest_net_*.pth'):  # plain CPU state_dicts, whatever trained them
            assert all(value.device.type == 'cpu' for value in torch.load(path, weights_only=True).values()), path
        resumed = run_script_on(where, 'train.py', *flags, '--niter', epochs, '--continue_train')
        assert_ok(resumed)
        assert f'Resuming from epoch {epochs} at iteration 0' in resumed.stdout
        state = load_all(tmp_path / 'x' / 'latest_train_state.pth')
        assert state['epoch'] == epochs + 1 and state['optimizer_G']['state']  # it resumed and trained one more epoch
    images = {}
    for where in (cpu, device):
        results = tmp_path / f'results_{where.type}'
        assert_ok(run_script_on(where, 'test.py', *names, '--results_dir', results, env=NO_TF32_ENV))
        (name,) = [n for n in os.listdir(results / 'x' / 'test_latest' / 'images') if 'synthesized' in n]
        images[where.type] = read_png(results / 'x' / 'test_latest' / 'images' / name)
    # One checkpoint, two devices, float32 without TF32: truncation to 8 bits may move a level, no more.
    assert int(np.abs(images['cpu'] - images[device.type]).max()) <= 1


# ----------------------------------------------------------------------------- 4. precision
AMP_STEPS = 30
# Same weights, same batch, one step: a loss in bf16 autocast (8-bit mantissa) lands within a few per cent
# of float32's, fp16 (11 bits) within a fraction of one per cent (measured on the CPU rehearsal: bf16 up
# to 1.3e-2, fp16 up to 4e-4, the largest on D_fake).
AMP_FIRST_LOSS_RTOL = {'bf16': 5e-2, 'fp16': 1e-2}
# After AMP_STEPS steps G must have moved the way float32 moved it (the cosine between the two runs' total
# updates) and the losses must be where float32's are (means of the last 10 steps). fp16 is looser: its
# GradScaler starts at 2^16 and skips the steps whose scaled gradients overflow while it halves, so its
# run lags float32's by those steps (CPU rehearsal: cosine 0.95 and loss means within 0.1% for bf16, 0.86
# and 7% for fp16). A cast that loses the gradient or a scaler that skips every step gives a cosine near 0.
AMP_UPDATE_COSINE = {'bf16': 0.9, 'fp16': 0.75}
AMP_LAST_LOSS_RTOL = {'bf16': 0.02, 'fp16': 0.15}


def train_steps(device: torch.device, dataroot: str, checkpoints, steps: int, *extra: str) -> tuple:
    """`steps` seeded steps over the serial batches: per-step losses and G's total weight update."""
    opt = TrainOptions('', METHODS).parse(
        [*TINY, *gpu_flags(device), '--dataroot', dataroot, '--serial_batches', '--no_flip', '--checkpoints_dir', str(checkpoints), *extra],
        save=False,
    )
    torch.manual_seed(0)
    trainer = Pix2PixHDTrainer(opt)
    before = torch.cat([parameter.detach().reshape(-1).cpu() for parameter in trainer.params_G])
    loader = build_data(opt)[1]
    history = []
    while len(history) < steps:
        for data in loader:
            losses, _ = trainer.train_step(data, step=len(history))
            history.append({name: float(value) for name, value in losses.items()})
            if len(history) == steps:
                break
    trainer.check_finite()
    after = torch.cat([parameter.detach().reshape(-1).cpu() for parameter in trainer.params_G])
    return history, after - before


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_stays_finite_and_close_to_fp32(device, dataroot, tmp_path, amp):
    reference, reference_update = train_steps(device, dataroot, tmp_path, AMP_STEPS)
    history, update = train_steps(device, dataroot, tmp_path, AMP_STEPS, '--amp', amp)
    assert all(np.isfinite(value) for losses in history for value in losses.values())
    for name, value in reference[0].items():
        assert history[0][name] == pytest.approx(value, rel=AMP_FIRST_LOSS_RTOL[amp]), name
    cosine = torch.nn.functional.cosine_similarity(update, reference_update, dim=0).item()
    assert cosine >= AMP_UPDATE_COSINE[amp], cosine
    for name in reference[0]:
        expected_mean = np.mean([losses[name] for losses in reference[-10:]])
        assert np.mean([losses[name] for losses in history[-10:]]) == pytest.approx(expected_mean, rel=AMP_LAST_LOSS_RTOL[amp]), name


def test_data_type_16_inference_is_float16_and_close(device, dataroot, tmp_path):
    require_cuda(device, '--data_type 16 is float16 autocast on CUDA; on the CPU it runs float32')
    flags = ['--name', 't', '--dataroot', dataroot, '--checkpoints_dir', tmp_path, '--loadSize', 64, '--nThreads', 0]
    assert_ok(run_script_on(device, 'train.py', *TINY, *flags, '--niter', 1, '--niter_decay', 0))
    images = {}
    for data_type in (32, 16):
        results = tmp_path / str(data_type)
        result = run_script_on(device, 'test.py', *flags, '--data_type', data_type, '--results_dir', results)
        assert_ok(result)
        assert 'running float32' not in result.stdout
        (name,) = [n for n in os.listdir(results / 't' / 'test_latest' / 'images') if 'synthesized' in n]
        images[data_type] = read_png(results / 't' / 'test_latest' / 'images' / name)
    difference = np.abs(images[16] - images[32])
    # float16 (11-bit mantissa) in [-1, 1] is ~1e-3 relative, a fraction of one of 255 levels: some pixels
    # move (it did run in half precision), hardly any by more than 2 levels.
    assert difference.max() > 0
    assert (difference <= 2).mean() >= 0.999, np.bincount(difference.reshape(-1))


def test_norm_batch_under_torchrun_trains_like_one_process(device, dataroot, tmp_path):
    """--norm batch on a GPU under torchrun (--nproc_per_node 1; README: NCCL, SyncBatchNorm) trains as plain train.py does.

    Through train.py only, so it holds however the processes synchronise. With one process SyncBatchNorm
    normalises as BatchNorm does (a group of one has only its own statistics), so the weights must agree.
    """
    require_cuda(device, 'SyncBatchNorm and NCCL need CUDA')
    flags = [*TINY, '--dataroot', dataroot, '--checkpoints_dir', tmp_path, '--norm', 'batch', '--serial_batches', '--no_flip']
    flags += ['--niter', 1, '--niter_decay', 0, *gpu_flags(device)]
    launcher = ['-m', 'torch.distributed.run', '--nproc_per_node', '1', '--master_port', '29517', 'train.py']
    assert_ok(run_script(*launcher, '--name', 'torchrun', *flags))
    assert_ok(run_script('train.py', '--name', 'plain', *flags))
    for label in ('G', 'D'):
        plain = load_all(tmp_path / 'plain' / f'latest_net_{label}.pth')
        launched = load_all(tmp_path / 'torchrun' / f'latest_net_{label}.pth')
        assert list(launched) == list(plain)  # the reference's keys, running statistics included
        assert any(key.endswith('running_mean') for key in plain)
        # Same seed and batches; cuDNN's atomics may reorder sums, so Adam's sign-like first steps can
        # flip a few near-zero gradients (as in tests/test_ddp.py's torchrun checks).
        assert share_within(launched, plain, 1e-5) >= 0.98, label


# ----------------------------------------------------------------------------- 5. speed flags (last: --compile is the slowest test)
# One fp32 step by another kernel path: the same sums in another order (float32 rounding, ~1e-7 relative
# per operation) through ~20 layers; InstanceNorm divides by small standard deviations at this tiny size,
# which amplifies that noise in the gradients most. Far below what a wrong kernel gives (instance_norm's
# backward with a channels-last gradient at batch 1, before models/common/normalization.py's fix: ~1 relative).
STEP_LOSS_RTOL = 1e-4
STEP_GRAD_RTOL = 1e-3


@pytest.mark.parametrize('flags', ['--channels_last', '--compile', '--channels_last --compile'])
def test_speed_flags_equal_the_plain_step(device, dataroot, tmp_path, flags):
    # tests/test_scaling.py's step on this device: the losses and G's and D's gradients
    plain = scaling_tests.first_step(tmp_path, dataroot, gpu_flags(device))
    fast = scaling_tests.first_step(tmp_path, dataroot, [*gpu_flags(device), *flags.split()])
    scaling_tests.assert_same_step(plain, fast, STEP_LOSS_RTOL, STEP_GRAD_RTOL)
