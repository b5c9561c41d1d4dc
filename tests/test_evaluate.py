"""scripts/evaluate.py and util/metrics.py: trainId mapping, accuracy / IoU, FID / KID with local weights, end to end."""

import argparse
import importlib.util
import json
import math
import os
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torch_fidelity  # the `eval` install group, part of `dev`
import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception
from PIL import Image
from torch_fidelity.defaults import DEFAULTS

from data.base_dataset import DatasetError
from helpers import REPO_ROOT, assert_ok, assert_one_line_error, random_inception_weights, run_tool
from options.base_options import OptionsError
from util import metrics
from util.errors import ModelError

EVALUATE = os.path.join('scripts', 'evaluate.py')
# torch >= 2.10 marks TorchScript deprecated; --seg_model still loads TorchScript archives (and .pt2 programs).
pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning')


# -------------------------------------------------------------------------------------------- trainIds


def test_train_id_mapping_is_the_official_table():
    label_ids = torch.arange(-1, 40)
    train_ids = metrics.label_to_train_id(label_ids)
    expected = {
        7: 0,
        8: 1,
        11: 2,
        12: 3,
        13: 4,
        17: 5,
        19: 6,
        20: 7,
        21: 8,
        22: 9,
        23: 10,
        24: 11,
        25: 12,
        26: 13,
        27: 14,
        28: 15,
        31: 16,
        32: 17,
        33: 18,
    }
    for label_id, train_id in zip(label_ids.tolist(), train_ids.tolist(), strict=True):
        assert train_id == expected.get(label_id, 255), label_id
    assert metrics.label_to_train_id(torch.tensor([7, 26, 33])).tolist() == [0, 13, 18]
    assert metrics.label_to_train_id(torch.tensor([0, 1, 34, -1, 255, 1000])).tolist() == [255] * 6
    # numpy uint8 maps (as read from labelIds PNGs) keep their shape
    array = np.array([[7, 0], [26, 34]], dtype=np.uint8)
    assert metrics.label_to_train_id(array).tolist() == [[0, 255], [13, 255]]
    # 16-bit label maps read losslessly; ids that are not labelIds at all are rejected
    assert metrics.label_to_train_id(np.array([33, 300], dtype=np.uint16)).tolist() == [18, 255]
    with pytest.raises(TypeError, match='integer ids'):
        metrics.label_to_train_id(np.array([7.0]))
    assert len(metrics.CITYSCAPES_CLASSES) == 19 and metrics.CITYSCAPES_CLASSES[13] == 'car'


def test_unmapped_ids_are_ignored_by_the_confusion_matrix():
    labels = torch.tensor([[7, 0, 1, 34]])  # road, unlabeled, ego vehicle, license plate
    confusion = metrics.ConfusionMatrix()
    confusion.update(torch.tensor([[0, 5, 6, 7]]), metrics.label_to_train_id(labels))
    assert confusion.total == 1 and confusion.pixel_accuracy() == 1.0 and confusion.mean_iou() == 1.0


# ---------------------------------------------------------------------------------- accuracy and IoU


