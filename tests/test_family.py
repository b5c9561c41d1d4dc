"""The model family through the entry points: --model pix2pix and crn trained, tested, resumed and exported by train.py
and test.py (in-process), the architecture value saved and compared, test.py inheriting --model, and a fourth method
added by a test alone (tests/toy_method.py + one registry entry)."""

import glob
import importlib.util
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import models
from builders import build_data, build_model
from helpers import REPO_ROOT, assert_ok, assert_one_line_error, reference_vgg19_state_dict, run_tool
from models import METHODS
from options.base_options import replace
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions, resume_policy
from util.checkpoint import read_iter_file

# The tiny configuration of each method on the 128x64 synthetic pairs of conftest's `dataroot`.
TINY_FLAGS = {
    'pix2pix': ['--netG', 'unet_128', '--ngf', '2', '--ndf', '2', '--loadSize', '128', '--fineSize', '128'],
    'crn': ['--crn_sp', '32', '--crn_widths', '4', '--crn_n_images', '2', '--loadSize', '64'],
}
COMMON = ['--gpu_ids', '-1', '--seed', '0', '--nThreads', '0']
HAVE_TENSORBOARD = importlib.util.find_spec('tensorboard') is not None


@pytest.fixture(scope='module')
def vgg_weights(tmp_path_factory) -> str:
    """A torchvision VGG19 state_dict (reference_step's random recipe) for CRN's loss: nothing is downloaded."""
    path = str(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    torch.save(reference_vgg19_state_dict(), path)
    return path


def train_args(model: str, checkpoints, dataroot: str, vgg_weights: str, *extra) -> list:
    """train.py's flags for a tiny run of `model`: 2 epochs of 4 images, a checkpoint per epoch."""
    args = ['--model', model, '--name', model, '--checkpoints_dir', checkpoints, '--dataroot', dataroot, *COMMON, *TINY_FLAGS[model]]
    if model == 'crn':
        args += ['--vgg_weights', vgg_weights]
    return [*args, '--niter', '1', '--niter_decay', '1', '--save_epoch_freq', '1', *extra]


@pytest.fixture(scope='module', params=['pix2pix', 'crn'])
def trained(request, tmp_path_factory, dataroot, vgg_weights) -> dict:
    """train.py --model <model> for 2 epochs, then test.py --name <model> (no --model, no architecture flags)."""
    model = request.param
    base = tmp_path_factory.mktemp(model)
    checkpoints, results = base / 'checkpoints', base / 'results'
    logging = ['--tf_log'] if HAVE_TENSORBOARD else []
    assert_ok(run_tool('train.py', *train_args(model, checkpoints, dataroot, vgg_weights, *logging)))
    load = ['--loadSize', '128', '--fineSize', '128'] if model == 'pix2pix' else ['--loadSize', '64']
    test_args = ['--name', model, '--checkpoints_dir', checkpoints, '--dataroot', dataroot, '--gpu_ids', '-1', *load]
    assert_ok(run_tool('test.py', *test_args, '--results_dir', results))
    return {
        'model': model,
        'dir': checkpoints / model,
        'checkpoints': checkpoints,
        'web': results / model / 'test_latest',
        'test_args': test_args,
        'dataroot': dataroot,
    }


# ----------------------------------------------------------------------------- train, test, resume, ONNX, page
def test_train_writes_the_checkpoint_set_and_the_architecture(trained):
    folder = trained['dir']
    nets = ['G', 'D'] if trained['model'] == 'pix2pix' else ['G']
    for which in ('latest', '1', '2'):
        assert {f'{which}_net_{name}.pth' for name in nets} | {f'{which}_train_state.pth'} <= set(os.listdir(folder))
    assert (folder / 'latest_net_D.pth').exists() == ('D' in nets)
    assert read_iter_file(str(folder)) == (3, 0)
    record = json.loads((folder / 'architecture.json').read_text())
    method = METHODS[trained['model']]
    opt = TrainOptions(methods=METHODS).parse(['--model', trained['model'], *TINY_FLAGS[trained['model']]], save=False)
    # The value round-trips: what the file holds is the options' architecture, and from_dict rebuilds it.
    assert record['model'] == trained['model']
    assert method.architecture.from_dict(record["architecture"]) == method.architecture.from_options(opt)
    # The weights are the architecture's networks (strict load of the saved G into a fresh model of the value).
    state = torch.load(folder / 'latest_net_G.pth', weights_only=True)
    method.build_model(replace(opt, isTrain=False)).netG.load_state_dict(state, strict=True)


@pytest.mark.skipif(not HAVE_TENSORBOARD, reason='tensorboard is not installed')
def test_tf_log_and_the_training_page_show_the_model_losses(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(trained['dir'] / 'logs'))
    accumulator.Reload()
    expected = {'G_GAN', 'G_L1', 'D_real', 'D_fake'} if trained['model'] == 'pix2pix' else {'G_loss', 'p0', 'p5'}
    assert expected <= set(accumulator.Tags()['scalars'])
    assert any(name.endswith('.png') for name in os.listdir(trained['dir'] / 'web' / 'images'))


def test_test_py_inherits_the_model_and_writes_the_page(trained):
    web = trained['web']
    html = (web / 'index.html').read_text()
    synthesized = sorted(name for name in os.listdir(web / 'images') if name.endswith('_synthesized_image.png'))
    assert len(synthesized) == 1 and synthesized[0] in html
    assert any(name.endswith('_input_label.png') for name in os.listdir(web / 'images'))


def test_test_py_output_is_the_model_inference(trained):
    """test.py's image is the model's inference on the first test map (its model and architecture taken from opt.json)."""
    opt = _TestOptions(methods=METHODS).parse([*map(str, trained['test_args'])], save=False)
    assert opt.model == trained['model']
    model = build_model(opt)
    data = next(iter(build_data(opt)[1]))
    with torch.no_grad():  # independently of inference(): G on the encoded map (CRN: its first of K images)
        fake = model.netG(
            model.encode_input(data['label'], data['inst']) if trained['model'] == 'pix2pix' else model.encode_input(data['label'])
        )
    fake = fake[0] if trained['model'] == 'pix2pix' else fake[0, 0]
    name = os.path.splitext(os.path.basename(data['path'][0]))[0]
    page = torch.from_numpy(np.asarray(Image.open(trained['web'] / 'images' / f'{name}_synthesized_image.png'), dtype=np.float32))
    expected = ((fake.clamp(-1, 1).permute(1, 2, 0) + 1) / 2 * 255).round()
    assert page.shape == expected.shape
    if trained['model'] == 'crn':  # deterministic; pix2pix's test mode runs dropout (the authors' default)
        assert (page - expected).abs().max() <= 1


def test_test_py_with_a_seed_writes_the_same_images_twice(trained, tmp_path):
    """--seed seeds every draw at test time: pix2pix's dropout (on at test time, as its authors run it) included."""
    pages = {}
    for run, seed in (('a', '0'), ('b', '0'), ('c', '1')):
        assert_ok(run_tool('test.py', *trained['test_args'], '--results_dir', tmp_path / run, '--seed', seed, '--how_many', '2'))
        images = tmp_path / run / trained['model'] / 'test_latest' / 'images'
        pages[run] = {name: (images / name).read_bytes() for name in sorted(os.listdir(images)) if 'synthesized' in name}
    assert pages['a'] and pages['a'] == pages['b']
    if trained['model'] == 'pix2pix':  # its dropout draws: another seed, other images
        assert pages['a'] != pages['c']


def test_continue_train_restores_the_optimiser_state(trained, tmp_path, vgg_weights):
    """--continue_train from epoch 2's end runs epoch 3 with the saved Adam moments: its step count goes on from 8."""
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(trained['checkpoints'], checkpoints)
    args = train_args(trained['model'], checkpoints, trained['dataroot'], vgg_weights, '--niter_decay', '2', '--continue_train')
    assert_ok(run_tool('train.py', *args))
    state = torch.load(checkpoints / trained['model'] / 'latest_train_state.pth', weights_only=True)
    steps = {int(entry['step']) for entry in state['optimizer_G']['state'].values()}
    assert steps == {12}, steps  # 4 iterations per epoch x 3 epochs: not 4 (a fresh optimiser)
    assert state['epoch'] == 4


def test_a_resume_with_other_architecture_flags_is_refused_naming_them(trained, vgg_weights):
    model = trained['model']
    change = ['--ngf', '3'] if model == 'pix2pix' else ['--crn_widths', '8']
    before = (trained['dir'] / 'latest_net_G.pth').stat().st_mtime_ns
    args = [*train_args(model, trained['checkpoints'], trained['dataroot'], vgg_weights), *change, '--continue_train']
    expected = '--ngf 2 (saved) vs 3 (now)' if model == 'pix2pix' else '--crn_widths 4 (saved) vs 8 (now)'
    assert_one_line_error(run_tool('train.py', *args), '--continue_train', expected)
    assert (trained['dir'] / 'latest_net_G.pth').stat().st_mtime_ns == before


def test_a_resume_whose_architecture_value_differs_is_refused_naming_the_flag(trained, tmp_path, vgg_weights):
    """The architecture flags a resume must keep are architecture.json's (the record of the networks), not opt.json's."""
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(trained['checkpoints'], checkpoints)
    path = checkpoints / trained['model'] / 'architecture.json'
    record = json.loads(path.read_text())
    flag = 'ngf' if trained['model'] == 'pix2pix' else 'crn_n_images'
    record['flags'][flag] = 5
    path.write_text(json.dumps(record))
    args = [*train_args(trained['model'], checkpoints, trained['dataroot'], vgg_weights), '--continue_train']
    assert_one_line_error(run_tool('train.py', *args), '(architecture.json and opt.json)', f'--{flag} 5 (saved) vs 2 (now)')


def test_resume_with_another_model_is_refused(trained):
    other = 'crn' if trained['model'] == 'pix2pix' else 'pix2pix'
    args = ['--model', other, '--name', trained['model'], '--checkpoints_dir', trained['checkpoints'], '--dataroot', trained['dataroot']]
    assert_one_line_error(run_tool('train.py', *args, *COMMON, '--continue_train'), f'saved with --model {trained["model"]}, not {other}')


def test_export_onnx(trained, tmp_path):
    pytest.importorskip('onnxruntime')
    path = tmp_path / 'g.onnx'
    result = run_tool('test.py', *trained['test_args'], '--export_onnx', path)
    assert result.returncode == 0, result.stderr
    assert path.is_file() and 'Verified with onnxruntime' in result.stdout


@pytest.mark.parametrize('model', ['pix2pix', 'crn'])
def test_amp_bf16_trains_and_fp16_and_pix2pixHD_flags_are_refused(model, tmp_path, dataroot, vgg_weights):
    from builders import build_trainer

    args = train_args(model, tmp_path, dataroot, vgg_weights)
    trainer = build_trainer(TrainOptions(methods=METHODS).parse([*map(str, args), '--amp', 'bf16'], save=False))
    batch = next(iter(build_data(trainer.opt)[1]))
    losses, generated = trainer.train_step(batch, infer=True)
    trainer.check_finite()
    assert generated is not None and generated.dtype == torch.bfloat16  # G ran under bf16 autocast
    assert all(torch.isfinite(value) for value in losses.values())
    assert_one_line_error(run_tool('train.py', *args, '--amp', 'fp16'), '--amp fp16', '--amp bf16')
    for flag in ('--niter_fix_global', '--netG_init', '--instance_feat'):  # pix2pixHD's own flags
        assert_one_line_error(
            run_tool('train.py', *args, flag, *(['1'] if flag == '--niter_fix_global' else [])),
            f'{flag} is a flag of --model pix2pixHD',
            'drop it',
        )
    assert not (tmp_path / model).exists()  # refused before anything was written


@pytest.mark.parametrize('lr', [1e-3, 3e-4])
@pytest.mark.parametrize('model', ['pix2pixHD', 'pix2pix', 'crn'])
def test_the_first_step_moves_g_by_the_given_lr(model, lr, tmp_path, dataroot, vgg_weights):
    """Adam's first step (and TF's, CRN's) moves a weight by lr * g / (|g| + eps): about lr wherever the gradient is not
    float noise, never more. Two lrs, so that an lr hard-coded to the fixtures' 2e-4 (or 1e-4) fails."""
    from builders import build_trainer
    from helpers import TINY

    args = [*map(str, TINY), '--checkpoints_dir', str(tmp_path), '--dataroot', dataroot] if model == 'pix2pixHD' else []
    args = args or list(map(str, train_args(model, tmp_path, dataroot, vgg_weights)))
    trainer = build_trainer(TrainOptions(methods=METHODS).parse([*args, '--lr', str(lr)], save=False))
    before = {key: value.clone() for key, value in trainer.networks()['G'].state_dict().items() if value.dim() == 4}
    trainer.train_step(next(iter(build_data(trainer.opt)[1])))
    after = trainer.networks()['G'].state_dict()
    moved = torch.cat([(after[key] - value).abs().flatten() for key, value in before.items()])
    assert moved.max() <= lr + 1e-7  # Adam's bound, plus the weight's float32 rounding
    assert moved.median() >= 0.9 * lr, moved.median()


@pytest.mark.parametrize('model', ['pix2pix', 'crn'])
def test_compile_applies_to_every_network_of_the_model(model, tmp_path, dataroot, vgg_weights):
    from builders import build_trainer

    args = train_args(model, tmp_path, dataroot, vgg_weights, '--compile')
    trainer = build_trainer(TrainOptions(methods=METHODS).parse(list(map(str, args)), save=False))
    networks = trainer.model.networks_by_name()
    assert networks and all(net._compiled_call_impl is not None for net in networks.values())  # compiled at the first call


def test_the_lr_holds_for_niter_epochs_then_decays_linearly_to_zero(tmp_path, dataroot):
    """train.py calls update_learning_rate after every epoch: the lr stays --lr through --niter, then falls to 0."""
    from builders import build_trainer
    from helpers import TINY

    opt = TrainOptions(methods=METHODS).parse(
        [*map(str, TINY), '--name', 'lr', '--checkpoints_dir', str(tmp_path), '--dataroot', dataroot, '--niter', '3', '--niter_decay', '4'],
        save=False,
    )
    trainer = build_trainer(opt)
    seen = []
    for epoch in range(1, 8):
        trainer.update_learning_rate(epoch)
        seen.append(round(trainer.current_lr / opt.lr, 6))
    assert seen == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert all(group['lr'] == 0.0 for optimizer in trainer.optimizers().values() for group in optimizer.param_groups)


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize('model', ['pix2pix', 'crn'])
def test_help_shows_the_model_group(model):
    result = run_tool('train.py', '--model', model, '--help')
    assert result.returncode == 0
    assert f'{model} model:' in result.stdout
    assert 'crn model:' not in run_tool('train.py', '--help').stdout


@pytest.mark.parametrize('model', list(models.MODELS))
def test_every_training_flag_of_every_model_is_classified_for_resume(model):
    options = TrainOptions(methods=METHODS)
    options.model = model
    dests = {action.dest for action in options.make_parser()._actions if action.dest != 'help'}
    policy = resume_policy(METHODS[model])
    assert dests == set(policy), dests ^ set(policy)
    assert {kind for kind, _ in policy.values()} <= {'must match', 'may change', 'restored'}
    assert all(policy[flag][0] == 'must match' for flag in METHODS[model].architecture_options)


def flags_of(model: str, options_class: type = TrainOptions) -> set:
    """The dests of every flag --model `model` has."""
    options = options_class('', METHODS)
    options.model = model
    return {action.dest for action in options.make_parser()._actions if action.dest != 'help'}


def test_no_pix2pixHD_or_vid2vid_flag_is_named_in_options_the_trainer_base_or_train_py():
    """pix2pixHD and vid2vid are methods among equals: the shared layers name none of the flags only they have, either
    or both (vid2vid takes pix2pixHD's instance features and styles, and has its own --niter_fix_global)."""
    own = set()
    for options_class in (TrainOptions, _TestOptions):
        others = set().union(*(flags_of(model, options_class) for model in METHODS if model not in ('pix2pixHD', 'vid2vid')))
        own |= (flags_of('pix2pixHD', options_class) | flags_of('vid2vid', options_class)) - others
    assert {'niter_fix_global', 'netG_init', 'instance_feat', 'n_styles', 'n_downsample_global'} <= own
    assert {'max_t_step', 'sparse_D', 'max_frames_backpropagate', 'n_frames_G'} <= own
    shared = [*glob.glob(os.path.join(REPO_ROOT, 'options', '*.py')), os.path.join(REPO_ROOT, 'models', 'common', 'trainer_base.py')]
    named = {}
    for path in [*shared, os.path.join(REPO_ROOT, 'train.py')]:
        words = set(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', open(path).read()))
        if words & own:
            named[os.path.relpath(path, REPO_ROOT)] = sorted(words & own)
    assert named == {}


# ----------------------------------------------------------------------------- a fourth method
def test_a_toy_method_is_one_module_and_one_registry_line(monkeypatch, tmp_path):
    """tests/toy_method.py, registered by one line, trains and tests through train.py / test.py on the data it draws
    itself (no --dataroot folder exists), with its own page rows."""
    monkeypatch.setitem(models.MODELS, 'toy', 'toy_method')
    checkpoints, results = tmp_path / 'checkpoints', tmp_path / 'results'
    common = ['--name', 'toy', '--checkpoints_dir', checkpoints, '--dataroot', tmp_path / 'none', '--gpu_ids', '-1']
    result = run_tool('train.py', '--model', 'toy', *common, '--nThreads', '0', '--seed', '0', '--toy_kernel', '1')
    assert result.returncode == 0, result.stderr
    assert 'dataset [SquaresDataset] was created with 4 samples' in result.stdout
    assert 'G_L1' in (checkpoints / 'toy' / 'loss_log.txt').read_text()
    assert json.loads((checkpoints / 'toy' / 'architecture.json').read_text())['architecture'] == {'output_nc': 3, 'kernel': 1}
    assert any(name.endswith('_painted.png') for name in os.listdir(checkpoints / 'toy' / 'web' / 'images'))  # its own row
    result = run_tool('test.py', *common, '--results_dir', results)
    assert result.returncode == 0, result.stderr
    assert 'Taking --model toy' in result.stdout and 'toy_kernel 1' in result.stdout
    page = (results / 'toy' / 'test_latest' / 'index.html').read_text()
    assert 'square_0' in page and 'painted' in page and 'target' in page
    assert 'toy model:' in run_tool('train.py', '--model', 'toy', '--help').stdout
    assert_one_line_error(run_tool('train.py', '--model', 'toy', *common, '--toy_samples', '0'), '--toy_samples 0 must be >= 1')


# ----------------------------------------------------------------------------- the editor
def test_the_editor_paints_and_synthesizes_without_styles(trained):
    """A model without instance features in the editor: a stroke changes the image; there are no styles to pick."""
    from util.editing import EditError
    from web_editor.app import build_app
    from web_editor.options import EditorOptions

    args = [*map(str, trained['test_args']), '--phase', 'test'] + (['--eval'] if trained['model'] == 'pix2pix' else [])
    app = build_app(EditorOptions(methods=METHODS).parse(args, save=False))
    try:
        session = app.session(app.new_session())
        document = session.open_index(0)
        assert not document['styles'] and not app.info()['styles']
        first = session.synthesized(document['version'])[1]
        stroke = session.edit({'op': 'stroke', 'class': 26, 'size': 5, 'points': [[10, 20], [40, 20]]})
        assert session.synthesized(stroke['version'])[1] != first  # the generator saw the new car
        with pytest.raises(EditError, match='no styles'):
            session.download('styles')
    finally:
        app.close()


# ----------------------------------------------------------------------------- evaluate.py
class ChannelSegmenter(torch.nn.Module):
    """A stand-in segmentation network: the three colour channels are the logits of three of the 19 trainIds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, 0, 0, 0, 0, 16))


def test_evaluate_scores_the_results_folder(trained, tmp_path):
    spec = importlib.util.spec_from_file_location('evaluate_script', os.path.join(REPO_ROOT, 'scripts', 'evaluate.py'))
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    seg_model, out = str(tmp_path / 'seg.pt'), tmp_path / 'scores.json'
    torch.jit.script(ChannelSegmenter()).save(seg_model)
    evaluate.main(['--results_dir', str(trained['web']), '--dataroot', trained['dataroot'], '--seg_model', seg_model, '--json', str(out)])
    scores = json.loads(out.read_text())
    assert scores['n_synthesized'] == 1 and 0 <= scores['synthesized']['pixel_accuracy'] <= 1
