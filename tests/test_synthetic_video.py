"""The synthetic video (data/synthetic_video.py): its flow and masks checked against its own rendering."""

import hashlib
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from data.flow_files import load_flow
from data.synthetic import ALLOWED_LABEL_IDS
from data.synthetic_video import generate_sequence, make_synthetic_video
from util.flow import flow_grid, warp

W, H, T = 128, 64, 8
# Every frame is a whole-pixel translation of the same pixels, so warping reads them back exactly: the only error is
# float32 rounding in util.flow's grid (a coordinate off by ~W * 2**-24 of a pixel, well under 1e-5) times a jump of
# at most 2 between neighbouring pixels in [-1, 1]. 1e-4 bounds that tenfold; a one-pixel error in a flow costs ~0.1.
TOLERANCE = 1e-4


def sequences(count: int = 6):
    """Rendered sequences of several seeds (pans of both signs, one to three cars)."""
    return [generate_sequence(W, H, T, np.random.default_rng(seed)) for seed in range(count)]


def photo_tensor(photos: np.ndarray) -> torch.Tensor:
    """T x H x W x 3 uint8 as T x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def warp_nearest(maps: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Maps (T-1 x H x W ids) read at each pixel plus the flow, nearest: ids must not be blended."""
    grid = flow_grid(torch.from_numpy(flows))
    values = torch.from_numpy(maps.astype(np.float32))[:, None]
    return F.grid_sample(values, grid, mode='nearest', padding_mode='border', align_corners=True)[:, 0].numpy()


@pytest.mark.parametrize('sequence', sequences(), ids=lambda s: f'pan{s.pan}')
def test_warping_the_previous_photo_by_the_flow_gives_the_photo_where_visible(sequence):
    photos = photo_tensor(sequence.photos)
    error = (warp(photos[:-1], torch.from_numpy(sequence.flows)) - photos[1:]).abs().amax(dim=1)
    visible = torch.from_numpy(sequence.masks).bool()
    assert float(error[visible].max()) < TOLERANCE
    # The mask matters: where it is 0 (disoccluded by a car or entering the frame) the warp is plainly wrong somewhere.
    assert float(error[~visible].max()) > 0.1
    assert 0.8 < float(visible.float().mean()) < 1.0


@pytest.mark.parametrize('sequence', sequences(), ids=lambda s: f'pan{s.pan}')
def test_label_and_instance_maps_warp_exactly_where_visible(sequence):
    visible = sequence.masks.astype(bool)
    for maps in (sequence.labels, sequence.insts):
        warped = warp_nearest(maps[:-1], sequence.flows)
        assert np.array_equal(warped[visible], maps[1:][visible].astype(np.float32))


def test_flow_is_the_pan_on_the_background_and_pan_less_speed_on_each_car():
    for sequence in sequences():
        assert sequence.pan != 0 and sequence.cars
        assert not sequence.flows[:, 1].any()  # the motion is horizontal
        for t in range(1, T):
            expected = np.full((H, W), sequence.pan, np.float32)
            for car in sequence.cars:
                assert car['speed'] != sequence.pan  # every car moves against the background
                expected[sequence.insts[t] == car['instance_id']] = sequence.pan - car['speed']
            assert np.array_equal(sequence.flows[t - 1, 0], expected)


def test_masks_mark_the_columns_entering_the_frame():
    for sequence in sequences():
        entering = slice(W - sequence.pan, W) if sequence.pan > 0 else slice(0, -sequence.pan)
        cars = np.isin(sequence.insts[1:], [car['instance_id'] for car in sequence.cars])
        background_entering = ~cars[:, :, entering]
        assert not sequence.masks[:, :, entering][background_entering].any()


def test_a_still_camera_has_zero_background_flow():
    sequence = generate_sequence(W, H, T, np.random.default_rng(0), max_pan=0)
    assert sequence.pan == 0
    background = sequence.insts[1:] < 26000
    assert not sequence.flows[:, 0][background].any()
    # A still background is seen wherever no car stood on it in the frame before; where one did, it is disoccluded.
    uncovered = background & (sequence.insts[:-1] < 26000)
    assert sequence.masks[uncovered].all()
    assert not sequence.masks[background & ~uncovered].any()


