"""The sequence dataset (data/sequence_dataset.py) on the synthetic video: shapes, one crop and flip per clip that keep
the exact flow exact, seeded clips, flow files of both formats, Cityscapes names, and errors on broken layouts."""

import argparse
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from data.flow_files import load_flow, save_flo, save_flow
from data.sampler import ResumableSampler
from data.sequence_dataset import SequenceDataset, sequence_dataset
from data.synthetic_video import make_synthetic_video
from util.errors import DatasetError
from util.flow import warp

W, H, T, N_TRAIN = 128, 64, 8, 3
# As in test_synthetic_video.py: whole-pixel motions warp exactly up to float32 rounding of the grid (< 1e-5).
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def video(tmp_path_factory) -> str:
    """A synthetic video written once: 3 train and 1 test sequences of 8 frames at 128x64."""
    root = str(tmp_path_factory.mktemp('video'))
    make_synthetic_video(root, n_train=N_TRAIN, n_test=1, n_frames=T, width=W, height=H, seed=0)
    return root


@pytest.fixture
def copy_of(video, tmp_path):
    """A private copy of the video to break."""
    root = str(tmp_path / 'video')
    shutil.copytree(video, root)
    return root


def masked_warp_error(item: dict) -> tuple[float, float]:
    """Largest |frame t - warp(frame t-1, flow t)| over the pixels the mask marks visible, and over all pixels."""
    images = item['image']
    error = (warp(images[:-1], item['flow']) - images[1:]).abs().amax(dim=1, keepdim=True)
    return float((error * item['flow_mask']).max()), float(error.max())


def test_a_clip_holds_every_kind_with_consistent_shapes(video):
    dataset = SequenceDataset(video, 'train', 35, 5, seed=0)
    assert len(dataset) == dataset.dataset_size == N_TRAIN
    assert dataset.name() == 'SequenceDataset'
    item = dataset[(0, 1)]
    assert item['label'].shape == (5, 1, H, W) and item['label'].dtype == torch.int32
    assert item['inst'].shape == (5, 1, H, W) and int(item['inst'].max()) >= 26000
    assert item['image'].shape == (5, 3, H, W) and item['image'].dtype == torch.float32
    assert -1.0 <= float(item['image'].min()) and float(item['image'].max()) <= 1.0
    assert item['flow'].shape == (4, 2, H, W) and item['flow_mask'].shape == (4, 1, H, W)
    assert set(item['flow_mask'].unique().tolist()) == {0.0, 1.0}
    assert item['path'] == os.path.join(video, 'train_label', 'seq_0001')
    assert 0 <= item['start'] <= T - 5
    # The clip is the sequence's frames start..start+4, its flows those of frames start+1..start+4.
    frame = np.asarray(Image.open(os.path.join(video, 'train_label', 'seq_0001', f"frame_{item['start'] + 2:04d}.png")))
    assert np.array_equal(item['label'][2, 0].numpy(), frame)
    flow, _ = load_flow(os.path.join(video, 'train_flow', 'seq_0001', f"frame_{item['start'] + 1:04d}.npz"))
    assert np.array_equal(item['flow'][0].numpy(), flow)


def test_whole_sequences_batch_through_a_data_loader(video):
    dataset = SequenceDataset(video, 'train', 35, start=0, batch_size=2)
    assert len(dataset) == 2  # whole batches only
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch['label'].shape == (2, T, 1, H, W) and batch['flow'].shape == (2, T - 1, 2, H, W)
    assert batch['start'].tolist() == [0, 0]


def test_the_resumable_sampler_drives_seeded_clips(video):
    """train.py's sampler yields (epoch, index) keys: a resumed epoch sees the same clips."""
    dataset = SequenceDataset(video, 'train', 35, 3, seed=0, flip=True, batch_size=1)
    sampler = ResumableSampler(dataset.dataset_size, 1, shuffle=True, seed=0)
    sampler.set_epoch(2)
    whole = [(batch['path'], batch['start'].item()) for batch in torch.utils.data.DataLoader(dataset, sampler=sampler)]
    sampler.set_epoch(2, skip_batches=1)
    assert [(batch['path'], batch['start'].item()) for batch in torch.utils.data.DataLoader(dataset, sampler=sampler)] == whole[1:]


