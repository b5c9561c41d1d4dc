"""scripts/label_cityscapes_sequences.py on a few tiny frames named as Cityscapes' leftImg8bit_sequence: the layout the
sequence dataset reads, the trainId -> labelId mapping on known logits, resuming, torchvision weights, one-line errors."""

import os

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from data.sequence_dataset import SequenceDataset
from helpers import assert_ok, assert_one_line_error, run_tool
from util.cityscapes import TRAIN_TO_LABEL_ID

SCRIPT = os.path.join('scripts', 'label_cityscapes_sequences.py')
# torch >= 2.10 marks TorchScript deprecated; --seg_model reads TorchScript archives.
pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning')
# Three sequences of 3, 2 and 2 frames, 40x16: two in one city folder (the reader splits them by city_seq).
FRAMES = {
    'aachen': ['aachen_000000_000000', 'aachen_000000_000001', 'aachen_000000_000002', 'aachen_000001_000000', 'aachen_000001_000001'],
    'bochum': ['bochum_000000_000018', 'bochum_000000_000019'],
}
WIDTH, HEIGHT = 40, 16


class ColumnLogits(torch.nn.Module):
    """Fixed logits, whatever the photo, at 1/stride of its size: in column j class j % n wins (torchvision's output, a
    dict with 'out'). Resized (bilinear) to the photo, column x's winner is class (x // stride) % n."""

    def __init__(self, n: int, stride: int) -> None:
        super().__init__()
        self.n, self.stride = n, stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[2] // self.stride, x.shape[3] // self.stride
        columns = torch.arange(width, device=x.device) % self.n
        classes = torch.arange(self.n, device=x.device)
        logits = -(classes.view(-1, 1) - columns.view(1, -1)).abs().float()  # n x W: 0 for the winner, below 0 elsewhere
        return {'out': logits.view(1, self.n, 1, width).expand(x.shape[0], self.n, height, width)}


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    """The frames under photos/<city>/ and the stand-in networks of 19 trainIds (at the photo's size) and 34 labelIds (at
    half of it) as TorchScript files."""
    root = tmp_path_factory.mktemp('label_sequences')
    rng = np.random.default_rng(0)
    for city, keys in FRAMES.items():
        os.makedirs(root / 'photos' / city)
        for key in keys:
            photo = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
            Image.fromarray(photo).save(root / 'photos' / city / f'{key}_leftImg8bit.png')
    models = {}
    for n in (19, 34):
        models[n] = str(root / f'columns{n}.pt')
        torch.jit.script(ColumnLogits(n, stride=1 if n == 19 else 2)).save(models[n])
    return {'root': root, 'photos': str(root / 'photos'), 'models': models}


def label(setup, dataroot, *extra):
    """The script on the CPU, in this process."""
    return run_tool(SCRIPT, '--photos', setup['photos'], '--dataroot', dataroot, '--gpu_ids', '-1', '--nThreads', 0, *extra)


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_trainIds_become_labelIds_in_the_layout_the_sequence_dataset_reads(setup, tmp_path):
    dataroot = tmp_path / 'data'
    result = label(setup, dataroot, '--seg_model', setup['models'][19], '--width', 20, '--batch_size', 2)
    assert_ok(result)
    assert '7 frames labelled, 0 already labelled kept, of 7 frames in 3 sequences' in result.stdout
    names = sorted(os.path.relpath(os.path.join(folder, name), dataroot) for folder, _, files in os.walk(dataroot) for name in files)
    expected = [f'train_img/{city}/{key}_leftImg8bit.png' for city, keys in FRAMES.items() for key in keys]
    expected += [f'train_label/{city}/{key}_labelIds.png' for city, keys in FRAMES.items() for key in keys]
    assert names == sorted(expected)
    # At --width 20 (40x16 -> 20x8) column x holds class x % 19, written as its labelId: 7 (road), 8, 11, ..., 33, then 7.
    row = [TRAIN_TO_LABEL_ID[x % 19] for x in range(20)]
    assert row[:3] == [7, 8, 11] and row[18:] == [33, 7]
    for city, keys in FRAMES.items():
        for key in keys:
            labels = read(dataroot / 'train_label' / city / f'{key}_labelIds.png')
            assert labels.dtype == np.uint8 and labels.shape == (8, 20) and (labels == row).all()
            photo = Image.open(dataroot / 'train_img' / city / f'{key}_leftImg8bit.png')
            assert photo.size == (20, 8) and photo.mode == 'RGB'
    sequences = SequenceDataset(str(dataroot), 'train', label_nc=35, instances=False)
    assert sequences.names == ['aachen/aachen_000000', 'aachen/aachen_000001', 'bochum/bochum_000000']
    item = sequences[0]
    assert item['label'].shape == (3, 1, 8, 20) and item['image'].shape == (3, 3, 8, 20)
    assert (item['label'][:, 0] == torch.tensor(row, dtype=torch.int32)).all()


