"""vid2vid against per-frame pix2pixHD on the built-in synthetic video, end to end on a CPU in minutes, no download:
make the video (exact flow), train both on it, synthesize the test sequences, print both warping errors and write one
page that plays both videos beside the labels and the real video.

    python scripts/video_quickstart.py [--epochs 30] [--label_jitter 0.5] [--root ./video_quickstart]

What it shows: per-frame synthesis knows nothing of the frame before, so what it paints flickers from frame to frame;
vid2vid makes each frame from the previous ones warped by its flow, so its video moves with the scene. The warping
error (scripts/evaluate.py --warping_error) measures it: each frame against the previous one warped by the exact flow.

The label maps jitter (--label_jitter): vid2vid's label maps come from a segmentation network run on every frame, so
their boundaries move a little from frame to frame while the photos move smoothly, and that is what a per-frame
generator turns into flicker. The synthetic video's exact maps move rigidly by whole pixels, and the per-frame
pix2pixHD here has no strided convolutions, so on them it hardly flickers at all (docs/VIDEO.md has the figures).
The photo error beside each warping error (mean |frame - photo|, 0-255) keeps the warping error honest: a video that
blurs or fades is steady too.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.sequence_dataset import SequenceDataset  # noqa: E402
from data.synthetic_video import make_synthetic_video  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.html import HTML  # noqa: E402
from util.images import tensor2im, tensor2label  # noqa: E402
from util.visualizer import Visualizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL_NC = 35
GIVEN = 2  # vid2vid's n_frames_G - 1 first frames are photos: both methods are scored from the next frame on


def parse_args(argv: list | None = None) -> argparse.Namespace:
    """The run's settings (sizes, epochs, where everything goes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='./video_quickstart', help='folder for the data, checkpoints and pages')
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--height', type=int, default=64)
    parser.add_argument('--n_train', type=int, default=8, help='training sequences')
    parser.add_argument('--n_test', type=int, default=2, help='test sequences')
    parser.add_argument('--n_frames', type=int, default=12, help='frames per sequence')
    parser.add_argument('--epochs', type=int, default=30, help='vid2vid epochs (half at the full lr, half decaying)')
    parser.add_argument(
        '--label_jitter',
        type=float,
        default=0.5,
        help="per frame, the probability that a 4x4 tile of the label and instance maps moves by a pixel (a per-frame "
        "segmentation network's jitter, data/synthetic_video.py; photos and flow stay exact); 0: the exact maps",
    )
    parser.add_argument('--pix2pixHD_flags', default='', help="more train.py flags for pix2pixHD (they override the quickstart's)")
    parser.add_argument('--vid2vid_flags', default='', help="more train.py flags for vid2vid (they override the quickstart's)")
    parser.add_argument('--gpu_ids', default='-1')
    return parser.parse_args(argv)


def run(label: str, *command: str) -> str:
    """Run a repository script, say how long it took, return its output; a failure stops the quickstart with its output."""
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    result = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{label} failed (exit {result.returncode})")
    print(f'[video quickstart] {label}: {time.time() - start:.0f} s', flush=True)
    return result.stdout


def flat_frames(video_root: str, frames_root: str) -> None:
    """The video's frames as a still-image dataset (<phase>_label/<sequence>_<frame>.png ...) for pix2pixHD."""
    for folder in sorted(os.listdir(video_root)):
        if not folder.endswith(('_label', '_inst', '_img')):
            continue
        target = os.path.join(frames_root, folder)
        os.makedirs(target, exist_ok=True)
        for sequence in sorted(os.listdir(os.path.join(video_root, folder))):
            for name in sorted(os.listdir(os.path.join(video_root, folder, sequence))):
                shutil.copyfile(os.path.join(video_root, folder, sequence, name), os.path.join(target, f'{sequence}_{name}'))