@pytest.mark.parametrize(
    'settings',
    [
        {},
        {'flip': True},
        {'resize_or_crop': 'crop', 'fine_size': 48},
        {'flip': True, 'resize_or_crop': 'crop', 'fine_size': 40},
        {'flip': True, 'resize_or_crop': 'crop', 'fine_size': 40, 'max_step': 2},
    ],
    ids=['plain', 'flip', 'crop', 'flip+crop', 'flip+crop+skipped frames'],
)
def test_clips_keep_the_warp_exact_where_visible(video, settings):
    dataset = SequenceDataset(video, 'train', 35, 4, seed=3, **settings)
    errors = [masked_warp_error(dataset[(epoch, index)]) for epoch in range(3) for index in range(N_TRAIN)]
    assert max(masked for masked, _ in errors) < TOLERANCE
    assert max(unmasked for _, unmasked in errors) > 0.1  # the mask matters: cars disocclude and columns enter


def test_skipped_frames_are_spaced_by_the_drawn_step_with_their_flows_composed(video):
    """max_step (vid2vid's --max_t_step): each clip's frames are `step` apart, a step drawn per clip from 1 .. max_step
    and at most what the sequence holds; its flows take each frame to the one `step` before, exact where visible."""
    dataset = SequenceDataset(video, 'train', 35, 3, seed=0, max_step=5)
    items = [dataset[(epoch, index)] for epoch in range(4) for index in range(N_TRAIN)]
    steps = {item['step'] for item in items}
    assert steps == {1, 2, 3}  # 8 frames hold a clip of 3 at a step of 3 at most
    for item in items:
        start, step = item['start'], item['step']
        assert 0 <= start and start + 2 * step <= T - 1
        for k in range(3):
            frame = np.asarray(Image.open(os.path.join(item['path'], f'frame_{start + k * step:04d}.png')))
            assert np.array_equal(item['label'][k, 0].numpy(), frame)
        masked, unmasked = masked_warp_error(item)
        assert masked < TOLERANCE and item['flow_mask'].mean() > 0.5  # most pixels are tracked back `step` frames
    # The flow of a step of 3 is no single flow file: one file warps the frame 3 back plainly wrongly.
    far = next(item for item in items if item['step'] == 3)
    one_file, _ = load_flow(os.path.join(far['path'].replace('train_label', 'train_flow'), f"frame_{far['start'] + 3:04d}.npz"))
    assert masked_warp_error({**far, 'flow': torch.from_numpy(one_file)[None].expand_as(far['flow'])})[0] > 0.1


def mirrored_pair(video, **settings) -> tuple[dict, dict]:
    """The same seeded clip read without and with flipping, at the first (epoch, index) whose draw flips."""
    plain = SequenceDataset(video, 'train', 35, 4, seed=1, **settings)
    flipped = SequenceDataset(video, 'train', 35, 4, seed=1, flip=True, **settings)
    for epoch in range(20):
        a, b = plain[(epoch, 0)], flipped[(epoch, 0)]
        if not torch.equal(a['label'], b['label']):
            return a, b
    raise AssertionError('no draw flipped in 20 epochs')


def test_a_flip_mirrors_every_frame_and_negates_flow_x(video):
    a, b = mirrored_pair(video)
    assert a['start'] == b['start']
    for name in ('label', 'inst', 'image', 'flow_mask'):
        assert torch.equal(b[name], a[name].flip(-1)), name
    assert torch.equal(b['flow'][:, 0], -a['flow'][:, 0].flip(-1))
    assert torch.equal(b['flow'][:, 1], a['flow'][:, 1].flip(-1))
    assert masked_warp_error(b)[0] < TOLERANCE


def test_a_crop_keeps_flow_values_and_masks_what_it_cuts_off(video):
    whole = SequenceDataset(video, 'train', 35, 4, start=2)[2]
    cropped_set = SequenceDataset(video, 'train', 35, 4, start=2, seed=0, resize_or_crop='crop', fine_size=40)
    for epoch in range(6):
        cropped = cropped_set[(epoch, 2)]
        # Find the crop's position from the labels, then compare the flows there.
        windows = [
            (y, x)
            for y in range(H - 40 + 1)
            for x in range(W - 40 + 1)
            if torch.equal(whole['image'][..., y : y + 40, x : x + 40], cropped['image'])
        ]
        assert windows, 'the crop is no window of the frames'
        y, x = windows[0]
        assert torch.equal(cropped['flow'], whole['flow'][..., y : y + 40, x : x + 40])
        inside = whole['flow_mask'][..., y : y + 40, x : x + 40]
        assert bool((cropped['flow_mask'] <= inside).all())  # visible in the crop: visible in the whole frame too
        # ...and a pixel whose content was outside the crop before is not visible any more
        source = torch.arange(40.0) + cropped['flow'][:, 0, :, :]
        outside = (source < 0) | (source > 39)
        assert not bool(cropped['flow_mask'][:, 0][outside].any())