def test_labelId_networks_write_their_classes_at_the_photos_size(setup, tmp_path):
    dataroot = tmp_path / 'data'
    result = label(setup, dataroot, '--seg_model', setup['models'][34], '--num_classes', 34)
    assert_ok(result)
    labels = read(dataroot / 'train_label' / 'bochum' / 'bochum_000000_000019_labelIds.png')
    # Logits at half size, resized to the photo: column x is class (x // 2) % 34, the labelId itself.
    assert labels.shape == (HEIGHT, WIDTH) and (labels == [(x // 2) % 34 for x in range(WIDTH)]).all()
    assert not (dataroot / 'train_img').exists()  # without --width the photos stay where they are, to be linked
    assert f"ln -s {os.path.abspath(setup['photos'])} {dataroot / 'train_img'}" in result.stdout
    result = label(setup, tmp_path / 'other', '--seg_model', setup['models'][19], '--num_classes', 34)
    assert_one_line_error(result, 'returned (4, 19, 16, 40) for a (4, 3, 16, 40) batch', '--num_classes 19 for trainIds')


def test_a_second_run_labels_only_the_frames_not_done(setup, tmp_path):
    dataroot = tmp_path / 'data'
    assert_ok(label(setup, dataroot, '--seg_model', setup['models'][19]))
    done = dataroot / 'train_label' / 'aachen' / 'aachen_000000_000001_labelIds.png'
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(done)  # a mark: rewriting it would erase it
    missing = dataroot / 'train_label' / 'bochum' / 'bochum_000000_000018_labelIds.png'
    missing.unlink()
    result = label(setup, dataroot, '--seg_model', setup['models'][19])
    assert_ok(result)
    assert '1 frames labelled, 6 already labelled kept, of 7 frames' in result.stdout
    assert (read(done) == 0).all()
    assert (read(missing) == [TRAIN_TO_LABEL_ID[x % 19] for x in range(WIDTH)]).all()


def test_torchvision_deeplabv3_from_a_local_state_dict(setup, tmp_path):
    """A DeepLabV3 whose last layer says trainId 13 (car) everywhere, saved as a DataParallel training checkpoint with its
    auxiliary head: every pixel is labelId 26."""
    model = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19, aux_loss=True)
    with torch.no_grad():
        model.classifier[4].weight.zero_()
        model.classifier[4].bias.copy_(torch.nn.functional.one_hot(torch.tensor(13), 19).float())
    weights = tmp_path / 'deeplabv3_cityscapes.pth'
    torch.save({'model_state': {f'module.{key}': value for key, value in model.state_dict().items()}, 'epoch': 7}, weights)
    dataroot = tmp_path / 'data'
    result = label(setup, dataroot, '--arch', 'deeplabv3_mobilenet_v3_large', '--weights', weights, '--batch_size', 7)
    assert_ok(result)
    assert (read(dataroot / 'train_label' / 'aachen' / 'aachen_000001_000000_labelIds.png') == 26).all()
    result = label(setup, tmp_path / 'other', '--arch', 'deeplabv3_mobilenet_v3_large', '--weights', weights, '--num_classes', 34)
    assert_one_line_error(
        result, f'--weights {weights}: not a state_dict of deeplabv3_mobilenet_v3_large with 34 classes', '(19, 256, 1, 1)'
    )
    result = label(setup, tmp_path / 'other', '--arch', 'deeplabv3_resnet50', '--weights', weights)
    assert_one_line_error(result, 'not a state_dict of deeplabv3_resnet50', 'check --arch')


def test_wrong_folders_and_flags_are_one_line_errors(setup, tmp_path):
    model = ('--seg_model', setup['models'][19])
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = run_tool(SCRIPT, '--photos', empty, '--dataroot', tmp_path / 'data', *model)
    assert_one_line_error(result, f'{empty}: no Cityscapes sequence frames', 'leftImg8bit_sequence/train')
    result = run_tool(SCRIPT, '--photos', tmp_path / 'nowhere', '--dataroot', tmp_path / 'data', *model)
    assert_one_line_error(result, 'nowhere: folder of photos not found')
    (tmp_path / 'sequence' / 'train').mkdir(parents=True)
    (tmp_path / 'sequence' / 'val').mkdir()
    result = run_tool(SCRIPT, '--photos', tmp_path / 'sequence', '--dataroot', tmp_path / 'data', *model)
    assert_one_line_error(result, 'holds the splits train, val: pass one of them', str(tmp_path / 'sequence' / 'train'))
    linked = tmp_path / 'linked'
    linked.mkdir()
    os.symlink(setup['photos'], linked / 'train_img')  # DATAROOT/train_img linked to the photos, as the docs suggest
    result = run_tool(SCRIPT, '--photos', setup['photos'], '--dataroot', linked, '--width', 20, *model)
    assert_one_line_error(result, 'which holds --photos; pass another --dataroot')
    result = run_tool(SCRIPT, '--photos', linked / 'train_img' / 'aachen', '--dataroot', linked, '--width', 20, *model)
    assert_one_line_error(result, 'which holds --photos')
    result = run_tool(SCRIPT, '--photos', setup['photos'], '--dataroot', tmp_path / 'data')
    assert_one_line_error(result, 'pass the network as --seg_model FILE')
    result = run_tool(SCRIPT, '--photos', setup['photos'], '--dataroot', tmp_path / 'data', '--arch', 'deeplabv3_resnet50')
    assert_one_line_error(result, '--arch and --weights go together')
    result = label(setup, tmp_path / 'data', '--arch', 'deeplabv3_resnet50', '--weights', tmp_path / 'missing.pth')
    assert_one_line_error(result, 'missing.pth: file not found')
