"""--model vid2vid through train.py and test.py on the built-in synthetic video: training with the growing clip
length, resume, bf16, the results page with its videos, ONNX export of the per-frame generator, the flags' errors,
and the pieces its step is made of (composed flows, the temporal discriminators' runs)."""

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from builders import build_data, build_trainer
from data.flow_files import load_flow
from data.synthetic_video import make_synthetic_video
from helpers import assert_ok, assert_one_line_error, one_line, run_tool
from models import METHODS
from models.vid2vid.data import GrowingClips
from models.vid2vid.trainer import COARSE_HEADS, SparseRuns, skipped_runs
from options.train_options import TrainOptions
from util.errors import OptionsError
from util.flow import compose_flows, warp

# A tiny vid2vid: 64x32 frames of the synthetic video, two downsamplings, one residual block per branch.
TINY_VIDEO = [
    '--model', 'vid2vid', '--gpu_ids', '-1', '--seed', '0', '--nThreads', '0', '--no_vgg', '--resize_or_crop', 'none',
    '--label_nc', '35', '--ngf', '4', '--ndf', '4', '--n_downsample_G', '2', '--n_blocks', '2', '--n_layers_D', '2',
    '--n_frames_total', '2', '--max_frames_per_gpu', '2', '--niter_step', '1', '--n_scales_temporal', '2',
]  # fmt: skip


@pytest.fixture(scope='module')
def video_root(tmp_path_factory) -> str:
    """Two training and one test sequence of 8 frames, 64x32."""
    root = str(tmp_path_factory.mktemp('video') / 'data')
    make_synthetic_video(root, n_train=2, n_test=1, n_frames=8, width=64, height=32, seed=0)
    return root


def train(checkpoints, root, name, *extra):
    """train.py --model vid2vid on the tiny settings."""
    return run_tool('train.py', *TINY_VIDEO, '--name', name, '--checkpoints_dir', checkpoints, '--dataroot', root, *extra)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, video_root) -> str:
    """A tiny vid2vid trained for two epochs (clips of 2 then 4 made frames), one print per iteration."""
    checkpoints = str(tmp_path_factory.mktemp('checkpoints'))
    result = train(checkpoints, video_root, 'video', '--niter', '1', '--niter_decay', '1', '--print_freq', '1', '--display_freq', '1')
    assert_ok(result)
    return checkpoints


def loss_lines(checkpoints: str, name: str = 'video') -> list[str]:
    """loss_log.txt's loss lines."""
    with open(os.path.join(checkpoints, name, 'loss_log.txt')) as handle:
        return [line for line in handle if line.startswith('(epoch')]


def test_training_saves_the_authors_networks_and_grows_the_clip(trained):
    files = set(os.listdir(os.path.join(trained, 'video')))
    assert {'latest_net_G0.pth', 'latest_net_D.pth', 'latest_net_D_T0.pth', 'latest_net_D_T1.pth', 'architecture.json'} <= files
    lines = loss_lines(trained)
    # Epoch 1: clips of 2 given + 2 made frames, too short for a run of 3 frames; epoch 2: 4 made frames, so the
    # frame-rate-1 temporal D runs (the 1/3 rate needs 7 frames: still none).
    epoch1 = [line for line in lines if line.startswith('(epoch: 1,')]
    epoch2 = [line for line in lines if line.startswith('(epoch: 2,')]
    assert epoch1 and epoch2
    assert all(' D_T_real0: 0.000 ' in line for line in epoch1)
    assert all(' D_T_real0: 0.000 ' not in line for line in epoch2)
    assert all(' D_T_real1: 0.000 ' in line for line in lines)
    with open(os.path.join(trained, 'video', 'architecture.json')) as handle:
        assert json.load(handle)['model'] == 'vid2vid'