def tree_digest(root: str) -> str:
    """One hash of every file's relative path and bytes under root."""
    digest = hashlib.sha256()
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def test_written_layout_is_complete_consistent_and_deterministic(tmp_path):
    root = str(tmp_path / 'video')
    counts = make_synthetic_video(root, n_train=2, n_test=1, n_frames=4, width=W, height=H, seed=5)
    assert counts == {f'{split}_{kind}': n for split, n in (('train', 2), ('test', 1)) for kind in ('label', 'inst', 'img', 'flow')}
    record = json.load(open(os.path.join(root, 'video.json')))
    assert sorted(record) == ['test/seq_0000', 'train/seq_0000', 'train/seq_0001']
    frames = [f'frame_{t:04d}.png' for t in range(4)]
    for split, n in (('train', 2), ('test', 1)):
        for i in range(n):
            sequence = f'seq_{i:04d}'
            for kind in ('label', 'inst', 'img'):
                assert sorted(os.listdir(os.path.join(root, f'{split}_{kind}', sequence))) == frames
            assert sorted(os.listdir(os.path.join(root, f'{split}_flow', sequence))) == [f'frame_{t:04d}.npz' for t in range(1, 4)]
            labels = [np.asarray(Image.open(os.path.join(root, f'{split}_label', sequence, f))) for f in frames]
            assert set(np.unique(labels).tolist()) <= ALLOWED_LABEL_IDS
            flow, mask = load_flow(os.path.join(root, f'{split}_flow', sequence, 'frame_0001.npz'))
            assert flow.shape == (2, H, W) and flow.dtype == np.float32 and mask.shape == (H, W)
            assert set(np.unique(mask).tolist()) <= {0, 1}
    first = tree_digest(root)
    # Rewriting replaces the files (a longer earlier run's frames and sequences go) and gives the same bytes.
    make_synthetic_video(root, n_train=3, n_test=1, n_frames=6, width=W, height=H, seed=5)
    make_synthetic_video(root, n_train=2, n_test=1, n_frames=4, width=W, height=H, seed=5)
    assert tree_digest(root) == first


def test_script_writes_the_video(tmp_path):
    from scripts.make_synthetic_video import main

    counts = main(['--dataroot', str(tmp_path), '--n_train', '1', '--n_test', '1', '--n_frames', '3', '--width', '64', '--height', '32'])
    assert counts['train_flow'] == 1
    assert len(os.listdir(tmp_path / 'test_flow' / 'seq_0000')) == 2


def test_too_small_or_too_short_is_refused(tmp_path):
    with pytest.raises(ValueError, match='too small'):
        make_synthetic_video(str(tmp_path), width=16, height=16)
    with pytest.raises(ValueError, match='n_frames'):
        make_synthetic_video(str(tmp_path), n_frames=1)


def near_a_boundary(maps: np.ndarray) -> np.ndarray:
    """T x H x W: True where one of the 8 neighbours holds another id (edge pixels compare with themselves)."""
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode='edge')
    _, height, width = maps.shape
    near = np.zeros(maps.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] != maps
    return near


def test_label_jitter_moves_boundaries_per_frame_and_leaves_photos_and_flow_exact(tmp_path):
    exact, jittered = str(tmp_path / 'exact'), str(tmp_path / 'jittered')
    make_synthetic_video(exact, n_train=1, n_test=1, n_frames=6, width=W, height=H, seed=3)
    make_synthetic_video(jittered, n_train=1, n_test=1, n_frames=6, width=W, height=H, seed=3, label_jitter=0.5)

    def read(root, kind, split='train'):
        folder = os.path.join(root, f'{split}_{kind}', 'seq_0000')
        return np.stack([np.asarray(Image.open(os.path.join(folder, name))) for name in sorted(os.listdir(folder))])

    for split in ('train', 'test'):
        # Photos and flow files are the exact video's, byte for byte.
        for kind in ('img', 'flow'):
            folder = f'{split}_{kind}/seq_0000'
            for name in sorted(os.listdir(os.path.join(exact, folder))):
                with open(os.path.join(exact, folder, name), 'rb') as a, open(os.path.join(jittered, folder, name), 'rb') as b:
                    assert a.read() == b.read(), f'{folder}/{name}'
        labels, noisy_labels = read(exact, 'label', split), read(jittered, 'label', split)
        insts, noisy_insts = read(exact, 'inst', split), read(jittered, 'inst', split)
        changed = (labels != noisy_labels) | (insts != noisy_insts)
        # The maps really change, in every frame, and differently from frame to frame ...
        assert all(changed[t].any() for t in range(len(changed)))
        assert 0.005 < changed.mean() < 0.1
        assert not all(np.array_equal(changed[0], changed[t]) for t in range(1, len(changed)))
        # ... but only next to a boundary, where a neighbour's id came one pixel over; ids are ones the frame had.
        assert not (changed & ~near_a_boundary(labels.astype(np.int64) * 65536 + insts)).any()
        for t in range(len(labels)):
            assert set(np.unique(noisy_labels[t]).tolist()) <= set(np.unique(labels[t]).tolist())
        # Label and instance maps move together: a car's instance keeps its car label.
        assert np.array_equal(noisy_labels[noisy_insts >= 26000], np.full(int((noisy_insts >= 26000).sum()), 26))
    # Deterministic, and 0 writes the exact maps.
    digest = tree_digest(jittered)
    make_synthetic_video(jittered, n_train=1, n_test=1, n_frames=6, width=W, height=H, seed=3, label_jitter=0.5)
    assert tree_digest(jittered) == digest
    make_synthetic_video(jittered, n_train=1, n_test=1, n_frames=6, width=W, height=H, seed=3, label_jitter=0.0)
    assert tree_digest(jittered) == tree_digest(exact)
    with pytest.raises(ValueError, match='label_jitter'):
        make_synthetic_video(jittered, label_jitter=1.5)