def test_seeded_clips_depend_only_on_seed_epoch_and_index(video):
    settings = {'seed': 7, 'flip': True, 'resize_or_crop': 'crop', 'fine_size': 48}
    first, second = SequenceDataset(video, 'train', 35, 3, **settings), SequenceDataset(video, 'train', 35, 3, **settings)
    for key in ((0, 0), (1, 0), (4, 2)):
        a, b = first[key], second[key]
        assert a['start'] == b['start'] and all(torch.equal(a[n], b[n]) for n in ('label', 'image', 'flow'))
    starts = {first[(epoch, 0)]['start'] for epoch in range(12)}
    assert len(starts) > 1  # the offset is drawn


def test_the_clip_length_grows_on_a_copy(video):
    dataset = SequenceDataset(video, 'train', 35, 2, start=0)
    longer = dataset.with_clip_length(6)
    assert dataset[0]['label'].shape[0] == 2 and longer[0]['label'].shape[0] == 6
    assert dataset.with_clip_length(None)[0]['label'].shape[0] == T == dataset.sequence_length(0)
    with pytest.raises(DatasetError, match=r'seq_0000: 8 frames, fewer than the clip length 9'):
        dataset.with_clip_length(9)


def test_a_fixed_start_past_the_end_takes_the_last_whole_clip(video):
    assert SequenceDataset(video, 'test', 35, 3, start=100)[0]['start'] == T - 3


def test_a_resize_scales_the_flow(video):
    item = SequenceDataset(video, 'train', 35, 3, start=0, resize_or_crop='scale_width', load_size=64)[0]
    whole = SequenceDataset(video, 'train', 35, 3, start=0)[0]
    assert item['flow'].shape == (2, 2, 32, 64)
    assert torch.equal(item['flow'], whole['flow'][..., 1::2, 1::2] / 2)  # PIL's nearest halving reads odd pixels; values halved


def test_without_optional_folders_kinds_are_empty(copy_of):
    shutil.rmtree(os.path.join(copy_of, 'test_flow'))
    shutil.rmtree(os.path.join(copy_of, 'test_img'))
    item = SequenceDataset(copy_of, 'test', 35, instances=False, photos=None)[0]
    assert item['label'].shape == (T, 1, H, W)
    assert item['inst'].numel() == item['image'].numel() == item['flow'].numel() == item['flow_mask'].numel() == 0
    with pytest.raises(DatasetError, match=r'test_flow: folder of flow files .* not found'):
        SequenceDataset(copy_of, 'test', 35, photos=None, flow=True)


def test_middlebury_flo_files_are_read_with_masks_of_the_frame_only(video, copy_of):
    folder = os.path.join(copy_of, 'test_flow', 'seq_0000')
    for name in sorted(os.listdir(folder)):
        flow, _ = load_flow(os.path.join(folder, name))
        os.remove(os.path.join(folder, name))
        save_flo(os.path.join(folder, name.replace('.npz', '.flo')), flow)
    item = SequenceDataset(copy_of, 'test', 35, start=0)[0]
    assert torch.equal(item['flow'], SequenceDataset(video, 'test', 35, start=0)[0]['flow'])
    # A .flo file has no mask: only pixels whose content lies outside the previous frame are marked not visible.
    source = torch.arange(W) + item['flow'][:, 0]
    assert torch.equal(item['flow_mask'][:, 0], ((source >= 0) & (source <= W - 1)).float())


def test_cityscapes_names_in_one_folder_split_into_sequences(tmp_path):
    """leftImg8bit_sequence keeps a city's sequences in one folder: city_sequence_frame names split them."""
    for kind, suffix in (('label', 'gtFine_labelIds'), ('img', 'leftImg8bit')):
        folder = tmp_path / f'train_{kind}' / 'aachen'
        folder.mkdir(parents=True)
        for sequence in range(2):
            for frame in range(3):
                array = np.full((16, 32, 3) if kind == 'img' else (16, 32), sequence * 10 + frame, np.uint8)
                Image.fromarray(array).save(folder / f'aachen_{sequence:06d}_{frame:06d}_{suffix}.png')
    dataset = SequenceDataset(str(tmp_path), 'train', 35, instances=False)
    assert dataset.names == [os.path.join('aachen', 'aachen_000000'), os.path.join('aachen', 'aachen_000001')]
    assert dataset[1]['label'][:, 0, 0, 0].tolist() == [10, 11, 12]