def test_the_results_page_plays_the_synthesized_video_beside_labels_and_real(trained, video_root, tmp_path):
    result = run_tool(
        'test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'video', '--checkpoints_dir', trained,
        '--dataroot', video_root, '--results_dir', tmp_path, '--resize_or_crop', 'none',
    )  # fmt: skip
    assert_ok(result)
    page_dir = tmp_path / 'video' / 'test_latest'
    page = (page_dir / 'index.html').read_text()
    videos = re.findall(r'(?:<video|<img)[^>]*src="images/([^"]+)"', page)
    assert len(videos) == 3 and all(name.startswith('seq_0000_') for name in videos)
    assert [name.rsplit('.', 1)[0] for name in videos] == ['seq_0000_input_label', 'seq_0000_synthesized_image', 'seq_0000_real_image']
    frames = sorted(os.listdir(page_dir / 'images' / 'seq_0000'))
    assert len([name for name in frames if name.startswith('synthesized_image_')]) == 8
    # The first n_frames_G - 1 frames are the given photos, the rest G's own.
    from PIL import Image

    real0 = np.asarray(Image.open(page_dir / 'images' / 'seq_0000' / 'real_image_0000.png'))
    made0 = np.asarray(Image.open(page_dir / 'images' / 'seq_0000' / 'synthesized_image_0000.png'))
    made5 = np.asarray(Image.open(page_dir / 'images' / 'seq_0000' / 'synthesized_image_0005.png'))
    real5 = np.asarray(Image.open(page_dir / 'images' / 'seq_0000' / 'real_image_0005.png'))
    assert np.array_equal(real0, made0)
    assert not np.array_equal(real5, made5)
    # The warping error of the page's video: the real video's is 0 up to the rounding of the sampling grid (its flow
    # is exact and its motions whole pixels), G's is not.
    result = run_tool('scripts/evaluate.py', '--results_dir', page_dir, '--dataroot', video_root, '--warping_error', '--first_frame', '2',
                      '--method', 'vid2vid', '--json', tmp_path / 'w.json')  # fmt: skip
    assert_ok(result)
    report = json.loads((tmp_path / 'w.json').read_text())['warping_error']
    assert report['frames'] == 5 and report['real'] < 0.01 < report['synthesized']
    assert f"synthesized {report['synthesized']:.3f}" in result.stdout


def test_resume_continues_from_the_saved_epoch(trained, video_root):
    result = train(trained, video_root, 'video', '--niter', '1', '--niter_decay', '2', '--continue_train', '--print_freq', '1')
    assert_ok(result)
    assert 'Resuming from epoch 3' in result.stdout
    assert any(line.startswith('(epoch: 3,') for line in loss_lines(trained))


def test_bf16_trains_with_finite_losses(tmp_path, video_root):
    result = train(tmp_path, video_root, 'bf16', '--niter', '1', '--niter_decay', '0', '--amp', 'bf16', '--print_freq', '1')
    assert_ok(result)
    values = [float(v) for line in loss_lines(tmp_path, 'bf16') for v in re.findall(r': (-?[\d.]+|nan|inf)', line.split(')', 1)[1])]
    assert values and all(np.isfinite(values))


def test_onnx_exports_the_per_frame_generator(trained, video_root, tmp_path):
    pytest.importorskip('onnxruntime')
    path = tmp_path / 'g.onnx'
    result = run_tool(
        'test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'video', '--checkpoints_dir', trained,
        '--dataroot', video_root, '--resize_or_crop', 'none', '--export_onnx', path,
    )  # fmt: skip
    assert_ok(result)
    assert path.is_file()


def test_training_without_flow_files_or_raft_weights_is_refused(tmp_path, video_root):
    import shutil

    root = tmp_path / 'noflow'
    shutil.copytree(video_root, root)
    shutil.rmtree(root / 'train_flow')
    result = train(tmp_path, root, 'noflow', '--niter', '1', '--niter_decay', '0')
    assert_one_line_error(result, 'train_flow', '--flow_weights')


def test_without_flow_files_raft_gives_the_reference_flow(tmp_path, video_root):
    """--flow_weights: torchvision's RAFT (here small, with random weights made locally) from a file, as offline
    machines need; its flows then feed the flow losses."""
    import shutil

    from torchvision.models.optical_flow import raft_small

    root = tmp_path / 'noflow'
    shutil.copytree(video_root, root)
    shutil.rmtree(root / 'train_flow')
    weights = tmp_path / 'raft_small.pth'
    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), weights)
    result = train(tmp_path, root, 'raft', '--niter', '1', '--niter_decay', '0', '--flow_weights', weights, '--print_freq', '1')
    assert_ok(result)
    assert all(' F_Flow: ' in line for line in loss_lines(tmp_path, 'raft'))
    bad = tmp_path / 'not_raft.pth'
    torch.save({'weight': torch.zeros(1)}, bad)
    result = train(tmp_path, root, 'raft2', '--niter', '1', '--niter_decay', '0', '--flow_weights', bad)
    assert_one_line_error(result, 'not_raft.pth', 'RAFT')


