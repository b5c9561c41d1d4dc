"""End-to-end tests: training lowers the reconstruction error, train.py writes the reference's files,
the lr schedule, --niter_fix_global, --continue_train (and what a resume says changed), --load_pretrain, and test.py
with its errors (an interrupted rerun never leaves a page mixing two runs)."""

import html.parser
import importlib.util
import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import util.records as records
from builders import build_model, build_trainer
from data.aligned_dataset import AlignedDataset
from helpers import (
    ONE_EPOCH,
    TINY,
    assert_ok,
    assert_one_line_error,
    make_experiment,
    run_test,
    run_tool,
    run_train,
    train_args,
    tree_bytes,
)
from models import METHODS
from models.pix2pixhd.networks import define_G
from models.pix2pixhd.trainer import Pix2PixHDTrainer
from options.base_options import replace
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions
from util.images import label_colormap, tensor2im

HAVE_TENSORBOARD = importlib.util.find_spec('tensorboard') is not None

# The trained experiment 'tiny' here: TINY's 64x32 global model with ngf/ndf 8.
TINY_ARCH = ['--ngf', '8', '--ndf', '8']


class _ImgSources(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'img':
            self.sources.append(attrs['src'])
        if tag == 'a':
            self.links.append(attrs['href'])


def html_images(path):
    parser = _ImgSources()
    with open(path, encoding='utf-8') as handle:
        parser.feed(handle.read())
    return parser


def train_opt(tmp_path, dataroot, *extra):
    args = ['--dataroot', str(dataroot), '--checkpoints_dir', str(tmp_path / 'checkpoints'), *TINY, *extra]
    return TrainOptions('', METHODS).parse([str(a) for a in args], save=False)


def first_batch(opt):
    """Sample 0 of the dataset as a batch of one (no flip: the options say --no_flip or it is absent)."""
    sample = AlignedDataset(opt)[0]
    return {key: (value.unsqueeze(0) if torch.is_tensor(value) else [value]) for key, value in sample.items()}


def write_pair(root, phase, name, label, inst, photo=None):
    for kind, array in (('label', label), ('inst', inst), ('img', photo)):
        if array is None:
            continue
        os.makedirs(os.path.join(root, f'{phase}_{kind}'), exist_ok=True)
        Image.fromarray(array).save(os.path.join(root, f'{phase}_{kind}', f'{name}.png'))


def bad_label_root(root, phase):
    """A 64x32 sample whose label map holds the value 40 (>= the default --label_nc 35)."""
    label = np.full((32, 64), 7, np.uint8)
    label[:, 40:] = 40
    inst = label.astype(np.uint16)
    photo = np.zeros((32, 64, 3), np.uint8)
    write_pair(root, phase, 'bad', label, inst, photo if phase == 'train' else None)
    return root


# ----------------------------------------------------------------------------- the trained tiny experiment
@pytest.fixture(scope='module')
def trained(tmp_path_factory, cityscapes_root):
    """train.py on 2 Cityscapes samples for 3 epochs (--niter 1 --niter_decay 2), saving every epoch."""
    base = tmp_path_factory.mktemp('trained')
    checkpoints = base / 'checkpoints'
    args = [
        '--max_dataset_size',
        '2',
        *TINY_ARCH,
        '--niter',
        '1',
        '--niter_decay',
        '2',
        '--save_epoch_freq',
        '1',
        '--display_freq',
        '1',
        '--print_freq',
        '1',
    ]
    if HAVE_TENSORBOARD:
        args.append('--tf_log')
    result = run_train(checkpoints, cityscapes_root, 'tiny', *args)
    assert_ok(result)
    return {'base': base, 'checkpoints': checkpoints, 'dir': checkpoints / 'tiny', 'result': result, 'dataroot': cityscapes_root}


def test_train_writes_options(trained):
    directory = trained['dir']
    text = (directory / 'opt.txt').read_text()
    assert 'ngf: 8\n' in text and 'n_blocks_global: 1\n' in text and 'niter_decay: 2\n' in text
    saved = json.loads((directory / 'opt.json').read_text())
    assert saved['ngf'] == 8
    assert saved['ndf'] == 8
    assert saved['n_blocks_global'] == 1
    assert saved['netG'] == 'global'
    assert saved['label_nc'] == 35
    assert saved['no_vgg_loss'] is True
    assert saved['name'] == 'tiny'


def test_train_writes_iter_file(trained):
    # np.savetxt((epoch + 1, 0), fmt='%d'): one number per line, after the last (3rd) epoch.
    assert (trained['dir'] / 'iter.txt').read_text() == '4\n0\n'


def test_train_loss_log(trained):
    lines = (trained['dir'] / 'loss_log.txt').read_text().splitlines()
    assert lines[0].startswith('================ Training Loss')
    entries = [line for line in lines if line.startswith('(epoch:')]
    assert len(entries) == 6  # 3 epochs x 2 images, --print_freq 1
    pattern = re.compile(r'\(epoch: (\d+), iters: (\d+), time: [\d.]+\) (.*)')
    seen = []
    for line in entries:
        match = pattern.match(line)
        assert match, line
        seen.append((int(match.group(1)), int(match.group(2))))
        losses = dict(re.findall(r'(\w+): (-?[\d.]+)', match.group(3)))
        assert set(losses) == {'G_GAN', 'G_GAN_Feat', 'D_real', 'D_fake'}  # no G_VGG with --no_vgg_loss
        assert all(math.isfinite(float(v)) and float(v) >= 0 for v in losses.values())
    assert seen == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert 'G_VGG' not in (trained['dir'] / 'loss_log.txt').read_text()


def test_train_web_page_references_existing_images(trained):
    web = trained['dir'] / 'web'
    page = html_images(web / 'index.html')
    assert len(page.sources) == 6 * 3  # --display_freq 1: every step, three visuals
    for source in page.sources + page.links:
        assert source.startswith('images/')
        path = web / source
        assert path.is_file(), source
    assert {s.rsplit('_', 2)[-2] + '_' + s.rsplit('_', 2)[-1] for s in page.sources} == {
        'input_label.png',
        'synthesized_image.png',
        'real_image.png',
    }
    real = Image.open(web / [s for s in page.sources if s.endswith('real_image.png')][0])
    assert real.size == (64, 32)


def test_train_checkpoints_load_with_weights_only(trained):
    directory = trained['dir']
    for which in ('1', '2', '3', 'latest'):
        for net in ('G', 'D'):
            state_dict = torch.load(directory / f'{which}_net_{net}.pth', map_location='cpu', weights_only=True)
            assert isinstance(state_dict, dict) and state_dict
            assert all(isinstance(v, torch.Tensor) and v.device.type == 'cpu' for v in state_dict.values())
            assert not any(key.startswith(('module.', 'netG.', 'netD.')) for key in state_dict)
    netG = torch.load(directory / 'latest_net_G.pth', weights_only=True)
    assert tuple(netG['model.1.weight'].shape) == (8, 36, 7, 7)  # 35 labels + edge map -> ngf 8
    netD = torch.load(directory / 'latest_net_D.pth', weights_only=True)
    assert tuple(netD['scale0_layer0.0.weight'].shape) == (8, 39, 4, 4)  # label + edge + RGB -> ndf 8
    assert 'scale1_layer0.0.weight' in netD and 'scale2_layer0.0.weight' not in netD  # num_D 2
    # latest is the last epoch; training changed the weights between epochs.
    last = torch.load(directory / '3_net_G.pth', weights_only=True)
    first = torch.load(directory / '1_net_G.pth', weights_only=True)
    assert all(torch.equal(netG[k], last[k]) for k in netG)
    assert not torch.equal(first['model.1.weight'], last['model.1.weight'])


def assert_generator_is_the_saved_one(model, trained):
    """Every tensor of the fixture's latest_net_G.pth is in the model's G, equal."""
    saved = torch.load(trained['dir'] / 'latest_net_G.pth', weights_only=True)
    assert all(torch.equal(model.netG.state_dict()[k], saved[k]) for k in saved)


def test_train_checkpoints_load_strictly_into_the_model(trained):
    opt = train_opt(trained['base'], trained['dataroot'], *TINY_ARCH, '--name', 'tiny', '--continue_train')
    opt = replace(opt, checkpoints_dir=str(trained['checkpoints']))
    model = build_model(opt)  # load_network_strict: raises on any key or shape mismatch
    assert_generator_is_the_saved_one(model, trained)


def test_continue_train_resumes_its_own_weights_whatever_load_pretrain_says(trained, tmp_path):
    # A recipe naming --load_pretrain is resumed by appending --continue_train (the reference reloaded the pretrained weights).
    os.makedirs(tmp_path / 'other')
    torch.save(define_G(36, 3, 8, 'global', 2, 1).state_dict(), tmp_path / 'other' / 'latest_net_G.pth')
    opt = train_opt(
        trained['base'], trained['dataroot'], *TINY_ARCH, '--name', 'tiny', '--continue_train', '--load_pretrain', tmp_path / 'other'
    )
    model = build_model(opt)
    assert_generator_is_the_saved_one(model, trained)


def test_continue_train_with_another_netG_init_says_so_and_keeps_the_saved_weights(trained, capsys):
    opt = train_opt(trained['base'], trained['dataroot'], *TINY_ARCH, '--name', 'tiny', '--continue_train', '--netG_init', 'delta')
    assert '--continue_train: --netG_init normal -> delta (may change): only used when G is built from scratch' in capsys.readouterr().out
    model = build_model(opt)
    assert_generator_is_the_saved_one(model, trained)


@pytest.mark.skipif(not HAVE_TENSORBOARD, reason='tensorboard is not installed')
def test_tf_log_writes_events(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = trained['dir'] / 'logs'
    events = [name for name in os.listdir(logs) if name.startswith('events.out.tfevents')]
    assert events
    accumulator = EventAccumulator(str(logs))
    accumulator.Reload()
    scalars = accumulator.Tags()['scalars']
    assert {'G_GAN', 'G_GAN_Feat', 'D_real', 'D_fake'} <= set(scalars)
    assert [event.step for event in accumulator.Scalars('G_GAN')] == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------- lr schedule
def test_lr_schedule_in_saved_training_state(trained):
    lr = 2e-4
    expected = {'1': lr, '2': lr - lr / 2, '3': lr - 2 * lr / 2, 'latest': lr - 2 * lr / 2}
    for which, value in expected.items():
        state = torch.load(trained['dir'] / f'{which}_train_state.pth', map_location='cpu', weights_only=True)
        assert state['lr'] == pytest.approx(value, abs=1e-12), which
        for optimizer in ('optimizer_G', 'optimizer_D'):
            groups = state[optimizer]['param_groups']
            assert groups and all(g['lr'] == pytest.approx(value, abs=1e-12) for g in groups), (which, optimizer)
        assert state['epoch'] == {'1': 2, '2': 3, '3': 4, 'latest': 4}[which]
    stdout = trained['result'].stdout
    assert 'update learning rate: 0.000200 -> 0.000100' in stdout
    assert 'update learning rate: 0.000100 -> 0.000000' in stdout


def test_update_learning_rate_arithmetic(tmp_path, cityscapes_root):
    opt = train_opt(tmp_path, cityscapes_root, '--ngf', '4', '--ndf', '4', '--n_blocks_global', '1', '--lr', '0.001', '--niter_decay', '4')
    trainer = Pix2PixHDTrainer(opt)
    optimizers = (trainer.optimizer_G, trainer.optimizer_D)
    assert all(g['lr'] == 0.001 for o in optimizers for g in o.param_groups)
    for step, expected in enumerate([0.00075, 0.0005, 0.00025, 0.0], start=1):
        trainer.update_learning_rate(opt.niter + step)
        assert trainer.current_lr == pytest.approx(expected, abs=1e-12), step
        assert all(g['lr'] == pytest.approx(expected, abs=1e-12) for o in optimizers for g in o.param_groups)
    assert all(g['betas'] == (0.5, 0.999) for o in optimizers for g in o.param_groups)


# ----------------------------------------------------------------------------- overfitting
def test_training_lowers_reconstruction_error(tmp_path, cityscapes_root):
    opt = train_opt(
        tmp_path,
        cityscapes_root,
        '--loadSize',
        '128',
        '--ngf',
        '8',
        '--ndf',
        '8',
        '--n_blocks_global',
        '1',
        '--serial_batches',
        '--no_flip',
        '--max_dataset_size',
        '1',
    )
    torch.manual_seed(0)
    batch = first_batch(opt)
    assert tuple(batch['image'].shape) == (1, 3, 64, 128)
    trainer = Pix2PixHDTrainer(opt)

    def l1():
        fake = trainer.model.inference(batch['label'], batch['inst'])
        assert fake.shape == batch['image'].shape
        return float((fake - batch['image']).abs().mean())

    before = l1()
    for _ in range(30):
        losses, _ = trainer.train_step(batch)
        assert all(torch.isfinite(v) for v in losses.values())
    after = l1()
    assert after < 0.7 * before, (before, after)


# ----------------------------------------------------------------------------- --niter_fix_global
def test_niter_fix_global_trains_only_the_local_enhancer(tmp_path, cityscapes_root):
    # 128x64: the global part sees 64x32 and keeps a 4x2 bottleneck after 4 downsamplings.
    opt = train_opt(
        tmp_path,
        cityscapes_root,
        '--loadSize',
        '128',
        '--netG',
        'local',
        '--ngf',
        '4',
        '--ndf',
        '4',
        '--n_blocks_global',
        '1',
        '--n_blocks_local',
        '1',
        '--niter_fix_global',
        '1',
        '--no_flip',
        '--max_dataset_size',
        '1',
    )
    torch.manual_seed(0)
    batch = first_batch(opt)
    trainer = Pix2PixHDTrainer(opt)
    netG = trainer.model.netG
    names = [name for name, _ in netG.named_parameters()]
    assert any(n.startswith('model.') for n in names) and any(n.startswith('model1_') for n in names)

    def changed_after_step():
        before = {name: value.detach().clone() for name, value in netG.named_parameters()}
        trainer.train_step(batch)
        return {name for name, value in netG.named_parameters() if not torch.equal(before[name], value.detach())}

    changed = changed_after_step()
    assert changed and all(name.startswith('model1_') for name in changed), sorted(changed)
    assert 'model1_1.1.weight' in changed and 'model1_2.0.conv_block.1.weight' in changed
    assert {id(p) for p in trainer.params_G} == {id(p) for n, p in netG.named_parameters() if n.startswith('model1_')}

    trainer.update_fixed_params()
    changed = changed_after_step()
    assert 'model.1.weight' in changed  # the global generator trains now
    assert any(name.startswith('model1_') for name in changed)
    assert len(trainer.params_G) == len(names)


def test_train_py_fixes_the_global_generator_for_niter_fix_global_epochs(tmp_path, cityscapes_root):
    # A reference-format global generator (TINY's, ngf 8) as the pretrained one: the local enhancer's
    # global part (--ngf 4 doubled) starts from it.
    os.makedirs(tmp_path / 'pretrain')
    torch.manual_seed(0)
    pretrained = define_G(36, 3, 8, 'global', 2, 1).state_dict()
    torch.save(pretrained, tmp_path / 'pretrain' / 'latest_net_G.pth')
    result = run_train(
        tmp_path,
        cityscapes_root,
        'fix',
        '--netG',
        'local',
        '--n_blocks_local',
        '1',
        '--load_pretrain',
        tmp_path / 'pretrain',
        '--niter_fix_global',
        '1',
        '--niter',
        '2',
        '--niter_decay',
        '0',
        '--save_epoch_freq',
        '1',
        '--max_dataset_size',
        '1',
    )
    assert_ok(result)
    after = {epoch: torch.load(tmp_path / 'fix' / f'{epoch}_net_G.pth', weights_only=True) for epoch in (1, 2)}
    global_keys = [key for key in after[1] if key.startswith('model.')]
    assert len(global_keys) >= 10 and set(global_keys) <= set(pretrained)  # all but the global model's last conv
    # epoch 1: only the enhancer trains, the global part is exactly the pretrained one
    assert all(torch.equal(after[1][key], pretrained[key]) for key in global_keys)
    # epoch 2: the whole generator trains
    assert all(not torch.equal(after[2][key], after[1][key]) for key in global_keys if key.endswith('weight'))
    assert all(not torch.equal(after[2][key], after[1][key]) for key in after[1] if key.startswith('model1_'))


# ----------------------------------------------------------------------------- --load_pretrain
def test_load_pretrain_copies_the_global_generator_into_a_local_one(tmp_path, trained, capsys):
    pretrain_dir = str(trained['dir'])
    opt = train_opt(
        tmp_path,
        trained['dataroot'],
        '--netG',
        'local',
        '--ngf',
        '4',
        '--ndf',
        '8',
        '--n_blocks_global',
        '1',
        '--load_pretrain',
        pretrain_dir,
    )
    capsys.readouterr()
    model = build_model(opt)
    out = capsys.readouterr().out
    pretrained = torch.load(os.path.join(pretrain_dir, 'latest_net_G.pth'), weights_only=True)
    own = model.netG.state_dict()
    global_keys = [key for key in own if key.startswith('model.')]
    local_keys = [key for key in own if not key.startswith('model.')]
    assert global_keys and local_keys
    for key in global_keys:  # the local enhancer's global part has the 512p model's keys and shapes
        assert torch.equal(own[key], pretrained[key]), key
    for key in local_keys:
        assert key not in pretrained
    line = next(line for line in out.splitlines() if 'network G copied' in line)
    assert f'copied {len(global_keys)} tensors' in line
    assert f'{len(local_keys)} left initialised' in line
    assert line.endswith('in: model1_1, model1_2')
    assert '--load_pretrain: network D loaded every tensor' in out  # same ndf and num_D
    pretrained_D = torch.load(os.path.join(pretrain_dir, 'latest_net_D.pth'), weights_only=True)
    assert all(torch.equal(model.netD.state_dict()[k], pretrained_D[k]) for k in pretrained_D)


def test_load_pretrain_through_train_py(tmp_path, trained):
    result = run_train(
        tmp_path,
        trained['dataroot'],
        'local',
        '--max_dataset_size',
        '1',
        '--loadSize',
        '128',
        '--netG',
        'local',
        '--ngf',
        '4',
        '--ndf',
        '8',
        '--n_blocks_global',
        '1',
        '--load_pretrain',
        trained['dir'],
        *ONE_EPOCH,
        '--save_epoch_freq',
        '1',
    )
    assert_ok(result)
    assert re.search(
        r'--load_pretrain: network G copied \d+ tensors from .*latest_net_G\.pth; \d+ left initialised, in: '
        r'model1_1, model1_2',
        result.stdout,
    ), result.stdout[-3000:]
    assert (tmp_path / 'local' / '1_net_G.pth').is_file()


# ----------------------------------------------------------------------------- --continue_train
def test_continue_train_resumes_from_iter_file(tmp_path, cityscapes_root):
    common = ['--max_dataset_size', '1', *TINY_ARCH, '--save_epoch_freq', '1', '--print_freq', '1', '--niter_decay', '0']
    assert_ok(run_train(tmp_path, cityscapes_root, 'resume', *common, '--niter', '1'))
    directory = tmp_path / 'resume'
    assert (directory / 'iter.txt').read_text() == '2\n0\n'
    first_G = torch.load(directory / '1_net_G.pth', weights_only=True)
    assert not (directory / '2_net_G.pth').exists()

    result = run_train(tmp_path, cityscapes_root, 'resume', *common, '--niter', '2', '--continue_train')
    assert_ok(result)
    assert 'Resuming from epoch 2 at iteration 0' in result.stdout
    assert 'Restored optimisers' in result.stdout
    assert 'End of epoch 2 / 2' in result.stdout
    assert 'End of epoch 1 /' not in result.stdout  # epoch 1 is not trained again
    log = (directory / 'loss_log.txt').read_text()
    assert log.count('================ Training Loss') == 2  # appended, not overwritten
    assert len(re.findall(r'^\(epoch: 1, ', log, re.M)) == 1
    assert len(re.findall(r'^\(epoch: 2, ', log, re.M)) == 1
    assert (directory / '2_net_G.pth').is_file()
    assert (directory / 'iter.txt').read_text() == '3\n0\n'
    # The run started from epoch 1's weights: they are unchanged on disk, and epoch 2 moved on from them.
    assert all(torch.equal(first_G[k], v) for k, v in torch.load(directory / '1_net_G.pth', weights_only=True).items())
    second_G = torch.load(directory / '2_net_G.pth', weights_only=True)
    assert not torch.equal(first_G['model.1.weight'], second_G['model.1.weight'])
    # One Adam step from epoch 1's weights changes each weight by at most ~lr.
    assert float((first_G['model.1.weight'] - second_G['model.1.weight']).abs().max()) < 5e-4


# Resuming says what changed: a new --lr restarts the decay, a restored flag and an --amp change are noted.
def schedule_trainer(tmp_path, dataroot, *extra) -> Pix2PixHDTrainer:
    args = train_args(tmp_path, dataroot, 'exp', '--niter', '1', '--niter_decay', '4', *extra)
    return build_trainer(TrainOptions('', METHODS).parse(args, save=False))  # train.py saves the options after building


def test_a_new_lr_on_resume_restarts_the_linear_decay_and_never_goes_negative(tmp_path, dataroot, capsys):
    trainer = schedule_trainer(tmp_path, dataroot)
    records.save_options(trainer.opt)
    for epoch in (1, 2):  # end of epochs 1 and 2: lr 0.0002 -> 0.00015
        if epoch > trainer.opt.niter:
            trainer.update_learning_rate(epoch)
    assert trainer.current_lr == pytest.approx(0.00015)
    trainer.save('latest', 3, 0)
    capsys.readouterr()
    resumed = schedule_trainer(tmp_path, dataroot, '--continue_train', '--lr', '0.001')
    notes = capsys.readouterr().out
    assert '--lr 0.0002 -> 0.001' in notes and 'lr 0.00075 from epoch 3' in notes
    assert resumed.current_lr == pytest.approx(0.00075)  # the new schedule at epoch 3: 0.001 * (1 - 1/4)
    rates = []
    for epoch in (3, 4, 5, 6, 7):
        resumed.update_learning_rate(epoch)
        rates.append(resumed.current_lr)
    assert rates == pytest.approx([0.0005, 0.00025, 0.0, 0.0, 0.0]) and min(rates) >= 0
    assert all(group['lr'] >= 0 for group in resumed.optimizer_G.param_groups)


def test_a_flag_restored_from_the_checkpoint_is_said_so(tmp_path, dataroot, capsys):
    make_experiment(tmp_path / 'checkpoints', dataroot)
    capsys.readouterr()
    build_trainer(TrainOptions('', METHODS).parse(train_args(tmp_path / 'checkpoints', dataroot, 'exp', '--continue_train', '--seed', '7')))
    assert '--seed 0 -> 7' in capsys.readouterr().out


@pytest.mark.parametrize('before, after', [('off', 'fp16'), ('fp16', 'off'), ('bf16', 'fp16'), ('fp16', 'bf16')])
def test_an_amp_change_on_resume_works(tmp_path, dataroot, before, after, capsys):
    trainer, _, folder = make_experiment(tmp_path / 'checkpoints', dataroot, '--amp', before)
    args = train_args(tmp_path / 'checkpoints', dataroot, 'exp', '--continue_train', '--amp', after)
    resumed = build_trainer(TrainOptions('', METHODS).parse(args))
    assert resumed.scaler_G.is_enabled() == (after == 'fp16')
    assert f'--amp {before} -> {after}' in capsys.readouterr().out


# ----------------------------------------------------------------------------- test.py
@pytest.fixture(scope='module')
def tested(trained, tmp_path_factory):
    """test.py on the first 3 Cityscapes test maps, architecture flags taken from opt.json."""
    results = tmp_path_factory.mktemp('results')
    result = run_test(trained['checkpoints'], trained['dataroot'], 'tiny', '--results_dir', results, '--how_many', '3')
    assert_ok(result)
    return {'results': results, 'result': result, 'web': results / 'tiny' / 'test_latest'}


def _first_test_names(cityscapes_root, n=3):
    names = sorted(os.listdir(os.path.join(cityscapes_root, 'test_label')))[:n]
    return [os.path.splitext(name)[0] for name in names]


def test_test_py_takes_architecture_flags_from_the_record_of_the_networks(tested, trained):
    stdout = tested['result'].stdout
    line = next(line for line in stdout.splitlines() if line.startswith('Taking architecture flags from'))
    assert str(trained['dir'] / 'architecture.json') in line
    assert '--ngf 8' in line and '--n_blocks_global 1' in line


def test_an_experiment_without_the_record_takes_its_flags_from_opt_json(trained, tmp_path, capsys):
    """Experiments written before architecture.json carried its flags still load: opt.json holds every flag."""
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(trained['dir'], checkpoints / 'tiny')
    record = json.loads((checkpoints / 'tiny' / 'architecture.json').read_text())
    del record['flags']  # as train.py wrote it before
    (checkpoints / 'tiny' / 'architecture.json').write_text(json.dumps(record))
    opt = _TestOptions('', METHODS).parse(['--name', 'tiny', '--checkpoints_dir', str(checkpoints), '--gpu_ids', '-1'], save=False)
    assert (opt.ngf, opt.n_blocks_global) == (8, 1)
    assert f'Taking architecture flags from {checkpoints / "tiny" / "opt.json"}' in capsys.readouterr().out


def test_test_py_writes_images_and_page(tested, cityscapes_root):
    web = tested['web']
    images = web / 'images'
    names = _first_test_names(cityscapes_root)
    expected = {f'{name}_{kind}.png' for name in names for kind in ('input_label', 'synthesized_image')}
    assert set(os.listdir(images)) == expected  # --how_many 3: exactly three inputs
    palette = {tuple(colour) for colour in label_colormap(35).tolist()}
    for file_name in expected:
        image = Image.open(images / file_name)
        assert image.format == 'PNG' and image.mode == 'RGB'
        assert image.size == (64, 32)  # loadSize x loadSize/2 for 2048x1024 inputs
        if file_name.endswith('_input_label.png'):
            colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3).tolist()}
            assert colours <= palette and len(colours) > 1
    page = html_images(web / 'index.html')
    assert set(page.sources) == {f'images/{name}' for name in expected}
    text = (web / 'index.html').read_text()
    assert all(name in text for name in names)  # a header per input


