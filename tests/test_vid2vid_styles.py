"""pix2pixHD's instance-feature styles in vid2vid, through train.py, encode_features.py and test.py on the tiny synthetic
video: E trains with G and resumes, the cluster file holds one row per object and sequence, each test-time style is
one cluster centre per instance held over the whole video, --n_styles variants differ, --seed repeats them, and the
per-frame generator exports with its feature channels."""

import os

import numpy as np
import pytest
import torch

from data.sequence_dataset import SequenceDataset
from data.synthetic_video import make_synthetic_video
from helpers import assert_ok, assert_one_line_error, run_tool
from models.pix2pixhd.styles import load_clusters
from models.vid2vid.model import Vid2VidModel
from test_vid2vid import TINY_VIDEO

# A small E (4 filters, 2 downsamplings: the frames' 64x32 stay a multiple of the size base 4).
FEATURES = ['--instance_feat', '--nef', '4', '--n_downsample_E', '2']
LABEL_NC = 35
FEAT_NUM = 3  # --feat_num's default


@pytest.fixture(scope='module')
def video_root(tmp_path_factory) -> str:
    """Two training and one test sequence of 8 frames, 64x32, with cars (instance ids 26000 + k)."""
    root = str(tmp_path_factory.mktemp('video') / 'data')
    make_synthetic_video(root, n_train=2, n_test=1, n_frames=8, width=64, height=32, seed=0)
    return root


@pytest.fixture(scope='module')
def styled(tmp_path_factory, video_root) -> str:
    """A tiny vid2vid with instance features: one epoch, resumed for a second (clips of 2 then 4 made frames, a
    checkpoint per epoch), then encode_features.py; returns the checkpoints folder (experiment `styles`)."""
    checkpoints = str(tmp_path_factory.mktemp('checkpoints'))
    common = [*TINY_VIDEO, *FEATURES, '--name', 'styles', '--checkpoints_dir', checkpoints, '--dataroot', video_root]
    assert_ok(run_tool('train.py', *common, '--niter', '1', '--niter_decay', '0'))
    resumed = run_tool('train.py', *common, '--niter', '1', '--niter_decay', '1', '--continue_train')
    assert_ok(resumed)
    assert 'Resuming from epoch 2' in resumed.stdout
    encoded = run_tool('encode_features.py', '--name', 'styles', '--checkpoints_dir', checkpoints, '--dataroot', video_root,
                       '--gpu_ids', '-1', '--nThreads', '0')  # fmt: skip
    assert_ok(encoded)
    return checkpoints


def run_test(checkpoints, root, results, *extra):
    """test.py on the styled experiment (its model and architecture from architecture.json)."""
    return run_tool('test.py', '--name', 'styles', '--checkpoints_dir', checkpoints, '--dataroot', root, '--gpu_ids', '-1',
                    '--results_dir', results, *extra)  # fmt: skip


@pytest.fixture
def generator_inputs(monkeypatch) -> list:
    """G's label input of every video test.py makes (B x T x channels x H x W per inference: each frame's one-hot labels,
    then its features), recorded on its way into the real generate()."""
    calls: list = []
    original = Vid2VidModel.generate

    def recorded(self, labels, previous, raw_only=0):
        calls.append(labels.detach().cpu())
        return original(self, labels, previous, raw_only)

    monkeypatch.setattr(Vid2VidModel, 'generate', recorded)
    return calls


def test_the_encoder_trains_with_G_and_resumes(styled):
    """E is saved beside the authors' networks, its weights move from epoch 1 to epoch 2 (resumed: its keys and its
    part of G's optimiser were read back), and G's label input has feat_num more channels per frame."""
    folder = os.path.join(styled, 'styles')
    assert {'1_net_E.pth', '2_net_E.pth', 'latest_net_E.pth', 'latest_net_G0.pth'} <= set(os.listdir(folder))
    first, second = (torch.load(os.path.join(folder, f'{epoch}_net_E.pth'), weights_only=True) for epoch in (1, 2))
    assert first.keys() == second.keys()
    assert all(not torch.equal(first[key], second[key]) for key in first if key.endswith('weight'))
    g0 = torch.load(os.path.join(folder, 'latest_net_G0.pth'), weights_only=True)
    assert g0['model_down_seg.1.weight'].shape[1] == (LABEL_NC + FEAT_NUM) * 3  # n_frames_G 3


def test_the_cluster_file_has_one_row_per_object_and_sequence(styled, video_root):
    """encode_features.py on a vid2vid checkpoint: pix2pixHD's cluster format; each car of each training sequence is one
    row (its features averaged over every frame), clustered per class."""
    folder = os.path.join(styled, 'styles')
    centres = load_clusters(os.path.join(folder, 'features_clustered_010.npz'), FEAT_NUM)
    cars = sum(
        len({int(i) for i in np.unique(clip['inst']) if 26000 <= i < 27000})
        for clip in SequenceDataset(video_root, 'train', LABEL_NC, photos=None)
    )
    with np.load(os.path.join(folder, 'features.npz')) as rows:
        assert rows['26'].shape == (cars, FEAT_NUM + 1)  # features + area
    assert cars >= 2 and centres[26].shape == (cars, FEAT_NUM)


def features_by_instance(features: torch.Tensor, inst: torch.Tensor) -> dict:
    """{instance id: every feature vector its pixels get over the video (N x feat_num)} of one video's T x C x H x W
    features and T x 1 x H x W instance map."""
    vectors = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    ids = inst.reshape(-1)
    return {int(i): vectors[ids == i] for i in torch.unique(ids)}