def test_raft_flow_recovers_a_known_motion_in_the_convention_of_warp():
    """The flow RAFT gives is frame t to t-1 in pixels, whatever the resizing to RAFT's minimum size: checked with a
    stand-in flow network that returns the exact flow of a shift at RAFT's input size."""
    from models.vid2vid.flow import ReferenceFlow

    class Shift(torch.nn.Module):
        def forward(self, current, previous, num_flow_updates=12):
            flow = torch.zeros(current.shape[0], 2, *current.shape[2:])
            flow[:, 0] = -4.0  # at RAFT's size (128 wide from 32): content moved right by 4 pixels
            return [flow]

    torch.manual_seed(0)
    frames = torch.rand(1, 2, 3, 16, 32) * 2 - 1
    flows, confidence = ReferenceFlow(Shift())(frames)
    assert flows.shape == (1, 1, 2, 16, 32) and confidence.shape == (1, 1, 1, 16, 32)
    assert torch.allclose(flows[0, 0, 0], torch.full((16, 32), -1.0))  # 4 pixels at 128 wide = 1 pixel at 32 wide
    assert torch.allclose(flows[0, 0, 1], torch.zeros(16, 32))


@pytest.mark.parametrize(
    'flags, fragment',
    [
        (['--n_frames_G', '1'], '--n_frames_G 1'),
        (['--fg', '--fg_labels', '26,x'], '--fg_labels'),
        (['--fg', '--fg_labels', '40'], '--fg_labels 40'),
        (['--n_frames_D', '1'], '--n_frames_D 1'),
        (['--gan_mode', 'hinge'], 'gan_mode'),
        (['--max_t_step', '0'], '--max_t_step 0'),
        (['--max_frames_backpropagate', '0'], '--max_frames_backpropagate 0'),
        (['--max_frames_backpropagate', '3'], '--max_frames_per_gpu 3'),  # TINY_VIDEO's forwards are of 2 frames
        (['--niter_fix_global', '-1'], '--niter_fix_global -1'),
        (['--niter_fix_global', '2'], '--n_scales_spatial 2'),
    ],
)
def test_bad_flags_get_one_line_errors(tmp_path, video_root, flags, fragment):
    result = train(tmp_path, video_root, 'bad', '--niter', '1', '--niter_decay', '0', *flags)
    if fragment == 'gan_mode':  # argparse's own refusal of a choice
        assert result.returncode == 2 and 'invalid choice' in result.stderr
        return
    assert_one_line_error(result, fragment)


def test_growing_clips_follow_the_authors_schedule():
    clips = GrowingClips(first=4, every=2, given=2, per_forward=3, shortest=30)
    # Made frames 4, 4, 8, 8, 16, 16, 28 (30 - 2 given), rounded down to whole forwards of 3, plus the 2 given.
    assert [clips(epoch) for epoch in range(1, 8)] == [3 + 2, 3 + 2, 6 + 2, 6 + 2, 15 + 2, 15 + 2, 27 + 2]
    assert GrowingClips(first=30, every=5, given=2, per_forward=1, shortest=500)(100) == 128


def test_composed_flows_take_a_frame_to_one_several_frames_back():
    torch.manual_seed(0)
    frame0 = torch.randn(1, 3, 16, 24)
    shift1 = torch.zeros(1, 2, 16, 24)
    shift1[:, 0] = 2.0  # frame 1's pixel x is frame 0's x + 2
    shift2 = torch.zeros(1, 2, 16, 24)
    shift2[:, 1] = 1.0  # frame 2's pixel y is frame 1's y + 1
    frame1 = warp(frame0, shift1)
    frame2 = warp(frame1, shift2)
    flows = torch.stack((shift1, shift2), 1)
    masks = torch.ones(1, 2, 1, 16, 24)
    composed, confidence = compose_flows(flows, masks)
    assert torch.allclose(composed[:, 0], torch.full((1, 16, 24), 2.0)) and torch.allclose(composed[:, 1], torch.ones(1, 16, 24))
    inside = (slice(None), slice(None), slice(0, 15), slice(0, 22))  # away from the border padding
    assert torch.allclose(warp(frame0, composed)[inside], frame2[inside], atol=1e-5)
    masks[:, 0, :, :, 5] = 0  # a pixel hidden in frame 1 is not confidently tracked to frame 0
    _, confidence = compose_flows(flows, masks)
    assert confidence[0, 0, :, 5].max() == 0 and confidence[0, 0, :, 10].min() == 1