def test_test_py_output_matches_the_model(tested, trained, cityscapes_root):
    """The synthesized PNG is the trained generator's output on the preprocessed label map."""
    opt = _TestOptions('', METHODS).parse(
        [
            '--name',
            'tiny',
            '--checkpoints_dir',
            str(trained['checkpoints']),
            '--dataroot',
            str(cityscapes_root),
            '--loadSize',
            '64',
            '--gpu_ids',
            '-1',
        ],
        save=False,
    )
    assert opt.ngf == 8 and opt.n_blocks_global == 1
    model = build_model(opt)
    sample = AlignedDataset(opt)[0]
    generated = model.inference(sample['label'][None], sample['inst'][None])
    expected = tensor2im(generated[0])
    name = _first_test_names(cityscapes_root, 1)[0]
    written = np.asarray(Image.open(tested['web'] / 'images' / f'{name}_synthesized_image.png'))
    assert written.shape == expected.shape == (32, 64, 3)
    assert int(np.abs(written.astype(int) - expected.astype(int)).max()) <= 1


def test_test_py_conflicting_architecture_flag(trained, tmp_path):
    result = run_test(trained['checkpoints'], trained['dataroot'], 'tiny', '--results_dir', tmp_path, '--how_many', '1', '--ngf', '16')
    assert_one_line_error(result, '--ngf', 'latest_net_G.pth')
    assert not (tmp_path / 'tiny' / 'test_latest' / 'index.html').exists()


