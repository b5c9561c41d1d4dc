"""FVD in scripts/evaluate.py and util/metrics.py: the float64 Frechet distance on Gaussians whose answer is known, and
--fvd end to end on video results as test.py writes them, with a TorchScript stand-in for StyleGAN-V's I3D."""

import json
import os
import shutil

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import assert_ok, assert_one_line_error, run_tool
from util import metrics

EVALUATE = os.path.join('scripts', 'evaluate.py')
# torch >= 2.10 marks TorchScript deprecated; the I3D file is TorchScript.
pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning')
EPS = float(np.finfo(np.float64).eps)


def rounding_bound(cov: torch.Tensor) -> float:
    """How far float64 rounding can move the distance of a Gaussian from itself (or a known answer): eigh's eigenvalues
    of a d x d matrix of norm |C|^2 carry an error of about d * eps * |C|^2, which a square root turns into up to
    sqrt(d * eps) * |C| for an eigenvalue near 0; the distance subtracts twice the sum of d such roots."""
    d = cov.shape[0]
    return 2 * d * (d * EPS) ** 0.5 * float(torch.linalg.eigvalsh(cov.double()).abs().max())


# ------------------------------------------------------------------------------------ the Frechet distance


def test_frechet_distance_of_gaussians_with_known_answers():
    distance = metrics.gaussian_frechet_distance
    # Diagonal covariances commute: |m1 - m2|^2 + sum (sqrt a_i - sqrt b_i)^2 = (1 + 4 + 4) + (1 + 1 + 0) = 11.
    mean1, cov1 = torch.zeros(3), torch.diag(torch.tensor([1.0, 4.0, 9.0]))
    mean2, cov2 = torch.tensor([1.0, 2.0, 2.0]), torch.diag(torch.tensor([4.0, 1.0, 9.0]))
    assert distance(mean1, cov1, mean2, cov2) == pytest.approx(11.0, abs=rounding_bound(cov2))
    # The identity against a rotated diag(4, 9, 16): 3^2 + tr I + tr C - 2 tr C^1/2 = 9 + 3 + 29 - 2 * (2 + 3 + 4) = 23.
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    rotated = rotation @ torch.diag(torch.tensor([4.0, 9.0, 16.0], dtype=torch.float64)) @ rotation.T
    shift = torch.tensor([0.0, 0.0, 3.0])
    assert distance(mean1, torch.eye(3), shift, rotated) == pytest.approx(23.0, abs=rounding_bound(rotated))
    assert distance(shift, rotated, mean1, torch.eye(3)) == pytest.approx(23.0, abs=rounding_bound(rotated))
    # Rank-1 covariances u u^T and v v^T: |u|^2 + |v|^2 - 2 |u . v| (the square root of a singular matrix).
    u, v = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([3.0, -1.0, 2.0])
    singular = torch.outer(v, v)
    expected = float(u @ u + v @ v - 2 * abs(u @ v))  # 5 + 14 - 2 = 17
    assert distance(mean1, torch.outer(u, u), mean1, singular) == pytest.approx(expected, abs=rounding_bound(singular))
    # Two general covariances that do not commute: the reference formula, tr sqrtm(C1 C2) (scipy, as StyleGAN-V).
    generator = torch.Generator().manual_seed(1)
    a, b = (torch.randn(4, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    c1, c2 = a @ a.T, b @ b.T
    reference = float(torch.trace(c1 + c2) - 2 * np.real(np.trace(scipy.linalg.sqrtm((c1 @ c2).numpy()))))
    assert distance(torch.zeros(4), c1, torch.zeros(4), c2) == pytest.approx(reference, abs=rounding_bound(c1) + rounding_bound(c2))


def test_feature_statistics_give_the_known_distance():
    """Features +-a e_i around m (mean m, covariance 2a^2/(n-1) I): shifted by s their distance is |s|^2; scaled by 2
    about m (covariance 4C) it is tr C + 4 tr C - 2 tr 2C = tr C."""
    d, a = 5, 3.0
    m = torch.arange(d, dtype=torch.float64)
    features = m + torch.cat([a * torch.eye(d, dtype=torch.float64), -a * torch.eye(d, dtype=torch.float64)])
    mean, cov = metrics.gaussian_statistics(features.float())
    assert mean.dtype == cov.dtype == torch.float64
    assert torch.allclose(mean, m) and torch.allclose(cov, 2 * a**2 / (2 * d - 1) * torch.eye(d, dtype=torch.float64))
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    bound = rounding_bound(cov)
    assert metrics.video_frechet_distance(features, features + shift) == pytest.approx(float(shift @ shift), abs=bound)
    assert metrics.video_frechet_distance(features, m + 2 * (features - m)) == pytest.approx(float(cov.trace()), abs=4 * bound)
    assert abs(metrics.video_frechet_distance(features, features)) <= bound
    with pytest.raises(ValueError, match='at least 2 feature vectors'):
        metrics.gaussian_statistics(features[:1])


# ------------------------------------------------------------------------------------------------ --fvd


class TinyI3D(torch.nn.Module):
    """StyleGAN-V's I3D call on a few numbers: float N x 3 x T x H x W clips, 0-255 rescaled to [-1, 1] and resized
    (to 8x8 here) when asked; 6 features per clip (each channel's mean and its mean change between frames), its class
    probabilities instead without return_features."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 8, 8), mode='trilinear', align_corners=False)
        features = torch.cat([x.mean(dim=(2, 3, 4)), (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(2, 3, 4))], dim=1)
        return features if return_features else torch.softmax(features, dim=1)


class NotI3D(torch.nn.Module):
    """A TorchScript video network without the I3D's switches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


N_VIDEOS, N_FRAMES, CLIP = 5, 9, 4  # 2 clips of 4 frames per video from frame 1 (frame 0 and none of the rest left out)


def _frames(rng: np.random.Generator) -> list:
    """A 16x8 video: a smooth random colour field panning by a pixel per frame, with its own brightness."""
    field = rng.integers(0, 200, size=(8, 4 + N_FRAMES, 3)).repeat(2, axis=1)[:, : 16 + N_FRAMES]
    return [(field[:, t : t + 16] + rng.integers(0, 55)).astype(np.uint8) for t in range(N_FRAMES)]


def _write_video(folder, real: list, synthesized: list) -> None:
    """One video's frames as test.py's results page writes them."""
    os.makedirs(folder, exist_ok=True)
    for t, (photo, made) in enumerate(zip(real, synthesized, strict=True)):
        Image.fromarray(photo).save(os.path.join(folder, f'real_image_{t:04d}.png'))
        Image.fromarray(made).save(os.path.join(folder, f'synthesized_image_{t:04d}.png'))


@pytest.fixture(scope='module')
def fvd_setup(tmp_path_factory):
    """The stand-in I3D and two results folders of the same real videos: synthesized = real, and real brightened."""
    root = tmp_path_factory.mktemp('fvd')
    i3d = str(root / 'i3d_standin.pt')
    torch.jit.script(TinyI3D()).save(i3d)
    rng = np.random.default_rng(0)
    videos = [_frames(rng) for _ in range(N_VIDEOS)]
    for index, real in enumerate(videos):
        brighter = [np.clip(frame.astype(np.int64) + 40, 0, 255).astype(np.uint8) for frame in real]
        _write_video(root / 'same' / 'images' / f'seq_{index:04d}', real, real)
        _write_video(root / 'brighter' / 'images' / f'seq_{index:04d}', real, brighter)
    (root / 'data').mkdir()
    return {'root': root, 'i3d': i3d, 'dataroot': str(root / 'data')}


def _fvd(setup, results: str, *extra) -> dict:
    out = setup['root'] / f'{results}.json'
    result = run_tool(
        EVALUATE, '--results_dir', setup['root'] / results, '--dataroot', setup['dataroot'], '--fvd', '--i3d_weights', setup['i3d'],
        '--fvd_frames', CLIP, '--first_frame', 1, '--gpu_ids', '-1', '--batch_size', 3, '--method', 'vid2vid', '--json', out, *extra,
    )  # fmt: skip
    assert_ok(result)
    report = json.loads(out.read_text())
    assert f"FVD (vid2vid, {report['fvd']['clips']} clips of {CLIP} frames from frame 1 of {N_VIDEOS} videos" in result.stdout
    return report['fvd']


def _clip_features(setup, results: str, kind: str) -> torch.Tensor:
    """The stand-in's features of the clips --fvd should take (frames 1-4 and 5-8 of every video), built here anew."""
    model = torch.jit.load(setup['i3d'])
    clips = []
    for index in range(N_VIDEOS):
        folder = setup['root'] / results / 'images' / f'seq_{index:04d}'
        frames = [np.asarray(Image.open(folder / f'{kind}_{t:04d}.png'), dtype=np.float32) for t in range(N_FRAMES)]
        for first in (1, 1 + CLIP):
            clips.append(torch.from_numpy(np.stack(frames[first : first + CLIP])).permute(3, 0, 1, 2))  # 3 x T x H x W, 0-255
    return model(torch.stack(clips), rescale=True, resize=True, return_features=True)


def test_fvd_is_zero_for_identical_videos_and_positive_for_changed_ones(fvd_setup):
    same = _fvd(fvd_setup, 'same')
    assert (same['clips'], same['frames_per_clip'], same['first_frame'], same['videos']) == (2 * N_VIDEOS, CLIP, 1, N_VIDEOS)
    real = _clip_features(fvd_setup, 'same', 'real_image')
    _, cov = metrics.gaussian_statistics(real)
    bound = rounding_bound(cov)
    assert abs(same['fvd']) <= bound
    brighter = _fvd(fvd_setup, 'brighter')
    fake = _clip_features(fvd_setup, 'brighter', 'synthesized_image')
    # The clips, the detector's switches and the value range are the ones built above: the same distance.
    assert brighter['fvd'] == pytest.approx(metrics.video_frechet_distance(fake, real), rel=1e-6)
    # +40 of 255 moves each channel's mean by about 40 / 127.5 (less where it clips): about 3 * 0.31^2.
    assert brighter['fvd'] > 0.1 and brighter['fvd'] > 1e6 * bound


def test_fvd_errors_name_the_file_and_the_fix(fvd_setup, tmp_path):
    setup = fvd_setup
    base = ('--results_dir', setup['root'] / 'same', '--dataroot', setup['dataroot'], '--gpu_ids', '-1')
    result = run_tool(EVALUATE, *base, '--fvd')
    assert_one_line_error(result, '--fvd needs --i3d_weights PATH', metrics.I3D_FILE, 'docs/VIDEO.md')
    missing = tmp_path / 'missing.pt'
    assert_one_line_error(run_tool(EVALUATE, *base, '--fvd', '--i3d_weights', missing), str(missing), 'file not found', metrics.I3D_FILE)
    state_dict = tmp_path / 'i3d_state_dict.pth'
    torch.save({'conv.weight': torch.zeros(1)}, state_dict)
    result = run_tool(EVALUATE, *base, '--fvd', '--i3d_weights', state_dict)
    assert_one_line_error(result, str(state_dict), 'not a TorchScript file', metrics.I3D_FILE)
    other = tmp_path / 'other.pt'
    torch.jit.script(NotI3D()).save(other)
    result = run_tool(EVALUATE, *base, '--fvd', '--i3d_weights', other)
    assert_one_line_error(result, str(other), 'not a TorchScript I3D', 'without rescale, resize, return_features', metrics.I3D_FILE)
    # Too few clips: from frame 2, 9 frames hold no clip of 8.
    result = run_tool(EVALUATE, *base, '--fvd', '--i3d_weights', setup['i3d'], '--fvd_frames', 8, '--first_frame', 2)
    assert_one_line_error(result, '--fvd: 0 clip(s) of 8 frames from frame 2 in 5 video(s) of 9-9 frames', 'at least 2', '--fvd_frames')
    no_real = tmp_path / 'no_real' / 'images' / 'seq_0000'
    shutil.copytree(setup['root'] / 'same' / 'images' / 'seq_0000', no_real)
    for path in no_real.glob('real_image_*.png'):
        path.unlink()
    result = run_tool(EVALUATE, '--results_dir', tmp_path / 'no_real', *base[2:], '--fvd', '--i3d_weights', setup['i3d'])
    assert_one_line_error(result, 'seq_0000: 9 synthesized frames but 0 real_image_*.png', '<phase>_img')
    result = run_tool(EVALUATE, *base, '--i3d_weights', setup['i3d'], '--warping_error')
    assert_one_line_error(result, '--i3d_weights is only used with --fvd')