def test_temporal_runs_are_the_authors_skipped_frames():
    frames = torch.zeros(1, 9, 1)
    # 3 new frames of 9, runs of 3: at rate 1 the run ending at the newest frame; at rate 1/3 the run 0, 3, 6... ending
    # at the newest (8): 2, 5, 8.
    assert skipped_runs(frames, 3, 3, 0) == [(6, 1)]
    assert skipped_runs(frames, 3, 3, 1) == [(2, 3)]
    assert skipped_runs(frames, 6, 3, 0) == [(6, 1), (3, 1)]
    assert skipped_runs(torch.zeros(1, 2, 1), 2, 3, 0) == []


def test_first_frames_from_a_single_image_pix2pixHD(trained, video_root, dataroot, tmp_path):
    """--use_single_G --single_G_dir: the video starts from pix2pixHD's frames instead of the photos."""
    from helpers import run_train

    assert_ok(run_train(tmp_path, dataroot, 'single', '--niter', '1', '--niter_decay', '0', '--max_dataset_size', '2'))
    result = run_tool(
        'test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'video', '--checkpoints_dir', trained,
        '--dataroot', video_root, '--results_dir', tmp_path / 'results', '--resize_or_crop', 'none',
        '--use_single_G', '--single_G_dir', tmp_path / 'single',
    )  # fmt: skip
    assert_ok(result)
    from PIL import Image

    frames = tmp_path / 'results' / 'video' / 'test_latest' / 'images' / 'seq_0000'
    made0 = np.asarray(Image.open(frames / 'synthesized_image_0000.png'))
    assert not np.array_equal(made0, np.asarray(Image.open(frames / 'real_image_0000.png')))
    result = run_tool(
        'test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'video', '--checkpoints_dir', trained,
        '--dataroot', video_root, '--results_dir', tmp_path / 'results', '--use_single_G', '--single_G_dir', trained + '/video',
    )  # fmt: skip
    assert_one_line_error(result, '--single_G_dir', 'not a pix2pixHD experiment')