def test_test_py_missing_epoch_lists_the_available_ones(trained, tmp_path):
    result = run_test(trained['checkpoints'], trained['dataroot'], 'tiny', '--results_dir', tmp_path, '--which_epoch', '7')
    line = assert_one_line_error(result, 'available', '7_net_G.pth')
    assert re.search(r'available: --which_epoch 1, 2, 3, latest', line), line


def test_test_py_label_value_not_below_label_nc(trained, tmp_path):
    root = bad_label_root(str(tmp_path / 'data'), 'test')
    result = run_test(trained['checkpoints'], root, 'tiny', '--results_dir', tmp_path / 'results')
    assert_one_line_error(result, 'bad.png', 'label value 40', '--label_nc 41')


def test_test_py_missing_dataroot(trained, tmp_path):
    missing = tmp_path / 'nowhere'
    result = run_test(trained['checkpoints'], missing, 'tiny', '--results_dir', tmp_path)
    assert_one_line_error(result, str(missing / 'test_label'), '--dataroot')


@pytest.fixture(scope='module')
def two_test_images(tmp_path_factory):
    from data.synthetic import make_synthetic_dataset

    root = str(tmp_path_factory.mktemp('two'))
    make_synthetic_dataset(root, n_train=2, n_test=2, width=64, height=32, seed=1)
    return root