def per_frame_videos(opt: argparse.Namespace, experiment: str, video_root: str, results: str) -> None:
    """Per-frame pix2pixHD on every frame of the test sequences, written as test.py writes a video page."""
    from builders import build_model
    from models import METHODS
    from options.test_options import TestOptions

    model_opt = TestOptions('', METHODS).parse(
        [
            '--name',
            experiment,
            '--checkpoints_dir',
            os.path.join(opt.root, 'checkpoints'),
            '--dataroot',
            video_root,
            '--gpu_ids',
            opt.gpu_ids,
            '--loadSize',
            str(opt.width),
            '--results_dir',
            results,
        ],  # fmt: skip
        save=False,
    )
    model = build_model(model_opt)
    sequences = SequenceDataset(video_root, 'test', LABEL_NC, photos=True)
    visualizer = Visualizer(model_opt)
    page = HTML(results, f'per-frame pix2pixHD on the test sequences of {video_root}')
    with torch.no_grad():
        for index in range(len(sequences)):
            clip = sequences[index]
            frames = [model.inference(clip['label'][t : t + 1], clip['inst'][t : t + 1])[0] for t in range(clip['label'].shape[0])]
            visuals = {
                'input_label': np.stack([tensor2label(label, LABEL_NC) for label in clip['label']]),
                # vid2vid's first frames are the photos; so are these, for the same page and the same scored frames.
                'synthesized_image': np.stack([tensor2im(clip['image'][t] if t < GIVEN else frame) for t, frame in enumerate(frames)]),
                'real_image': np.stack([tensor2im(frame) for frame in clip['image']]),
            }
            visualizer.save_images(page, visuals, clip['path'])
    page.save()


def comparison_page(opt: argparse.Namespace, video_root: str, per_frame: str, vid2vid: str, errors: dict) -> str:
    """One page: per sequence, the labels, per-frame pix2pixHD, vid2vid and the real video, with the warping errors."""
    from PIL import Image

    folder = os.path.join(opt.root, 'comparison')
    page = HTML(folder, 'vid2vid against per-frame pix2pixHD on the synthetic video')
    page.add_header(
        f"warping error (0-255, frames {GIVEN}+ of {opt.n_test} test sequences; lower is steadier): "
        f"per-frame pix2pixHD {errors['pix2pixHD']:.2f}, vid2vid {errors['vid2vid']:.2f}, real video {errors['real']:.2f}; "
        f"photo error (mean |frame - photo|): per-frame pix2pixHD {errors['photo'][0]:.2f}, vid2vid {errors['photo'][1]:.2f}"
    )
    visualizer = Visualizer(argparse.Namespace(tf_log=False, display_winsize=512, name='comparison', isTrain=False, checkpoints_dir=folder))
    sequences = sorted(os.listdir(os.path.join(video_root, 'test_label')))

    def frames(results: str, sequence: str, kind: str) -> np.ndarray:
        folder_of = os.path.join(results, 'images', sequence)
        names = sorted(name for name in os.listdir(folder_of) if name.startswith(kind))
        return np.stack([np.asarray(Image.open(os.path.join(folder_of, name)).convert('RGB')) for name in names])

    for sequence in sequences:
        visuals = {
            'input_label': frames(vid2vid, sequence, 'input_label'),
            'per_frame_pix2pixHD': frames(per_frame, sequence, 'synthesized_image'),
            'vid2vid': frames(vid2vid, sequence, 'synthesized_image'),
            'real_image': frames(vid2vid, sequence, 'real_image'),
        }
        visualizer.save_images(page, visuals, sequence)
    page.save()
    return os.path.join(folder, 'index.html')


def warping_error(results: str, video_root: str, method: str) -> tuple[float, float]:
    """(synthesized, real) warping errors of a results folder, as scripts/evaluate.py prints them."""
    out = run(f'warping error of {method}', 'scripts/evaluate.py', '--results_dir', results, '--dataroot', video_root,
              '--warping_error', '--first_frame', str(GIVEN), '--method', method)  # fmt: skip
    print(out.strip())
    numbers = out.split('synthesized ')[1].split(', real photos ')
    return float(numbers[0]), float(numbers[1])


def photo_error(results: str, video_root: str) -> float:
    """Mean |synthesized frame - photo| (0-255) over the scored frames (GIVEN on) of every test sequence."""
    from PIL import Image

    errors = []
    for sequence in sorted(os.listdir(os.path.join(video_root, 'test_img'))):
        photos = sorted(os.listdir(os.path.join(video_root, 'test_img', sequence)))
        frames = sorted(glob.glob(os.path.join(results, 'images', sequence, 'synthesized_image_*.png')))
        for photo, frame in list(zip(photos, frames, strict=True))[GIVEN:]:
            real = np.asarray(Image.open(os.path.join(video_root, 'test_img', sequence, photo)).convert('RGB'), np.float64)
            errors.append(float(np.abs(np.asarray(Image.open(frame).convert('RGB'), np.float64) - real).mean()))
    return float(np.mean(errors))