def test_videos_are_mp4_with_pyav_and_animated_webp_without(tmp_path, monkeypatch):
    """util/video.py: H.264 MP4 where PyAV is installed (played by a <video> cell), else a looping animated WebP (an
    <img> cell plays it), frames intact in either."""
    from PIL import Image

    from util import video
    from util.html import HTML

    # Smooth colour ramps moving one pixel a frame (what 4:2:0 chroma keeps), odd height: padded for 4:2:0.
    ys, xs = np.mgrid[0:17, 0:30]
    frames = np.stack([np.stack([xs * 8 + t, ys * 14, 255 - xs * 8 - t], -1) for t in range(5)]).clip(0, 255).astype(np.uint8)
    monkeypatch.setattr(video, 'has_mp4_encoder', lambda: False)
    path = video.write_video(frames, str(tmp_path / 'clip'))
    assert path.endswith('.webp')
    with Image.open(path) as animated:
        assert animated.n_frames == 5
        animated.seek(3)
        assert np.array_equal(np.asarray(animated.convert('RGB')), frames[3])  # lossless
    page = HTML(str(tmp_path / 'page'), 'videos')
    page.add_image_row('seq', [('', 'a'), ('', 'b')], ['seq_a.mp4', 'seq_b.webp'], [30, 30])
    page.save()
    html = (tmp_path / 'page' / 'index.html').read_text()
    assert re.search(r'<video[^>]*src="images/seq_a.mp4"', html) and re.search(r'<img[^>]*src="images/seq_b.webp"', html)
    monkeypatch.undo()
    if not video.has_mp4_encoder():
        pytest.skip('PyAV is not installed (pip install ".[video]")')
    import av

    path = video.write_video(frames, str(tmp_path / 'clip'))
    with av.open(path) as container:
        decoded = [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (18, 30, 3)
    # H.264 at crf 18 on ramps: a few levels from quantisation, 4:2:0 chroma and the limited-range YUV round trip;
    # red and blue swapped (the ramps run opposite ways) would be off by about 100.
    assert np.abs(decoded[2][:17].astype(int) - frames[2]).mean() < 10


def test_no_first_img_makes_every_frame_and_only_the_first_from_the_raw_branch():
    """--no_first_img at test time (the authors' inference): G makes all T frames, the first from its hallucination
    branch alone after black frames, the rest warping the frame before."""
    from models.vid2vid import Architecture, LossSettings, Vid2VidModel

    arch = Architecture(35, 3, 3, False, 4, 'batch', 3, 2, 2, 1, 1, False, (26,), False)
    model = Vid2VidModel(arch, losses=LossSettings(no_first_img=True))
    calls = []
    model.netG0.register_forward_pre_hook(lambda module, args: calls.append(args[4]))
    label = torch.randint(0, 35, (1, 5, 1, 16, 32))
    video = model.inference(label)
    assert video.shape == (1, 5, 3, 16, 32)
    assert calls == [True, False, False, False, False]
    assert all(video[0, t].abs().amax() > 0 for t in range(5))  # no black frame in the video


def test_export_of_a_model_it_does_not_cover_is_refused_in_one_line(video_root, tmp_path):
    pytest.importorskip('onnxruntime')
    checkpoints = tmp_path / 'ck'
    assert_ok(train(checkpoints, video_root, 'fg', '--niter', '1', '--niter_decay', '0', '--fg', '--use_instance'))
    result = run_tool(
        'test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'fg', '--checkpoints_dir', checkpoints,
        '--dataroot', video_root, '--resize_or_crop', 'none', '--export_onnx', tmp_path / 'g.onnx',
    )  # fmt: skip
    assert_one_line_error(result, '--export_onnx', '--fg')
    assert not (tmp_path / 'g.onnx').exists()


def test_frames_not_a_multiple_of_the_size_base_are_refused_in_one_line(video_root, tmp_path):
    result = train(tmp_path, video_root, 'base', '--niter', '1', '--niter_decay', '0', '--n_downsample_G', '3', '--resize_or_crop',
                   'scale_width', '--loadSize', '60')  # fmt: skip
    assert_one_line_error(result, 'train_label/seq_', '60x30', 'not a multiple of 8')


def test_warping_error_refuses_a_first_frame_past_the_video(trained, video_root, tmp_path):
    page_dir = tmp_path / 'page'
    assert_ok(run_tool('test.py', '--model', 'vid2vid', '--gpu_ids', '-1', '--name', 'video', '--checkpoints_dir', trained,
                       '--dataroot', video_root, '--results_dir', page_dir, '--resize_or_crop', 'none'))  # fmt: skip
    for first, fragment in ((8, 'no pair to score'), (-1, 'must be 0 or more')):
        result = run_tool('scripts/evaluate.py', '--results_dir', page_dir / 'video' / 'test_latest', '--dataroot', video_root,
                          '--warping_error', '--first_frame', first)  # fmt: skip
        assert_one_line_error(result, f'--first_frame {first}', fragment)


def test_instance_norm_is_the_projects_with_running_statistics():
    """vid2vid's --norm instance keeps the authors' running statistics (their keys) in the project's InstanceNorm2d, whose
    channels-last gradient workaround --channels_last switches on."""
    from models.common.normalization import InstanceNorm2d
    from models.vid2vid.networks import vid2vid_norm_layer

    layer = vid2vid_norm_layer('instance')(4)
    assert isinstance(layer, InstanceNorm2d) and layer.track_running_stats and not layer.affine
    assert set(layer.state_dict()) == {'running_mean', 'running_var', 'num_batches_tracked'}


# ----------------------------------------------------------------------------- the authors' training flags
def built(video_root: str, *flags: str) -> tuple:
    """(loader, trainer) of the tiny vid2vid with `flags`, built as train.py builds them."""
    args = [*TINY_VIDEO, '--name', 'flags', '--checkpoints_dir', '/nonexistent', '--dataroot', video_root, *flags]
    opt = TrainOptions('', METHODS).parse(args, save=False)
    _, loader = build_data(opt)
    return loader, build_trainer(opt)


def epoch_batches(loader, epoch: int) -> list[dict]:
    """The batches of `epoch`, as train.py's loop draws them."""
    loader.sampler.set_epoch(epoch)
    return list(loader)


def recorded(monkeypatch, obj, name: str) -> list:
    """The positional arguments of every call of obj.name from now on (the call itself runs unchanged)."""
    calls = []
    original = getattr(obj, name)

    def record(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, record)
    return calls


def test_max_t_step_skips_frames_and_the_losses_get_the_flow_across_them(video_root, monkeypatch):
    """--max_t_step 3: a clip's frames are a drawn step of 1..3 apart, and the reference flow the flow losses get takes
    each frame to the one a step before (the flow files of the skipped frames composed): exact where it is confident."""
    loader, trainer = built(video_root, '--max_t_step', '3', '--n_frames_G', '2', '--niter_step', '10', '--no_flip')
    batches = [batch for epoch in range(1, 7) for batch in epoch_batches(loader, epoch)]
    assert {int(batch['step']) for batch in batches} == {1, 2, 3}  # clips of 3 frames in sequences of 8: at most 3
    batch = next(batch for batch in batches if int(batch['step']) == 3)
    start, path = int(batch['start']), batch['path'][0]
    for k in range(3):
        frame = np.asarray(Image.open(os.path.join(path, f'frame_{start + 3 * k:04d}.png')))
        assert np.array_equal(batch['label'][0, k, 0].numpy(), frame)
    calls = recorded(monkeypatch, trainer.model, 'image_losses')
    trainer.train_step(batch)
    [(_, real_B, real_B_prev, _, _, flow_ref, conf_ref)] = calls  # one forward of both made frames
    # The synthetic video's flow is exact (whole-pixel motion): warping by it is float rounding away (1e-4, as
    # test_sequence_dataset's bound) where confident; most pixels are.
    error = (warp(real_B_prev.flatten(0, 1), flow_ref.flatten(0, 1)) - real_B.flatten(0, 1)).abs().amax(1, keepdim=True)
    assert (error * conf_ref.flatten(0, 1)).max() < 1e-4 and conf_ref.mean() > 0.5
    # A single frame's flow (the last skipped one's) is not the flow across the step.
    one_frame, _ = load_flow(os.path.join(path.replace('train_label', 'train_flow'), f'frame_{start + 3:04d}.npz'))
    wrong = (warp(real_B_prev[:, 0], torch.from_numpy(one_frame)[None]) - real_B[:, 0]).abs().amax(1, keepdim=True)
    assert (wrong * conf_ref[:, 0]).max() > 0.1


def test_sparse_runs_are_the_authors_sparse_skipped_frames():
    """SparseRuns against the authors' get_skipped_frames_sparse worked by hand: forwards of 4 frames, runs of 3 (each
    frame's value is its index among the clip's made frames)."""
    runs = SparseRuns(n_frames_D=3, n_scales=2)

    def forward(first: int) -> list:
        index = torch.arange(first, first + 4, dtype=torch.float32).view(1, 4, 1)
        found = runs.runs({'real': index, 'fake': index, 'flow': index})
        return [None if scale is None else (scale[0].flatten().tolist(), scale[2].flatten().tolist()) for scale in found]

    # Rate 1: the last 3 frames, then runs that follow each other from the last 2 frames of the one before. Rate 1/3:
    # frames 0, 3, 6, 9, ... in runs of 3; a run's flows are its frames' own (frame 6's to frame 5), not across the skip.
    assert forward(0) == [([1, 2, 3], [2, 3]), None]
    assert forward(4) == [([2, 3, 4, 5, 6, 7], [3, 4, 6, 7]), ([0, 3, 6], [3, 6])]
    assert forward(8) == [([6, 7, 8, 9, 10, 11], [7, 8, 10, 11]), ([3, 6, 9], [6, 9])]


def test_sparse_D_gives_the_slower_temporal_discriminator_the_authors_sparse_runs(video_root, monkeypatch):
    """--sparse_D: the 1/2-rate temporal D sees frames 0 and 2 of the clip's made frames only (not also 1 and 3), with
    frame 2's own flow to frame 1, where without it D_T1 sees both runs with the flows across the skipped frame."""
    flags = ('--n_frames_D', '2', '--n_frames_G', '2', '--n_frames_total', '4', '--max_frames_per_gpu', '1', '--no_flip')
    seen = {}
    for mode in ('dense', 'sparse'):
        loader, trainer = built(video_root, *flags, *(['--sparse_D'] if mode == 'sparse' else []))
        batch = epoch_batches(loader, 1)[0]
        calls = recorded(monkeypatch, trainer.model, 'temporal_losses')
        trainer.train_step(batch)
        seen[mode] = [(real, flow) for scale, real, _, flow in calls if scale == 1]
    images, flows, masks = batch['image'], batch['flow'], batch['flow_mask']  # clip frame k + 1 is made frame k
    [(real, flow)] = seen['sparse']
    assert torch.equal(real, images[:, [1, 3]]) and torch.equal(flow, flows[:, 2:3])
    (real0, _), (real1, _) = seen['dense']
    assert torch.equal(real0, images[:, [1, 3]]) and torch.equal(real1, images[:, [2, 4]])
    assert torch.equal(seen['dense'][0][1], compose_flows(flows[:, 1:3], masks[:, 1:3])[0][:, None])
    assert not torch.equal(seen['dense'][0][1], flows[:, 2:3])


def test_niter_fix_global_trains_only_the_finest_scale_then_every_scale(video_root):
    """--niter_fix_global 1 (with --n_scales_spatial 2): in epoch 1 no parameter of the coarser generator G0 moves (its
    BatchNorm statistics do: it still runs), G1's do; from epoch 2 on every G0 parameter trains too, under a fresh Adam
    as the authors make one. (With --max_frames_backpropagate 2, from epoch 2 on, G0's output heads included: its
    frames then feed its next frames undetached.)"""
    loader, trainer = built(video_root, '--n_scales_spatial', '2', '--niter_fix_global', '1', '--max_frames_backpropagate', '2')
    G0, G1 = trainer.model.netG0, trainer.model.netG1

    def params(net):
        return {name: value.detach().clone() for name, value in net.named_parameters()}

    before0, before1 = params(G0), params(G1)
    trainer.train_step(epoch_batches(loader, 1)[0])
    assert all(torch.equal(value, before0[name]) for name, value in G0.named_parameters())
    assert all(not torch.equal(value, before1[name]) for name, value in G1.named_parameters())
    trainer.end_epoch(1)
    before0 = params(G0)
    trainer.train_step(epoch_batches(loader, 2)[0])
    assert {name.split('.')[0] for name in before0} >= set(COARSE_HEADS[:3])
    assert all(not torch.equal(value, before0[name]) for name, value in G0.named_parameters())
    # Epoch 2's clip is 2 forwards long: a fresh Adam has taken 2 steps, not the 3 of one kept since epoch 1.
    assert {int(trainer.optimizer_G.state[param]['step']) for param in G1.parameters()} == {2}


def test_torchrun_refuses_backpropagating_into_coarser_raw_frames(video_root, monkeypatch):
    """Under torchrun, --max_frames_backpropagate > 1 with coarser scales and --no_first_img would leave the coarser flow
    heads without a gradient in a clip's first forward (its frames are raw), which DDP stops on: refused at parse time."""
    monkeypatch.setenv('WORLD_SIZE', '2')
    flags = ['--max_frames_backpropagate', '2', '--n_scales_spatial', '2', '--no_first_img']
    with pytest.raises(OptionsError) as refused:
        built(video_root, *flags)
    assert '--max_frames_backpropagate 2' in one_line(refused.value) and '--no_first_img' in str(refused.value)
    monkeypatch.setenv('WORLD_SIZE', '1')
    built(video_root, *flags)  # one process: allowed


def test_max_frames_backpropagate_lets_a_frame_s_loss_reach_the_frame_before(video_root):
    """--max_frames_backpropagate 2 (forwards of 2 frames): from the first doubling of the clip on (epoch 2 with
    --niter_step 1, as the authors grow it) the second frame of a forward gets G's first frame undetached, and the
    gradient of G's losses flows through it into the first frame; before (and by default) it does not."""
    loader, trainer = built(video_root, '--max_frames_backpropagate', '2')
    inputs: list = []
    gradients: list = []

    def previous_frames(module, args):
        inputs.append(args[1])
        if args[1].requires_grad:
            args[1].register_hook(gradients.append)

    trainer.model.netG0.register_forward_pre_hook(previous_frames)
    trainer.train_step(epoch_batches(loader, 1)[0])
    assert len(inputs) == 2 and not any(previous.requires_grad for previous in inputs) and not gradients
    trainer.end_epoch(1)
    inputs.clear()
    trainer.train_step(epoch_batches(loader, 2)[0])  # 4 made frames: 2 forwards of 2
    assert [previous.requires_grad for previous in inputs] == [False, True, False, True]
    # Each forward's second frame: its previous frames are the frame before G's first (channels 0-2) and G's first.
    assert len(gradients) == 2 and all(grad[:, 3:].abs().sum() > 0 for grad in gradients)