def test_accuracy_and_iou_match_a_hand_computation():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    confusion = metrics.ConfusionMatrix(num_classes=4)
    confusion.update(prediction, target)
    # 7 counted pixels (one ignored); correct: (0,0) (0,2) (0,3) (1,0) (1,3) -> 5 / 7.
    # class 0: TP 1 [(0,0)], FP 1 [(1,1) gt 2], FN 1 [(0,1) pred 1]        -> 1 / 3
    # class 1: TP 3 [(0,2) (0,3) (1,3)], FP 1 [(0,1) gt 0], FN 0            -> 3 / 4
    # class 2: TP 1 [(1,0)], FP 0 [(1,2) is ignored], FN 1 [(1,1) pred 0]   -> 1 / 2
    # class 3: neither in ground truth nor predicted -> NaN, left out of the mean
    # mean IoU = (1/3 + 3/4 + 1/2) / 3 = (4/12 + 9/12 + 6/12) / 3 = 19/36
    assert confusion.total == 7
    assert confusion.pixel_accuracy() == pytest.approx(5 / 7)
    iou = confusion.iou()
    assert iou[:3].tolist() == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert math.isnan(iou[3])
    assert confusion.mean_iou() == pytest.approx(19 / 36)

    # A class predicted but absent from the ground truth counts, with IoU 0: (1 + 0) / 2.
    other = metrics.ConfusionMatrix(num_classes=4)
    other.update(torch.tensor([3, 3, 0]), torch.tensor([0, 0, 0]))
    assert other.pixel_accuracy() == pytest.approx(1 / 3)
    assert other.iou()[[0, 3]].tolist() == pytest.approx([1 / 3, 0.0])
    assert other.mean_iou() == pytest.approx((1 / 3 + 0) / 2)

    # Accumulating batches equals one pass over everything.
    split = metrics.ConfusionMatrix(num_classes=4)
    split.update(prediction[:1], target[:1])
    split.update(prediction[1:], target[1:])
    assert torch.equal(split.matrix, confusion.matrix)

    with pytest.raises(ValueError, match='predicted classes'):
        confusion.update(torch.tensor([4]), torch.tensor([0]))


# ------------------------------------------------------------------------------------------ FID / KID


@pytest.fixture(scope='module')
def inception_weights(tmp_path_factory):
    """A randomly initialised state_dict of torch-fidelity's Inception (He init keeps the features away from 0 / inf)."""
    return random_inception_weights(str(tmp_path_factory.mktemp('inception') / 'random_inception.pth'))


def _smooth_images(n: int, seed: int) -> torch.Tensor:
    """n uint8 3x32x64 images of smooth random colour fields."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 16, generator=generator)
    return _to_uint8(torch.nn.functional.interpolate(coarse, size=(32, 64), mode='bilinear', align_corners=False))


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def test_names_match_the_installed_torch_fidelity():
    assert metrics.INCEPTION_WEIGHTS_FILE == os.path.basename(fidelity_inception.URL_INCEPTION_V3)
    assert set(map(str, metrics.INCEPTION_DIMS)) <= set(fidelity_inception.FeatureExtractorInceptionV3.get_provided_features_list())
    assert (metrics.KID_SUBSETS, metrics.KID_SUBSET_SIZE) == (DEFAULTS['kid_subsets'], DEFAULTS['kid_subset_size'])


def test_fid_and_kid_are_zero_for_a_set_with_itself_and_grow_with_noise(inception_weights):
    model = metrics.load_inception(inception_weights, dims=192)
    images = _smooth_images(8, seed=1)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    clean = metrics.inception_features(model, images.split(3))  # batches of 3, 3, 2
    assert clean.shape == (8, 192) and clean.dtype == torch.float32 and clean.std() > 1e-3
    noisy = {sigma: metrics.inception_features(model, [_to_uint8(images / 255 + sigma * noise)]) for sigma in (0.1, 0.3)}
    fid = {sigma: metrics.frechet_distance(clean, features) for sigma, features in noisy.items()}
    assert 0 < fid[0.1] < fid[0.3]
    assert abs(metrics.frechet_distance(clean, clean)) < 1e-3 * fid[0.1]
    kid = {sigma: metrics.kernel_inception_distance(clean, features, subset_size=8) for sigma, features in noisy.items()}
    assert 0 < kid[0.1][0] < kid[0.3][0]
    kid_self, _ = metrics.kernel_inception_distance(clean, clean, subset_size=8)
    assert abs(kid_self) < 0.1 * kid[0.1][0]
    assert metrics.kernel_inception_distance(clean, noisy[0.3], subset_size=4) == metrics.kernel_inception_distance(
        clean, noisy[0.3], subset_size=4
    )  # seeded subsets: the same number every run
    with pytest.raises(ValueError, match='KID subset size 9'):
        metrics.kernel_inception_distance(clean, clean, subset_size=9)


class ImageSet(torch.utils.data.Dataset):
    """uint8 3xHxW images, one per item, as torch-fidelity's calculate_metrics takes them."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def test_scores_equal_torch_fidelity_own_pipeline(inception_weights):
    """Streaming our batches through load_inception gives torch-fidelity's calculate_metrics numbers exactly."""
    fake, real = _smooth_images(5, seed=3), _smooth_images(6, seed=4)
    expected = torch_fidelity.calculate_metrics(
        input1=ImageSet(fake),
        input2=ImageSet(real),
        fid=True,
        kid=True,
        kid_subset_size=4,
        feature_layer_fid='192',
        feature_layer_kid='192',
        feature_extractor_weights_path=inception_weights,
        cuda=False,
        batch_size=4,
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )  # save_cpu_ram: no DataLoader worker processes
    model = metrics.load_inception(inception_weights, dims=192)
    fake_features = metrics.inception_features(model, fake.split(2))
    real_features = metrics.inception_features(model, real.split(4))
    assert metrics.frechet_distance(fake_features, real_features) == pytest.approx(expected['frechet_inception_distance'], rel=1e-6)
    kid, kid_std = metrics.kernel_inception_distance(fake_features, real_features, subset_size=4)
    assert (kid, kid_std) == pytest.approx(
        (expected['kernel_inception_distance_mean'], expected['kernel_inception_distance_std']), rel=1e-6
    )