def test_an_interrupted_rerun_of_test_py_never_leaves_a_page_mixing_two_runs(tmp_path, two_test_images, monkeypatch):
    trainer, _, _ = make_experiment(tmp_path / 'checkpoints', two_test_images)
    results = tmp_path / 'results'
    args = [tmp_path / 'checkpoints', two_test_images, 'exp', '--nThreads', '0', '--results_dir', results]
    assert run_test(*args).returncode == 0
    page = results / 'exp' / 'test_latest'
    first = tree_bytes(page)
    with torch.no_grad():
        for tensor in trainer.model.netG.parameters():
            tensor.add_(0.5)
    trainer.save('latest', 2, 0)

    from util.visualizer import Visualizer

    original, calls = Visualizer.save_images, []

    def killed_on_the_second_image(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Visualizer, 'save_images', killed_on_the_second_image)
    with pytest.raises(KeyboardInterrupt):
        run_test(*args)
    assert tree_bytes(page) == first  # the first run's page, whole
    monkeypatch.undo()
    assert run_test(*args).returncode == 0
    second = tree_bytes(page)
    assert second.keys() == first.keys() and second != first
    assert os.listdir(results / 'exp') == ['test_latest']


def test_train_py_label_value_not_below_label_nc(tmp_path):
    root = bad_label_root(str(tmp_path / 'data'), 'train')
    # --nThreads 1: the error is raised in a DataLoader worker and re-raised in the main process.
    result = run_train(tmp_path / 'checkpoints', root, 'bad', *TINY_ARCH, '--nThreads', '1', *ONE_EPOCH)
    assert_one_line_error(result, 'bad.png', 'label value 40', '--label_nc 41')


