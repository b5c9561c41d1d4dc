"""test.py --export_onnx (onnxruntime equals PyTorch on two sizes, global and local G), the results page with
the real photos beside the synthesized images, and the loss curves on the training page."""

import argparse
import copy
import html.parser
import importlib.util
import os
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from builders import build_model
from data.aligned_dataset import AlignedDataset, pair_key
from data.synthetic import make_synthetic_dataset
from helpers import REPO_ROOT, assert_ok, assert_one_line_error, run_tool
from models import METHODS
from models.common import onnx_export
from models.pix2pixhd.networks import define_G
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from util.checkpoint import save_network
from util.errors import ModelError
from util.html import PAGE_WIDTH, display_width
from util.visualizer import Visualizer, loss_curve_svg, nice_ticks, read_loss_log

HAVE_ONNX = all(importlib.util.find_spec(name) is not None for name in ('onnx', 'onnxruntime'))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='pip install onnx onnxruntime')

# Tiny generators (random weights saved as a checkpoint; no opt.json, so test.py takes these flags).
GLOBAL_FLAGS = [
    '--gpu_ids',
    '-1',
    '--nThreads',
    '0',
    '--ngf',
    '4',
    '--n_blocks_global',
    '1',
    '--n_downsample_global',
    '2',
    '--loadSize',
    '64',
]
# The local enhancer needs loadSize >= 128 (its global part sees the input at half size).
LOCAL_FLAGS = [
    '--gpu_ids',
    '-1',
    '--nThreads',
    '0',
    '--ngf',
    '4',
    '--n_blocks_global',
    '1',
    '--n_downsample_global',
    '2',
    '--netG',
    'local',
    '--n_local_enhancers',
    '1',
    '--n_blocks_local',
    '1',
    '--loadSize',
    '128',
]
NETWORKS = {
    'global': (GLOBAL_FLAGS, lambda: define_G(36, 3, 4, 'global', 2, 1)),
    'local': (LOCAL_FLAGS, lambda: define_G(36, 3, 4, 'local', 2, 1, 1, 1)),
}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Two synthetic 128x64 test triples (label, inst, photo) and checkpoints of a tiny global and local G."""
    base = tmp_path_factory.mktemp('onnx_pages')
    root = base / 'data'
    make_synthetic_dataset(str(root), n_train=0, n_test=2, width=128, height=64, seed=1)
    checkpoints = base / 'checkpoints'
    torch.manual_seed(0)
    for name, (_, build) in NETWORKS.items():
        (checkpoints / name).mkdir(parents=True)
        save_network(build(), str(checkpoints / name / 'latest_net_G.pth'))
    return {'base': base, 'root': root, 'checkpoints': checkpoints}


def make_opt(setup, name, *extra, dataroot=None):
    flags = NETWORKS[name][0]
    return _TestOptions('', METHODS).parse(
        ['--name', name, '--checkpoints_dir', str(setup['checkpoints']), '--dataroot', str(dataroot or setup['root']), *flags, *extra],
        save=False,
    )


def first_batch(opt):
    sample = AlignedDataset(opt)[0]
    return {key: (value.unsqueeze(0) if torch.is_tensor(value) else [value]) for key, value in sample.items()}


# ----------------------------------------------------------------------------- ONNX
@needs_onnx
@pytest.mark.parametrize('name', ['global', 'local'])
def test_onnx_matches_pytorch_on_two_sizes(setup, name, tmp_path, capsys):
    import onnx
    import onnxruntime

    opt = make_opt(setup, name)
    model = build_model(opt)
    data = first_batch(opt)
    path = str(tmp_path / 'sub' / f'{name}.onnx')
    results = onnx_export.export_generator(model, data, path, opt.size_base)
    out = capsys.readouterr().out
    assert f'to {path}' in out and 'max abs difference' in out

    # The file is a valid ONNX model with symbolic batch, height and width.
    onnx.checker.check_model(path)
    graph = onnx.load(path).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 36, 'height', 'width']
    assert not [f for f in os.listdir(tmp_path / 'sub') if f != f'{name}.onnx']  # no temporary left behind

    # The export's own report: two checks, within tolerance, the second at another batch and size.
    assert len(results) == 2 and all(diff <= 1e-4 for _, diff in results)
    height = 32 if name == 'global' else 64
    assert results[0][0] == f'1x36x{height}x{2 * height}' and results[1][0] == f'2x36x{height // 2}x{height}'

    # Independently: onnxruntime against the model's own inference, on the real input and another size.
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    netG = copy.deepcopy(model.netG).eval()
    full = onnx_export.generator_input(model, data)
    expected = model.inference(data['label'], data['inst'])
    assert full.shape == (1, 36, height, 2 * height)
    for inputs, reference in (
        (full, expected),
        (full[:, :, : height // 2, height // 2 :], None),
        (torch.cat([full, full.flip(2)], 2)[:, :, :, :height], None),
    ):
        got = session.run(None, {'input': inputs.numpy()})[0]
        if reference is None:
            with torch.no_grad():
                reference = netG(inputs)
        assert got.shape == tuple(reference.shape)
        assert float(np.abs(got - reference.numpy()).max()) <= 1e-4


@needs_onnx
def test_onnx_mismatch_is_a_clear_error_and_leaves_no_file(setup, tmp_path, monkeypatch):
    opt = make_opt(setup, 'global')
    model = build_model(opt)
    real_export = onnx_export.export_to_onnx

    def wrong_export(net, example, path):
        other = copy.deepcopy(net)
        with torch.no_grad():
            for parameter in other.parameters():
                parameter.add_(0.05)
        real_export(other, example, path)

    monkeypatch.setattr(onnx_export, 'export_to_onnx', wrong_export)
    path = tmp_path / 'g.onnx'
    with pytest.raises(ModelError, match=r"--export_onnx .*g\.onnx: onnxruntime's output differs from PyTorch's by .* tolerance 0\.0001"):
        onnx_export.export_generator(model, first_batch(opt), str(path), opt.size_base)
    assert os.listdir(tmp_path) == []


def test_other_size_input_is_a_batch_at_another_multiple_of_the_base():
    example = torch.arange(2 * 8 * 16, dtype=torch.float32).reshape(1, 2, 8, 16)
    other = onnx_export.other_size_input(example, 4)
    assert other.shape == (2, 2, 4, 8)
    assert torch.equal(other[0], example[0, :, :4, :8]) and torch.equal(other[1], example[0, :, :4, :8].flip(2))
    # A side already at the base grows (mirrored) instead of shrinking to nothing.
    small = onnx_export.other_size_input(example[:, :, :4, :], 4)
    assert small.shape == (2, 2, 8, 8)
    assert torch.equal(small[0, :, 4:], example[0, :, :4, :8].flip(1))


def test_missing_onnx_is_one_line_with_the_install_command(setup, tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *args: None if name == 'onnxruntime' else real_find_spec(name, *args))
    with pytest.raises(ModelError, match=r'^--export_onnx x\.onnx: onnxruntime not installed; pip install onnx onnxruntime$'):
        onnx_export.check_onnx_available('x.onnx')

    # Through test.py, before any model or data is loaded: one `error:` line, exit 1.
    spec = importlib.util.spec_from_file_location('pix2pixhd_test_script', os.path.join(REPO_ROOT, 'test.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    path = tmp_path / 'g.onnx'
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'test.py',
            '--name',
            'global',
            '--checkpoints_dir',
            str(setup['checkpoints']),
            '--dataroot',
            str(setup['root']),
            *GLOBAL_FLAGS,
            '--export_onnx',
            str(path),
        ],
    )
    monkeypatch.setitem(sys.modules, 'onnx', None)  # find_spec answers None for a module blocked this way
    from util.cli import run_main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(script.main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'error: --export_onnx {path}: onnx and onnxruntime not installed; pip install onnx onnxruntime']
    assert not path.exists()


@needs_onnx
def test_test_py_export_onnx_command(setup, tmp_path):
    path = tmp_path / 'out' / 'local.onnx'
    result = run_tool(
        'test.py',
        '--name',
        'local',
        '--checkpoints_dir',
        setup['checkpoints'],
        '--dataroot',
        setup['root'],
        *LOCAL_FLAGS,
        '--results_dir',
        tmp_path / 'results',
        '--export_onnx',
        path,
    )
    assert_ok(result)
    assert path.is_file()
    line = next(line for line in result.stdout.splitlines() if line.startswith('Verified with onnxruntime'))
    differences = [float(value) for value in re.findall(r'([\d.]+e[-+]\d+) on ', line)]
    assert len(differences) == 2 and all(d <= 1e-4 for d in differences), line
    assert '1x36x64x128' in line and '2x36x32x64' in line
    assert f'to {path}' in result.stdout
    assert not (tmp_path / 'results').exists()  # export only: no results page


def test_test_py_export_onnx_unwritable_destination(setup, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    result = run_tool(
        'test.py',
        '--name',
        'global',
        '--checkpoints_dir',
        setup['checkpoints'],
        '--dataroot',
        setup['root'],
        *GLOBAL_FLAGS,
        '--export_onnx',
        blocker / 'g.onnx',
    )
    if HAVE_ONNX:
        assert_one_line_error(result, '--export_onnx', str(blocker))
    else:
        assert_one_line_error(result, 'pip install onnx onnxruntime')


# ----------------------------------------------------------------------------- results page
class _PageRows(html.parser.HTMLParser):
    """A page's image rows (img sources and shown widths), row names, column headers, h3 headers and loss panels."""

    def __init__(self):
        super().__init__()
        self.rows = []  # img sources of each table row that has images
        self.widths = []  # their width attributes, as ints
        self.names = []  # the line naming each row
        self.columns = []  # th texts, in document order
        self.group_spans = []  # (group header, colspan)
        self.headers = []
        self.polylines = []
        self.svgs = 0
        self.first_img_index = None
        self.first_svg_index = None
        self._index = 0
        self._text_of = None  # (kind, attrs) of the element whose text comes next

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._index += 1
        if tag == 'tr':
            self.rows.append([])
            self.widths.append([])
        elif tag == 'img':
            self.rows[-1].append(attrs['src'])
            self.widths[-1].append(int(attrs['width']))
            self.first_img_index = self.first_img_index or self._index
        elif tag in ('h3', 'th') or (tag == 'td' and attrs.get('class') == 'name'):
            self._text_of = (tag, attrs)
        elif tag == 'svg':
            self.svgs += 1
            self.first_svg_index = self.first_svg_index or self._index
        elif tag == 'polyline':
            points = attrs['points'].split()
            self.polylines.append((attrs['data-loss'], [tuple(float(v) for v in p.split(',')) for p in points]))

    def handle_data(self, data):
        if self._text_of is None:
            return
        tag, attrs = self._text_of
        self._text_of = None
        if tag == 'h3':
            self.headers.append(data.strip())
        elif tag == 'td':
            self.names.append(data.strip())
        elif attrs.get('class') == 'group':
            self.group_spans.append((data.strip(), int(attrs['colspan'])))
        else:
            self.columns.append(data.strip())

    def close(self):
        super().close()
        kept = [index for index, row in enumerate(self.rows) if row]
        self.rows, self.widths = [self.rows[i] for i in kept], [self.widths[i] for i in kept]


