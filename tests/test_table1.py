"""scripts/table1.py end to end at a tiny size, and the segmentation net it scores with (scripts/train_seg_net.py)."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from data.synthetic import make_synthetic_dataset
from helpers import REPO_ROOT, assert_one_line_error, run_tool
from util import metrics
from util.errors import TrainingError

pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning')  # torch >= 2.10 marks TorchScript deprecated

TABLE1 = os.path.join('scripts', 'table1.py')
EVALUATE = os.path.join('scripts', 'evaluate.py')
ROWS = ['pix2pix', 'CRN', 'pix2pixHD (ours)', 'Oracle (real images)']


def scores_of(results_dir, dataroot, seg_model, *extra) -> dict:
    """evaluate.py's JSON for one results folder, run as the user runs it (in this process)."""
    out = os.path.join(os.path.dirname(str(results_dir)), 'scores.json')
    result = run_tool(EVALUATE, '--results_dir', results_dir, '--dataroot', dataroot, '--seg_model', seg_model,
                            '--gpu_ids', '-1', '--nThreads', '0', '--json', out, *extra)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out) as handle:
        return json.load(handle)


@pytest.fixture(scope='module')
def segmented(tmp_path_factory):
    """Synthetic scenes at 64x32 and the segmentation net trained on their training renders."""
    import importlib.util

    root = tmp_path_factory.mktemp('seg')
    dataroot = str(root / 'data')
    make_synthetic_dataset(dataroot, n_train=8, n_test=3, width=64, height=32, seed=0)
    spec = importlib.util.spec_from_file_location('train_seg_net_script', os.path.join(REPO_ROOT, 'scripts', 'train_seg_net.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seg_model = str(root / 'seg.pt')
    scores = module.main(['--dataroot', dataroot, '--out', seg_model, '--iters', '60', '--seed', '0'])
    return {'root': root, 'dataroot': dataroot, 'seg_model': seg_model, 'scores': scores}


def fake_results(folder, dataroot, paint) -> str:
    """A results folder as test.py writes it, each test layout's image made by paint(real photo)."""
    images = folder / 'images'
    images.mkdir(parents=True)
    for name in sorted(os.listdir(os.path.join(dataroot, 'test_label'))):
        base = name[: -len('.png')]
        photo = np.asarray(Image.open(os.path.join(dataroot, 'test_img', base.replace('gtFine_labelIds', 'leftImg8bit') + '.png')))
        Image.fromarray(paint(photo)).save(images / f'{base}_synthesized_image.png')
    return str(folder)


def test_seg_net_scores_real_renders_high_and_a_blank_image_low(segmented, tmp_path):
    """The upper-bound row is near perfect on the real test renders; a grey image (no scene at all) scores low."""
    assert segmented['scores']['test_accuracy'] > 0.9
    dataroot, seg = segmented['dataroot'], segmented['seg_model']
    real = scores_of(fake_results(tmp_path / 'copies', dataroot, lambda photo: photo), dataroot, seg, '--real')
    assert real['real']['pixel_accuracy'] > 0.9 and real['real']['mean_iou'] > 0.5
    assert real['synthesized'] == real['real']  # a copy of the photos scores as the photos do
    blank = scores_of(fake_results(tmp_path / 'blank', dataroot, lambda photo: np.full_like(photo, 128)), dataroot, seg)
    assert blank['synthesized']['pixel_accuracy'] < 0.5 and blank['synthesized']['mean_iou'] < 0.2


def test_table1_end_to_end_and_rescore(tmp_path, monkeypatch):
    """Three methods trained with the same iterations, scored by evaluate.py, the table, JSON and one page; --skip_train rescores."""
    out = tmp_path / 't1'
    args = ['--out', out, '--width', '64', '--height', '32', '--n_train', '2', '--n_test', '2', '--epochs', '2', '--seg_iters', '20']
    result = run_tool(TABLE1, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith('Table 1 on the synthetic street scenes'))
    assert '64x32' in lines[header] and '4 iterations' in lines[header]
    assert lines[header + 1].split()[:4] == ['Pixel', 'acc', '(%)', 'Mean']
    assert [line[:24].strip() for line in lines[header + 2 : header + 6]] == ROWS  # the paper's order, the oracle last
    assert lines[header + 6].startswith("* CRN's VGG19 loss ran on randomly initialised weights")

    report = json.loads((out / 'table1.json').read_text())
    assert list(report['rows']) == ROWS and report['iterations_per_method'] == 4
    for method, name in (('pix2pix', 'pix2pix'), ('crn', 'CRN'), ('pix2pixHD', 'pix2pixHD (ours)')):
        # each row is evaluate.py's score of that method's own test.py results folder
        scored = json.loads((out / 'scores' / f'{method}.json').read_text())
        assert scored['results_dir'] == str(out / 'results' / method / 'test_latest') and scored['n_synthesized'] == 2
        assert scored['method'] == name
        assert report['rows'][name]['pixel_accuracy'] == scored['synthesized']['pixel_accuracy']
        assert report['rows'][name]['mean_iou'] == scored['synthesized']['mean_iou']
        assert report['train_cpu_seconds'][name] > 0
        # the same epochs for every method: iter.txt-free check through the saved options
        saved = json.loads((out / 'checkpoints' / method / 'opt.json').read_text())
        assert saved['model'] == method and saved['niter'] + saved['niter_decay'] == 2
    oracle = json.loads((out / 'scores' / 'pix2pix.json').read_text())['real']
    assert report['rows']['Oracle (real images)']['pixel_accuracy'] == oracle['pixel_accuracy']
    assert 0 <= report['rows']['pix2pix']['pixel_accuracy'] <= 1

    page = (out / 'index.html').read_text()
    for column in ('label map', 'real render', 'pix2pix', 'CRN', 'pix2pixHD (ours)'):
        assert f'>{column}<' in page
    shown = sorted(os.listdir(out / 'images'))
    assert len(shown) == 2 * 5 and all(f'images/{name}' in page for name in shown)
    assert sum(name.endswith('_crn.png') for name in shown) == 2

    result = run_tool(TABLE1, *args, '--skip_train')
    assert result.returncode == 0, result.stderr[-3000:]
    rescored = json.loads((out / 'table1.json').read_text())
    assert rescored['rows'] == report['rows']  # the same checkpoints and seg net give the same table
    assert not any(step.startswith('train') or step == 'seg_net' for step in rescored['step_cpu_seconds'])

    # --inception_weights reaches evaluate.py's --fid for every method and adds FID and KID columns. The Inception
    # itself is stubbed (tests/test_evaluate.py checks FID and KID against torch-fidelity; a random one costs 12 s here).
    monkeypatch.setattr(metrics, 'load_inception', lambda weights, dims, device: weights)
    fid_runs = []
    evaluate = sys.modules['table1_evaluate']  # evaluate.py as table1.py imported it
    monkeypatch.setattr(evaluate, 'inception_scores', lambda model, *args: fid_runs.append(model) or {'fid': 12.5, 'kid': 0.25})
    result = run_tool(TABLE1, *args, '--skip_train', '--inception_weights', out / 'seg_net.pt')
    assert result.returncode == 0, result.stderr[-3000:]
    assert fid_runs == [str(out / 'seg_net.pt')] * 3
    lines = result.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.lstrip().startswith('Pixel acc'))
    assert lines[header].split()[3:7] == ['Mean', 'IoU', 'FID', 'KID']
    assert all(line.split()[-3:-1] == ['12.50', '0.2500'] for line in lines[header + 1 : header + 4])
    assert lines[header + 4].split()[-3:] == ['-', '-', '-']  # the oracle row has no FID


@pytest.mark.parametrize(
    'args, fragments',
    [
        (['--width', '96', '--height', '48'], ['--width 96 --height 48', 'power of two']),
        (['--epochs', '0'], ['--epochs 0 must be at least 1']),
        (['--vgg_weights', 'missing.pth'], ['--vgg_weights missing.pth: file not found']),
    ],
)
def test_table1_bad_flags_are_one_line(args, fragments, tmp_path):
    result = run_tool(TABLE1, '--out', tmp_path / 'x', *args)
    assert_one_line_error(result, *fragments)


def test_out_naming_a_file_is_one_line(tmp_path):
    (tmp_path / 'taken').write_text('x')
    assert_one_line_error(run_tool(TABLE1, '--out', tmp_path / 'taken', '--width', '64', '--height', '32'), 'taken is a file')


def _table1_module():
    """scripts/table1.py as a module (its steps call the entry points' main() in this process)."""
    spec = importlib.util.spec_from_file_location('table1_under_test', os.path.join(REPO_ROOT, TABLE1))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_training_stopped_by_a_signal_stops_the_table(tmp_path, monkeypatch):
    """Ctrl-C stops train.py's main() after a save (it returns False): table1 stops there, scoring and publishing nothing."""
    table1 = _table1_module()
    monkeypatch.setattr(table1._script('train.py'), 'main', lambda: False)  # as train.py returns when a signal stopped it
    with pytest.raises(TrainingError, match=r'training pix2pix was stopped before its 2 epochs .*nothing was scored or published'):
        table1.main(['--out', str(tmp_path / 'out'), '--width', '64', '--height', '32', '--n_train', '2', '--n_test', '1', '--epochs', '2'])
    assert not (tmp_path / 'out' / 'table1.json').exists() and not (tmp_path / 'out' / 'index.html').exists()


def test_skip_train_refuses_settings_the_saved_models_never_had(tmp_path):
    """--skip_train with other --epochs / --seed / --width than the runs recorded would publish a table of runs that never
    happened (and draw other scenes): refused, naming each, before anything is drawn."""
    for method in ('pix2pix', 'crn', 'pix2pixHD'):
        folder = tmp_path / 'out' / 'checkpoints' / method
        folder.mkdir(parents=True)
        (folder / 'opt.json').write_text(json.dumps({'niter': 12, 'niter_decay': 12, 'seed': 0, 'loadSize': 128}))
    result = run_tool(TABLE1, '--out', tmp_path / 'out', '--skip_train', '--epochs', '30', '--seed', '1')
    assert_one_line_error(result, '--skip_train: pix2pix', '--epochs 24 (trained) vs 30 (given)', '--seed 0 (trained) vs 1 (given)')
    assert not (tmp_path / 'out' / 'data').exists()


def test_skip_train_without_a_run_is_one_line(tmp_path):
    result = run_tool(TABLE1, '--out', tmp_path / 'x', '--width', '64', '--height', '32', '--skip_train')
    assert_one_line_error(result, '--skip_train', 'run without --skip_train')