def main(argv: list | None = None) -> None:
    """Data, both trainings, both syntheses, both errors, the page."""
    opt = parse_args(argv)
    start = time.time()
    video_root, frames_root = os.path.join(opt.root, 'video'), os.path.join(opt.root, 'frames')
    checkpoints, results = os.path.join(opt.root, 'checkpoints'), os.path.join(opt.root, 'results')
    make_synthetic_video(video_root, opt.n_train, opt.n_test, opt.n_frames, opt.width, opt.height, seed=0, label_jitter=opt.label_jitter)
    flat_frames(video_root, frames_root)
    common = ['--gpu_ids', opt.gpu_ids, '--checkpoints_dir', checkpoints, '--seed', '0', '--nThreads', '0', '--save_epoch_freq', '1000']
    half = max(opt.epochs // 2, 1)
    # pix2pixHD as the image quickstart trains it (docs/QUICKSTART.md), on every frame of the training video: the
    # same number of images as vid2vid's clips hold over its epochs (its frames per clip grow; these do not).
    image_epochs = max(1, half * 4 // opt.n_frames)
    run('training per-frame pix2pixHD', 'train.py', '--name', 'video_pix2pixHD', '--dataroot', frames_root, *common,
        '--loadSize', str(opt.width), '--no_vgg_loss', '--ngf', '16', '--n_downsample_global', '0', '--n_blocks_global', '6',
        '--netG_init', 'delta', '--ndf', '16', '--n_layers_D', '1', '--lambda_feat', '30',
        '--niter', str(image_epochs), '--niter_decay', str(image_epochs), '--print_freq', '1000', *opt.pix2pixHD_flags.split())  # fmt: skip
    run('training vid2vid', 'train.py', '--model', 'vid2vid', '--name', 'video_vid2vid', '--dataroot', video_root, *common,
        '--resize_or_crop', 'none', '--label_nc', str(LABEL_NC), '--use_instance', '--no_vgg',
        '--ngf', '16', '--n_downsample_G', '2', '--n_blocks', '4', '--ndf', '16', '--n_layers_D', '2', '--num_D', '1',
        '--n_frames_total', '4', '--max_frames_per_gpu', '4', '--niter_step', str(max(half // 2, 1)),
        '--niter', str(half), '--niter_decay', str(opt.epochs - half), '--print_freq', '1000', *opt.vid2vid_flags.split())  # fmt: skip
    vid2vid_results = os.path.join(results, 'video_vid2vid', 'test_latest')
    run('synthesizing with vid2vid', 'test.py', '--model', 'vid2vid', '--name', 'video_vid2vid', '--dataroot', video_root,
        '--checkpoints_dir', checkpoints, '--results_dir', results, '--gpu_ids', opt.gpu_ids, '--resize_or_crop', 'none')  # fmt: skip
    per_frame_results = os.path.join(results, 'video_pix2pixHD', 'test_latest')
    per_frame_videos(opt, 'video_pix2pixHD', video_root, per_frame_results)
    per_frame_error, real_error = warping_error(per_frame_results, video_root, 'per-frame pix2pixHD')
    vid2vid_error, _ = warping_error(vid2vid_results, video_root, 'vid2vid')
    per_frame_photo, vid2vid_photo = photo_error(per_frame_results, video_root), photo_error(vid2vid_results, video_root)
    page = comparison_page(
        opt,
        video_root,
        per_frame_results,
        vid2vid_results,
        {'pix2pixHD': per_frame_error, 'vid2vid': vid2vid_error, 'real': real_error, 'photo': (per_frame_photo, vid2vid_photo)},
    )
    print(f'[video quickstart] total: {time.time() - start:.0f} s')
    print(
        f'warping error, 0-255 (lower is steadier): per-frame pix2pixHD {per_frame_error:.2f}, vid2vid {vid2vid_error:.2f}, '
        f'real video {real_error:.2f}'
    )
    print(f'photo error, 0-255 (mean |frame - photo|): per-frame pix2pixHD {per_frame_photo:.2f}, vid2vid {vid2vid_photo:.2f}')
    print(f'Both videos on one page: {page}')


if __name__ == '__main__':
    run_main(main)