def test_inception_weight_errors_name_the_option(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(fidelity_inception, 'load_state_dict_from_url', offline)
    with pytest.raises(ModelError, match='--inception_weights PATH') as error:
        metrics.load_inception(None)
    assert 'cannot download' in str(error.value) and 'no network' in str(error.value)
    assert fidelity_inception.URL_INCEPTION_V3 in str(error.value)
    with pytest.raises(ModelError, match='--inception_weights .*file not found'):
        metrics.load_inception(str(tmp_path / 'missing.pth'))
    wrong = tmp_path / 'wrong.pth'
    torch.save({'conv.weight': torch.zeros(1)}, str(wrong))
    with pytest.raises(ModelError, match=f'not the Inception state_dict \\({metrics.INCEPTION_WEIGHTS_FILE}\\)'):
        metrics.load_inception(str(wrong))
    tensor = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(1), str(tensor))
    with pytest.raises(ModelError, match='holds a Tensor, not the Inception state_dict'):
        metrics.load_inception(str(tensor))
    pickled = tmp_path / 'pickled.pth'
    torch.save({'options': argparse.Namespace(x=1)}, str(pickled))  # arbitrary objects: never unpickled
    with pytest.raises(ModelError, match='cannot load .*expected weights-inception-2015-12-05-6726825d.pth'):
        metrics.load_inception(str(pickled))
    with pytest.raises(ModelError, match='dims 100 not supported'):
        metrics.load_inception(str(wrong), dims=100)


# ------------------------------------------------------------------------------------------ end to end

# Cityscapes-like samples: labels / photos 128x64, synthesized images 64x32 (as test.py at a lower --loadSize).
KEYS = ('frankfurt_000000_000576', 'frankfurt_000000_001236', 'munster_000001_000019')
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