def parse_page(path) -> _PageRows:
    parser = _PageRows()
    parser.feed(path.read_text(encoding='utf-8'))
    parser.close()
    return parser


def assert_fits_window(page, window=PAGE_WIDTH):
    """Every image row fits the window: shown widths plus cell padding, body margins and a scrollbar."""
    for widths in page.widths:
        assert sum(widths) + 8 * len(widths) + 2 * 16 + 20 <= window, widths


def run_test_py(setup, dataroot, results):
    return run_tool(
        'test.py',
        '--name',
        'global',
        '--checkpoints_dir',
        setup['checkpoints'],
        '--dataroot',
        dataroot,
        *GLOBAL_FLAGS,
        '--results_dir',
        results,
    )


def test_results_page_shows_label_synthesized_and_real_photo(setup, tmp_path):
    root = setup['root']
    result = run_test_py(setup, root, tmp_path)
    assert_ok(result)
    assert f"Showing the real photos of {root / 'test_img'}" in result.stdout
    web = tmp_path / 'global' / 'test_latest'
    page = parse_page(web / 'index.html')
    labels = sorted(os.listdir(root / 'test_label'))
    photos = {pair_key(name): name for name in os.listdir(root / 'test_img')}
    assert len(labels) == 2 and len(page.rows) == 2
    assert page.columns == ['input', 'synthesized', 'real photo']  # one header row names the columns
    for label_file, row in zip(labels, page.rows):
        name = os.path.splitext(label_file)[0]
        assert row == [f'images/{name}_input_label.png', f'images/{name}_synthesized_image.png', f'images/{name}_real_image.png']
        # The real image is this input's photo (paired by the city_seq_frame prefix), scaled as the label map.
        photo = Image.open(root / 'test_img' / photos[pair_key(label_file)]).convert('RGB').resize((64, 32), Image.BICUBIC)
        shown = np.asarray(Image.open(web / 'images' / f'{name}_real_image.png'), dtype=int)
        assert shown.shape == (32, 64, 3)
        assert int(np.abs(shown - np.asarray(photo, dtype=int)).max()) <= 1
    assert page.names == [os.path.splitext(name)[0] for name in labels]
    # 64-pixel-wide images in three columns: shown 4x (the largest whole zoom allowed), so the row still fits.
    assert page.widths == [[256] * 3] * 2
    assert_fits_window(page)
    first, second = (np.asarray(Image.open(web / 'images' / f'{os.path.splitext(n)[0]}_real_image.png')) for n in labels)
    assert not np.array_equal(first, second)  # each row has its own photo