def test_train_py_missing_dataroot(tmp_path):
    missing = tmp_path / 'nowhere'
    result = run_train(tmp_path / 'checkpoints', missing, 'none', *TINY_ARCH)
    assert_one_line_error(result, str(missing / 'train_label'), '--dataroot')


def test_debug_flag_runs_one_epoch_showing_every_iteration(tmp_path, cityscapes_root):
    # TINY's flags but --seed: spelled out rather than run_train, which would add --seed 0.
    result = run_tool(
        'train.py',
        '--name',
        'dbg',
        '--dataroot',
        cityscapes_root,
        '--checkpoints_dir',
        tmp_path,
        '--debug',
        '--gpu_ids',
        '-1',
        '--loadSize',
        '64',
        '--ngf',
        '4',
        '--ndf',
        '4',
        '--n_blocks_global',
        '1',
        '--n_downsample_global',
        '2',
        '--no_vgg_loss',
        '--nThreads',
        '0',
    )
    assert_ok(result)
    with open(tmp_path / 'dbg' / 'loss_log.txt') as handle:
        iterations = [line for line in handle if line.startswith('(epoch')]
    # --debug: niter 1, niter_decay 0, at most 10 images (8 samples here), print and display every iteration
    assert [line.split(',')[0] for line in iterations] == ['(epoch: 1'] * 8
    assert len(os.listdir(tmp_path / 'dbg' / 'web' / 'images')) == 8 * 3
    assert 'End of epoch 1 / 1' in result.stdout