def test_each_style_is_one_cluster_per_instance_for_the_whole_video(styled, video_root, tmp_path, generator_inputs):
    """test.py --n_styles 2 --seed 1: two videos (frames, a video file, one page row; the warping error per style); in
    each, every instance's feature is one cluster centre of its class in every pixel of every frame; the two styles
    differ; the same seed gives the same styles and frames, another seed others."""
    assert_ok(run_test(styled, video_root, tmp_path / 'a', '--n_styles', '2', '--seed', '1'))
    images = tmp_path / 'a' / 'styles' / 'test_latest' / 'images'
    videos = sorted(name.rsplit('.', 1)[0] for name in os.listdir(images) if name.startswith('seq_0000_synthesized'))
    assert videos == ['seq_0000_synthesized_image_style0', 'seq_0000_synthesized_image_style1']
    frames = sorted(os.listdir(images / 'seq_0000'))
    assert [len([name for name in frames if name.startswith(f'synthesized_image_style{k}_')]) for k in (0, 1)] == [8, 8]
    page = (tmp_path / 'a' / 'styles' / 'test_latest' / 'index.html').read_text()
    assert page.count('synthesized_image_style') == 2 and '2 styles' in page
    # The warping error of one style's video (--style K); a styles page without it is refused naming the flag.
    evaluate = ['scripts/evaluate.py', '--results_dir', tmp_path / 'a' / 'styles' / 'test_latest', '--dataroot', video_root,
                '--warping_error', '--first_frame', '2']  # fmt: skip
    result = run_tool(*evaluate, '--style', '1')
    assert_ok(result)
    assert 'synthesized' in result.stdout
    assert_one_line_error(run_tool(*evaluate), 'synthesized_image_<t>.png', '--style K')
    centres = load_clusters(os.path.join(styled, 'styles', 'features_clustered_010.npz'), FEAT_NUM)
    inst = SequenceDataset(video_root, 'test', LABEL_NC, photos=None)[0]['inst']
    assert len(generator_inputs) == 2 and 26000 in inst
    styles = [call[0, :, LABEL_NC:] for call in generator_inputs]  # T x feat_num x H x W each
    for style in styles:
        assert style.shape[0] == 8
        for instance, vectors in features_by_instance(style, inst).items():
            assert torch.equal(vectors, vectors[:1].expand_as(vectors)), instance  # one vector, every pixel of every frame
            allowed = torch.from_numpy(centres.get(instance if instance < 1000 else instance // 1000, np.zeros((1, FEAT_NUM))))
            assert (allowed == vectors[0]).all(1).any(), instance  # a centre of its class (zeros: a class without clusters)
    assert not torch.equal(styles[0], styles[1])
    generator_inputs.clear()
    assert_ok(run_test(styled, video_root, tmp_path / 'b', '--n_styles', '2', '--seed', '1'))
    again = tmp_path / 'b' / 'styles' / 'test_latest' / 'images' / 'seq_0000'
    assert all(torch.equal(call[0, :, LABEL_NC:], style) for call, style in zip(generator_inputs, styles))
    assert all((images / 'seq_0000' / name).read_bytes() == (again / name).read_bytes() for name in frames)
    generator_inputs.clear()
    assert_ok(run_test(styled, video_root, tmp_path / 'c', '--seed', '2', '--feat_choice', '26:1'))
    (chosen,) = [call[0, :, LABEL_NC:] for call in generator_inputs]
    assert not torch.equal(chosen, styles[0])
    car = features_by_instance(chosen, inst)[26000]
    assert torch.equal(car, torch.from_numpy(centres[26][1]).expand_as(car))


def test_the_per_frame_generator_exports_with_its_feature_channels(styled, video_root, tmp_path):
    pytest.importorskip('onnxruntime')
    path = tmp_path / 'g.onnx'
    result = run_test(styled, video_root, tmp_path / 'r', '--export_onnx', path, '--seed', '0')
    assert_ok(result)
    # n_frames_G x (labels + features), then the n_frames_G - 1 previous frames.
    assert f'({3 * (LABEL_NC + FEAT_NUM) + 2 * 3} input channels' in result.stdout and path.is_file()


@pytest.mark.parametrize(
    'script, flags, fragments',
    [
        ('train.py', ['--label_feat', '--label_nc', '0'], ['--label_feat', '--label_nc 0']),
        ('test.py', ['--n_styles', '2'], ['--n_styles', '--instance_feat']),
        ('precompute_feature_maps.py', [], ['--model vid2vid', 'encode_features.py']),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(styled, video_root, tmp_path, script, flags, fragments):
    """Parse-time refusals: label features without labels; styles of a model without features (an experiment without a
    record, so without --instance_feat); precomputed feature maps, which vid2vid does not read."""
    common = ['--checkpoints_dir', styled, '--dataroot', video_root, '--gpu_ids', '-1']
    if script == 'train.py':
        result = run_tool(script, *TINY_VIDEO, '--name', 'bad', *common, *flags)
    elif script == 'test.py':
        result = run_tool(script, '--model', 'vid2vid', '--name', 'none', *common, *flags)
    else:
        result = run_tool(script, '--name', 'styles', *common, *flags)
    assert_one_line_error(result, *fragments)