@pytest.mark.parametrize('image_width', [16, 64, 128, 500, 1024, 2048])
@pytest.mark.parametrize('columns', [1, 3, 5, 7])
def test_display_width_fits_the_window(image_width, columns):
    shown = display_width(image_width, columns)
    assert columns * (shown + 8) + 2 * 16 + 20 <= PAGE_WIDTH
    if shown >= image_width:  # small images: their own size times a whole factor of at most 4
        assert shown % image_width == 0 and shown // image_width <= 4
    else:  # large ones: scaled down only as far as the window needs
        assert (columns + 1) * shown > PAGE_WIDTH - 2 * 16 - 20 - 8 * columns


def test_results_page_without_photos(setup, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(setup['root'], root)
    shutil.rmtree(root / 'test_img')
    result = run_test_py(setup, root, tmp_path / 'results')
    assert_ok(result)
    assert 'real photos' not in result.stdout
    page = parse_page(tmp_path / 'results' / 'global' / 'test_latest' / 'index.html')
    assert len(page.rows) == 2
    assert page.columns == ['input', 'synthesized']
    assert all(
        [src.rsplit('_', 2)[-2] + '_' + src.rsplit('_', 2)[-1] for src in row] == ['input_label.png', 'synthesized_image.png']
        for row in page.rows
    )
    assert not [f for f in os.listdir(tmp_path / 'results' / 'global' / 'test_latest' / 'images') if 'real_image' in f]


def test_results_page_with_unpaired_photos_still_works(setup, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(setup['root'], root)
    os.remove(root / 'test_img' / sorted(os.listdir(root / 'test_img'))[1])
    result = run_test_py(setup, root, tmp_path / 'results')
    assert_ok(result)
    assert 'Not using the real photos' in result.stdout and 'does not pair by name' in result.stdout
    page = parse_page(tmp_path / 'results' / 'global' / 'test_latest' / 'index.html')
    assert [len(row) for row in page.rows] == [2, 2]


# ----------------------------------------------------------------------------- loss curves
def visualizer_opt(tmp_path):
    return argparse.Namespace(tf_log=False, no_html=False, isTrain=True, display_winsize=32, checkpoints_dir=str(tmp_path), name='exp')


def visuals():
    return {'input_label': np.zeros((4, 4, 3), np.uint8), 'synthesized_image': np.full((4, 4, 3), 255, np.uint8)}


LOSSES = ('G_GAN', 'G_GAN_Feat', 'D_real', 'D_fake')


def errors(step):
    # G_GAN_Feat is 20x the others, as in real runs: it must not squash them.
    return {name: (20.0 if name == 'G_GAN_Feat' else 1.0) * (1.0 + index + 0.1 * step) for index, name in enumerate(LOSSES)}


def panel_ticks(text, loss):
    """(y tick labels, x tick labels) of one loss's panel."""
    panel = re.search(rf'<g class="panel" data-loss="{loss}">(.*?)</g>', text, re.S).group(1)
    return (re.findall(r'class="y-tick"[^>]*>([^<]*)<', panel), re.findall(r'class="x-tick"[^>]*>([^<]*)<', panel))


def test_training_page_has_loss_curves(tmp_path):
    vis = Visualizer(visualizer_opt(tmp_path))
    for step in range(1, 6):  # 5 print steps: epoch 1 iters 2, 4; epoch 2 iters 2, 4; epoch 3 iters 2
        vis.print_current_errors((step + 1) // 2, 2 * ((step + 1) % 2 + 1), errors(step), 0.01)
    vis.display_current_results(visuals(), 3, 10)
    page_path = tmp_path / 'exp' / 'web' / 'index.html'
    page = parse_page(page_path)
    assert page.svgs == 1
    assert [name for name, _ in page.polylines] == list(LOSSES)
    assert all(len(points) == 5 for _, points in page.polylines)
    assert page.first_svg_index < page.first_img_index  # at the top
    text = page_path.read_text()
    # One panel per loss, titled, side by side within the window.
    assert re.findall(r'class="panel-title"[^>]*>([^<]*)<', text) == list(LOSSES)
    assert int(re.search(r'<svg[^>]*width="(\d+)"', text).group(1)) <= PAGE_WIDTH - 2 * 16 - 20
    # Round ticks on each panel's own y axis, covering its values; the same epoch ticks everywhere.
    assert panel_ticks(text, 'G_GAN') == (['1.1', '1.2', '1.3', '1.4', '1.5'], ['0.5', '1', '1.5', '2', '2.5'])
    assert panel_ticks(text, 'G_GAN_Feat') == (['42', '44', '46', '48', '50'], ['0.5', '1', '1.5', '2', '2.5'])
    # Each loss rises over time, x increases; every panel uses its height (G_GAN is not squashed by G_GAN_Feat).
    for _, points in page.polylines:
        assert [x for x, _ in points] == sorted(x for x, _ in points)
        assert [y for _, y in points] == sorted((y for _, y in points), reverse=True)
        assert points[0][1] - points[-1][1] > 60
    # The images: a header row names the columns, each row is named by its epoch and iteration.
    assert page.columns == ['input', 'synthesized'] and page.names == ['epoch 3, iteration 10']
    assert page.widths == [[16, 16]]  # 4-pixel images shown 4x

    # A resumed run reads the earlier points from loss_log.txt and adds its own.
    vis.close()
    resumed = Visualizer(visualizer_opt(tmp_path))
    resumed.print_current_errors(3, 4, errors(6), 0.01)
    resumed.print_current_errors(4, 2, errors(7), 0.01)
    resumed.display_current_results(visuals(), 4, 14)
    page = parse_page(page_path)
    assert page.svgs == 1 and [len(points) for _, points in page.polylines] == [7] * 4
    assert 'training losses (last print: epoch 4, iters 2)' in page.headers
    assert page.names == ['epoch 4, iteration 14', 'epoch 3, iteration 10'] and page.widths == [[16, 16]] * 2


def test_nice_ticks():
    assert nice_ticks(0.0, 100.0) == [0, 25, 50, 75, 100]
    assert nice_ticks(0.31, 0.69) == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert nice_ticks(2.0, 2.0) == [1.5, 1.75, 2, 2.25, 2.5]  # a flat loss still gets an axis


@pytest.mark.parametrize('low, high', [(1e17, 1e17), (5e11, 5e11), (-1e308, 1e308), (0.0, float('inf')), (float('nan'), 1.0)])
def test_nice_ticks_take_huge_and_non_finite_ranges(low, high):
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 8 and all(np.isfinite(ticks)) and ticks == sorted(ticks) and ticks[0] < ticks[-1]


def test_the_loss_page_renders_with_one_huge_point():
    svg = loss_curve_svg([(1, 3, {'G_GAN': 5e17, 'D_real': float('nan')})])
    assert svg.count('class="panel"') == 2 and 'nan' not in svg.split('</text>', 1)[1]


def test_loss_log_resume_replaces_steps_trained_again(tmp_path):
    log = tmp_path / 'loss_log.txt'
    log.write_text(
        '================ Training Loss (Mon) ================\n'
        '(epoch: 1, iters: 10, time: 0.100) G_GAN: 1.000 D_real: 0.500 \n'
        '(epoch: 1, iters: 20, time: 0.100) G_GAN: 2.000 D_real: 0.600 \n'
        '(epoch: 2, iters: 10, time: 0.100) G_GAN: 3.000 D_real: 0.700 \n'
        '================ Training Loss (Tue) ================\n'
        '(epoch: 1, iters: 20, time: 0.100) G_GAN: 9.000 D_real: nan \n'
        'garbage line\n'
    )
    points = read_loss_log(str(log))
    assert [(e, i) for e, i, _ in points] == [(1, 10), (1, 20)]
    assert points[1][2]['G_GAN'] == 9.0 and np.isnan(points[1][2]['D_real'])
    svg = loss_curve_svg(points)
    counts = {name: len(points.split()) for name, points in re.findall(r'data-loss="(\w+)" points="([^"]*)"', svg)}
    assert counts == {'G_GAN': 2, 'D_real': 1}  # the NaN is left out


def test_loss_curves_are_averaged_down_past_max_points():
    points = [(1 + step // 100, step % 100 + 1, {'G_GAN': float(step)}) for step in range(2500)]
    svg = loss_curve_svg(points, max_points=1000)
    (coordinates,) = re.findall(r'points="([^"]*)"', svg)
    assert len(coordinates.split()) == 834  # groups of 3