def test_built_from_the_family_options(video):
    opt = argparse.Namespace(
        dataroot=video, phase='test', label_nc=35, no_instance=False, isTrain=False, resize_or_crop='none', loadSize=128,
        fineSize=128, size_base=1, no_flip=False, seed=None, batchSize=1,
    )  # fmt: skip
    item = sequence_dataset(opt, 4)[0]
    assert item['start'] == 0 and item['label'].shape == (4, 1, H, W) and item['flow'].shape == (3, 2, H, W)


# --------------------------------------------------------------------------- errors on broken layouts


def test_a_missing_label_folder_names_the_phase(tmp_path):
    with pytest.raises(DatasetError, match=r'val_label: folder of label-map sequences not found; check the dataroot .* and phase val'):
        SequenceDataset(str(tmp_path), 'val', 35)


def test_a_missing_photo_names_the_sequence_and_frame(copy_of):
    os.remove(os.path.join(copy_of, 'train_img', 'seq_0001', 'frame_0005.png'))
    with pytest.raises(
        DatasetError,
        match=r"train_img/seq_0001: 7 photos for 8 label maps of sequence seq_0001 \(1 frames without one, e.g. \['frame_0005'\]",
    ):
        SequenceDataset(copy_of, 'train', 35)


def test_a_missing_sequence_in_another_folder_is_named(copy_of):
    shutil.rmtree(os.path.join(copy_of, 'train_inst', 'seq_0002'))
    with pytest.raises(DatasetError, match=r'train_inst/seq_0002: 0 instance maps .* for 8 label maps'):
        SequenceDataset(copy_of, 'train', 35)


def test_different_frame_counts_are_refused(copy_of):
    shutil.copy(
        os.path.join(copy_of, 'train_flow', 'seq_0000', 'frame_0001.npz'), os.path.join(copy_of, 'train_flow', 'seq_0000', 'frame_0000.npz')
    )
    with pytest.raises(DatasetError, match=r'8 flow files .* for 7 label maps of sequence seq_0000 .* from the second on'):
        SequenceDataset(copy_of, 'train', 35)


def test_a_clip_longer_than_a_sequence_is_refused(copy_of):
    os.remove(os.path.join(copy_of, 'test_label', 'seq_0000', 'frame_0007.png'))
    os.remove(os.path.join(copy_of, 'test_inst', 'seq_0000', 'frame_0007.png'))
    os.remove(os.path.join(copy_of, 'test_img', 'seq_0000', 'frame_0007.png'))
    os.remove(os.path.join(copy_of, 'test_flow', 'seq_0000', 'frame_0007.npz'))
    assert SequenceDataset(copy_of, 'test', 35, 7)[0]['label'].shape[0] == 7
    with pytest.raises(DatasetError, match=r'test_label/seq_0000: 7 frames, fewer than the clip length 8; use clips of at most 7'):
        SequenceDataset(copy_of, 'test', 35, 8)


def test_label_values_beyond_label_nc_are_refused(video):
    with pytest.raises(DatasetError, match=r'label value 26 >= label_nc 20'):
        SequenceDataset(video, 'test', 20)[0]
    with pytest.raises(DatasetError, match=r'pass --label_nc 27 to cover the whole dataset'):
        SequenceDataset(video, 'test', 20).check_contents()
    SequenceDataset(video, 'test', 35).check_contents()


def test_a_crop_larger_than_the_frames_is_refused(video):
    with pytest.raises(DatasetError, match=r'64x128|128x64'):
        SequenceDataset(video, 'test', 35, resize_or_crop='crop', fine_size=80).check_contents()


def test_broken_or_misaligned_flow_files_are_named(copy_of):
    path = os.path.join(copy_of, 'test_flow', 'seq_0000', 'frame_0003.npz')
    save_flow(path, np.zeros((2, H, W // 2), np.float32))
    with pytest.raises(DatasetError, match=r'frame_0003.npz: flow is 64x64 but its label map is 128x64'):
        SequenceDataset(copy_of, 'test', 35, start=0)[0]
    with open(path, 'wb') as handle:
        handle.write(b'not a flow')
    with pytest.raises(DatasetError, match=r'frame_0003.npz: cannot read flow'):
        SequenceDataset(copy_of, 'test', 35, start=0)[0]


def test_frames_of_different_sizes_are_refused(copy_of):
    path = os.path.join(copy_of, 'test_img', 'seq_0000', 'frame_0002.png')
    Image.open(path).resize((W // 2, H // 2)).save(path)
    with pytest.raises(DatasetError, match=r'frame_0002.png: 64x32, but .*frame_0002.png is 128x64'):
        SequenceDataset(copy_of, 'test', 35, start=0)[0]