class ColourSegmenter(torch.nn.Module):
    """Predicts road where red dominates, car where green does, sky where blue does (on ImageNet-normalised input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((x.shape[0], 19, x.shape[2], x.shape[3]), -100.0, dtype=x.dtype, device=x.device)
        logits[:, 0] = x[:, 0]  # road
        logits[:, 13] = x[:, 1]  # car
        logits[:, 10] = x[:, 2]  # sky
        return logits


def _label_map() -> np.ndarray:
    """128x64 labelIds: left half road (its top 8 rows ego vehicle, ignored), right half car above sky."""
    label = np.zeros((64, 128), dtype=np.uint8)
    label[:, :64] = 7
    label[:8, :64] = 1
    label[:32, 64:] = 26
    label[32:, 64:] = 23
    return label


def _with_noise(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-20, 21, size=image.shape)
    return np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _save(array: np.ndarray, path) -> None:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(array).save(str(path))


def _synthesized(colour_right) -> np.ndarray:
    """64x32: left half red (-> road), right half colour_right."""
    image = np.zeros((32, 64, 3), dtype=np.uint8)
    image[:, :32] = RED
    image[:, 32:] = colour_right
    return image


@pytest.fixture(scope='module')
def evaluation_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('evaluate')
    dataroot, images = root / 'cityscapes', root / 'results' / 'label2city' / 'test_latest' / 'images'
    label = _label_map()
    photo = np.zeros((64, 128, 3), dtype=np.uint8)
    photo[:, :64] = RED
    photo[:32, 64:] = GREEN
    photo[32:, 64:] = BLUE
    for index, key in enumerate(KEYS + ('lindau_000000_000019',)):  # the last label map has no result: a subset is fine
        _save(label, dataroot / 'test_label' / f'{key}_gtFine_labelIds.png')
        _save(_with_noise(photo, seed=index), dataroot / 'test_img' / f'{key}_leftImg8bit.png')
    for index, key in enumerate(KEYS):
        base = f'{key}_gtFine_labelIds'
        _save(_with_noise(_synthesized(GREEN), seed=10 + index), images / f'{base}_synthesized_image.png')
        _save(np.zeros((32, 64, 3), dtype=np.uint8), images / f'{base}_input_label.png')  # must be skipped
    styles = root / 'styles'
    for key in KEYS:
        _save(_synthesized(GREEN), styles / f'{key}_gtFine_labelIds_synthesized_image_style0.png')
        _save(_synthesized(RED), styles / f'{key}_gtFine_labelIds_synthesized_image_style1.png')
    seg_model = str(root / 'colour_seg.pt')
    torch.jit.script(ColourSegmenter()).save(seg_model)
    return {'root': root, 'dataroot': str(dataroot), 'results': str(images.parent), 'styles': str(styles), 'seg': seg_model}


def test_end_to_end_accuracy_iou_fid_and_json(evaluation_setup, inception_weights):
    setup = evaluation_setup
    out = setup['root'] / 'scores.json'
    result = run_tool(
        EVALUATE,
        '--results_dir',
        setup['results'],
        '--dataroot',
        setup['dataroot'],
        '--seg_model',
        setup['seg'],
        '--real',
        '--fid',
        '--inception_weights',
        inception_weights,
        '--fid_dims',
        '192',
        '--json',
        out,
        '--gpu_ids',
        '-1',
        '--batch_size',
        '2',
        '--nThreads',
        '0',
    )
    assert_ok(result)
    scores = json.loads(out.read_text())
    # Labels resized (nearest) to 64x32: left 32x32 road minus 4 ignored rows = 896 px, right 16x32 car = 512, sky = 512.
    # Synthesized: left red -> road (896 correct), right green -> car (512 correct, 512 sky pixels called car).
    #   accuracy 1408 / 1920 = 11/15; IoU road 896/896 = 1, car 512/1024 = 1/2, sky 0/512 = 0; mean 1/2.
    synthesized = scores['synthesized']
    assert scores['n_synthesized'] == 3 and scores['n_label_maps'] == 3
    assert synthesized['pixels'] == 3 * 1920
    assert synthesized['pixel_accuracy'] == pytest.approx(11 / 15)
    assert synthesized['mean_iou'] == pytest.approx(0.5)
    iou = synthesized['per_class_iou']
    assert set(iou) == set(metrics.CITYSCAPES_CLASSES)
    assert (iou['road'], iou['car'], iou['sky']) == pytest.approx((1.0, 0.5, 0.0))
    assert iou['person'] is None  # absent from ground truth and prediction
    # Real photos (128x64 resized bicubic to 64x32) are coloured like their labels: perfect scores.
    real = scores['real']
    assert real['pixel_accuracy'] == pytest.approx(1.0) and real['mean_iou'] == pytest.approx(1.0)
    assert (real['per_class_iou']['road'], real['per_class_iou']['car'], real['per_class_iou']['sky']) == (1.0, 1.0, 1.0)
    assert real.get('fid') is None and real.get('kid') is None
    assert synthesized['fid'] > 0 and math.isfinite(synthesized['fid'])
    # KID over the 3 pairs: subsets of all 3 images (fewer than --kid_subset_size), torch-fidelity's 100 subsets.
    assert math.isfinite(synthesized['kid']) and synthesized['kid_std'] >= 0
    assert scores['kid_subset_size'] == 3 and scores['kid_subsets'] == 100 and scores['fid_dims'] == 192
    assert 'note: KID from subsets of 3 images' in result.stdout
    # The table, in the paper's layout.
    lines = result.stdout.splitlines()
    header = next(line for line in lines if 'Pixel acc' in line)
    assert header.split() == ['Pixel', 'acc', 'Mean', 'IoU', 'FID', 'KID']
    row = next(line for line in lines if line.startswith('pix2pixHD synthesized'))
    assert row.split()[2:] == ['73.33%', '0.5000', f"{synthesized['fid']:.2f}", f"{synthesized['kid']:.4f}"]
    row = next(line for line in lines if line.startswith('real photos'))
    assert '100.00%' in row and '1.0000' in row
    assert any(line.startswith('car') and '0.5000' in line for line in lines)


def test_styles_are_all_counted_or_selected(evaluation_setup):
    setup = evaluation_setup
    common = (
        '--results_dir',
        setup['styles'],
        '--dataroot',
        setup['dataroot'],
        '--seg_model',
        setup['seg'],
        '--gpu_ids',
        '-1',
        '--nThreads',
        '0',
    )
    evaluate = _load_evaluate()
    out = setup['root'] / 'style1.json'
    evaluate.main([*common, '--style', '1', '--json', str(out)])
    style1 = json.loads(out.read_text())['synthesized']
    # All red -> road everywhere: 896 of 1920 correct; road IoU 896 / (896 + 1024) = 7/15, car 0, sky 0.
    assert style1['pixel_accuracy'] == pytest.approx(7 / 15)
    assert style1['mean_iou'] == pytest.approx((7 / 15) / 3)
    out = setup['root'] / 'all_styles.json'
    evaluate.main([*common, '--json', str(out)])
    both = json.loads(out.read_text())
    # style0 (as above: 1408 correct) + style1 (896 correct) over 2 x 1920 pixels per label map.
    # road: TP 896 + 896, FP 0 + 1024 -> 1792/2816 = 7/11; car: TP 512, FP 512, FN 512 -> 1/3; sky: 0.
    assert both['n_synthesized'] == 6 and both['n_label_maps'] == 3
    assert both['synthesized']['pixel_accuracy'] == pytest.approx(2304 / 3840)
    assert both['synthesized']['mean_iou'] == pytest.approx((7 / 11 + 1 / 3 + 0) / 3)


def _load_evaluate():
    spec = importlib.util.spec_from_file_location('evaluate_script', os.path.join(REPO_ROOT, EVALUATE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_segmentation_output_is_a_model_error(evaluation_setup, tmp_path):
    class TwoClasses(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :2]

    bad = str(tmp_path / 'bad.pt')
    torch.jit.script(TwoClasses()).save(bad)
    with pytest.raises(ModelError, match=r'returned \(3, 2, 32, 64\).*Bx19xHxW'):
        _load_evaluate().main(
            [
                '--results_dir',
                evaluation_setup['results'],
                '--dataroot',
                evaluation_setup['dataroot'],
                '--seg_model',
                bad,
                '--gpu_ids',
                '-1',
                '--nThreads',
                '0',
            ]
        )


def test_user_errors_are_one_line(evaluation_setup, tmp_path):
    setup = evaluation_setup
    base = ('--dataroot', setup['dataroot'], '--seg_model', setup['seg'], '--gpu_ids', '-1', '--nThreads', '0')
    result = run_tool(EVALUATE, '--results_dir', tmp_path / 'nowhere', *base)
    assert_one_line_error(result, 'nowhere', 'results folder not found')

    unpaired = tmp_path / 'unpaired'
    for name in ('zurich_000000_000001', 'zurich_000000_000002', 'frankfurt_000000_000576'):
        _save(_synthesized(GREEN), unpaired / f'{name}_gtFine_labelIds_synthesized_image.png')
    result = run_tool(EVALUATE, '--results_dir', unpaired, *base)
    assert_one_line_error(result, '2 (e.g. zurich_000000_000001', 'have no label map', 'test_label')

    missing = tmp_path / 'missing_inception.pth'
    result = run_tool(EVALUATE, '--results_dir', setup['results'], *base, '--fid', '--inception_weights', missing)
    assert_one_line_error(result, f'--inception_weights {missing}', 'file not found', metrics.INCEPTION_WEIGHTS_FILE)


def test_missing_photos_and_option_errors(evaluation_setup, tmp_path):
    setup = evaluation_setup
    evaluate = _load_evaluate()
    base = ['--results_dir', setup['results'], '--dataroot', setup['dataroot'], '--gpu_ids', '-1', '--nThreads', '0']
    photos = tmp_path / 'photos'
    _save(np.zeros((64, 128, 3), dtype=np.uint8), photos / 'frankfurt_000000_001236_leftImg8bit.png')  # 1 of 3
    with pytest.raises(DatasetError, match=r'2 \(e\.g\. frankfurt_000000_000576_gtFine_labelIds\.png, munster_.*no real photo'):
        evaluate.main([*base, '--seg_model', setup['seg'], '--real', '--real_dir', str(photos)])
    with pytest.raises(DatasetError, match='empty: folder of real photos not found; pass --real_dir'):
        evaluate.main([*base, '--fid', '--real_dir', str(tmp_path / 'empty')])
    with pytest.raises(OptionsError, match='nothing to evaluate'):
        evaluate.main(base)
    with pytest.raises(OptionsError, match='--json .* is a folder: name the file to write'):  # before any scoring
        evaluate.main([*base, '--seg_model', setup['seg'], '--json', str(tmp_path)])
    with pytest.raises(OptionsError, match='--real .*needs --seg_model'):
        evaluate.main([*base, '--fid', '--real'])
    with pytest.raises(ModelError, match='--seg_model .*file not found'):
        evaluate.main([*base, '--seg_model', str(tmp_path / 'missing.pt')])
    with pytest.raises(OptionsError, match='--style 3: no _synthesized_image_style3'):
        evaluate.main([*base, '--seg_model', setup['seg'], '--style', '3'])
    with pytest.raises(OptionsError, match='--kid_subset_size 1 must be at least 2'):
        evaluate.main([*base, '--fid', '--kid_subset_size', '1'])


def test_fid_without_torch_fidelity_says_which_group_to_install(evaluation_setup, monkeypatch):
    for name in [name for name in sys.modules if name.split('.')[0] == 'torch_fidelity'] + ['torch_fidelity']:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: find_spec gives None, importing fails
    evaluate = _load_evaluate()
    base = ['--results_dir', evaluation_setup['results'], '--dataroot', evaluation_setup['dataroot'], '--gpu_ids', '-1', '--nThreads', '0']
    with pytest.raises(OptionsError, match=r"--fid needs torch-fidelity, which is not installed: pip install '\.\[eval\]'"):
        evaluate.main([*base, '--fid'])
    out = evaluation_setup['root'] / 'seg_only.json'
    evaluate.main([*base, '--seg_model', evaluation_setup['seg'], '--json', str(out)])  # segmentation needs only the core
    assert json.loads(out.read_text())['synthesized']['pixel_accuracy'] == pytest.approx(11 / 15)


def test_torch_export_program_is_accepted(evaluation_setup, tmp_path):
    dims = {0: torch.export.Dim('batch'), 2: torch.export.Dim('height'), 3: torch.export.Dim('width')}
    program = torch.export.export(ColourSegmenter(), (torch.zeros(2, 3, 32, 64),), dynamic_shapes=(dims,))
    path = str(tmp_path / 'colour_seg.pt2')
    torch.export.save(program, path)
    out = tmp_path / 'scores.json'
    _load_evaluate().main(
        [
            '--results_dir',
            evaluation_setup['results'],
            '--dataroot',
            evaluation_setup['dataroot'],
            '--seg_model',
            path,
            '--gpu_ids',
            '-1',
            '--nThreads',
            '0',
            '--json',
            str(out),
        ]
    )
    assert json.loads(out.read_text())['synthesized']['pixel_accuracy'] == pytest.approx(11 / 15)
