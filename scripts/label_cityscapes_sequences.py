"""Label every frame of Cityscapes' leftImg8bit_sequence with a segmentation network, as vid2vid's training data.

    python scripts/label_cityscapes_sequences.py --photos ~/cityscapes/leftImg8bit_sequence/train \\
        --dataroot datasets/cityscapes_sequence --phase train --seg_model deeplabv3plus_cityscapes.pt [--width 1024]
    python scripts/label_cityscapes_sequences.py ... --arch deeplabv3_resnet101 --weights cityscapes_deeplabv3.pth

PHOTOS holds the frames <city>_<seq>_<frame>_leftImg8bit.png of one split (in city folders, or any folders below
it). The network labels each frame; its argmax is written as a labelIds PNG, DATAROOT/<phase>_label/<city>/
<city>_<seq>_<frame>_labelIds.png, the layout data/sequence_dataset.py reads (docs/VIDEO.md) with pix2pixHD's
--label_nc 35. A network of the 19 Cityscapes trainIds (--num_classes 19) has its classes mapped to their labelIds
(road 0 -> 7, ..., bicycle 18 -> 33); one of the 34 labelIds (--num_classes 34) is written as it is.

The network, from local files only: a TorchScript archive or a torch.export .pt2 program (--seg_model, as
scripts/evaluate.py reads it: float Bx3xHxW RGB normalised per --input_range in, Bx{19|34}xhxw logits out, a dict's
'out' or a tuple's first element), or a torchvision architecture (--arch) built without any download and given the
state_dict of --weights. Logits smaller than the frame are resized (bilinear) to it before the argmax.

--width W labels the frames resized (bicubic) to W pixels wide, and writes those resized photos to
DATAROOT/<phase>_img as well, so that labels and photos pair at one size; without it the labels have the photos'
size, and DATAROOT/<phase>_img can be a link to PHOTOS. A frame whose outputs exist is skipped (each file is written
whole or not at all), so an interrupted run resumes where it stopped. Exit status 0, or 1 with a one-line error.
"""

import argparse
import os
import re
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.aligned_dataset import image_header  # noqa: E402
from data.base_dataset import DatasetError, to_rgb  # noqa: E402
from options.base_options import OptionsError, resolve_gpu_ids  # noqa: E402
from util import metrics  # noqa: E402
from util.cityscapes import TRAIN_TO_LABEL_ID  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.errors import ModelError  # noqa: E402
from util.images import save_image  # noqa: E402

PHOTO = re.compile(r'^([A-Za-z]+_\d{6}_\d{6})_leftImg8bit\.png$')  # the city_seq_frame prefix the reader pairs by
ARCHITECTURES = ('deeplabv3_resnet50', 'deeplabv3_resnet101', 'deeplabv3_mobilenet_v3_large')  # torchvision's DeepLabV3s
NUM_CLASSES = {19: 'Cityscapes trainIds, mapped to labelIds', 34: 'Cityscapes labelIds 0-33, written as they are'}
SPLITS = ('train', 'val', 'test')
# Training checkpoints keep the weights under one of these keys (torchvision's references, DeepLabV3Plus-Pytorch, ...).
WRAPPERS = ('model', 'model_state', 'state_dict')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The script's flags (default sys.argv), checked: a wrong combination raises OptionsError."""
    summary, _, details = __doc__.split('\n\n', 2)
    parser = argparse.ArgumentParser(description=summary, epilog=details, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--photos', required=True, help='the frames of one split: leftImg8bit_sequence/<split> (its city folders)')
    parser.add_argument('--dataroot', required=True, help='dataset root to write <phase>_label (and, with --width, <phase>_img) into')
    parser.add_argument('--phase', default='train', help='the phase the frames are: train or test (Cityscapes val)')
    parser.add_argument('--seg_model', default=None, help='the network as a TorchScript file, or a torch.export .pt2 program')
    parser.add_argument('--arch', default=None, choices=ARCHITECTURES, help='the network as a torchvision architecture, with --weights')
    parser.add_argument('--weights', default=None, help="--arch's state_dict (a local .pth file; nothing is downloaded)")
    parser.add_argument(
        '--num_classes',
        type=int,
        default=19,
        choices=sorted(NUM_CLASSES),
        help='classes the network predicts: 19 trainIds or 34 labelIds',
    )
    parser.add_argument(
        '--input_range', default='imagenet', choices=metrics.INPUT_RANGES, help='the normalisation the network expects its RGB input in'
    )
    parser.add_argument('--width', type=int, default=None, help='label the frames resized to this width (and write the resized photos)')
    parser.add_argument('--batch_size', type=int, default=4, help='frames per forward pass')
    parser.add_argument('--gpu_ids', default='0', help='GPU id, e.g. 0; -1 for the CPU (falls back to the CPU without CUDA)')
    parser.add_argument('--nThreads', type=int, default=2, help='image-decoding worker processes (0: in the main process)')
    opt = parser.parse_args(argv)
    if (opt.seg_model is None) == (opt.arch is None):
        raise OptionsError("pass the network as --seg_model FILE (TorchScript or .pt2) or as --arch NAME --weights FILE, one of the two")
    if (opt.arch is None) != (opt.weights is None):
        raise OptionsError("--arch and --weights go together: the torchvision architecture and its state_dict file")
    if opt.width is not None and opt.width < 1:
        raise OptionsError(f"--width {opt.width} must be at least 1")
    if opt.batch_size < 1 or opt.nThreads < 0:
        raise OptionsError(f"--batch_size {opt.batch_size} must be at least 1 and --nThreads {opt.nThreads} 0 or more")
    return opt


# ---------------------------------------------------------------------------------------------- the frames


def find_frames(photos: str) -> list[str]:
    """The *_leftImg8bit.png frames under `photos`, sorted; a folder that is not one split's frames is refused."""
    hint = 'pass one split of leftImg8bit_sequence, e.g. leftImg8bit_sequence/train (its city folders hold the frames)'
    if not os.path.isdir(photos):
        raise DatasetError(f"{photos}: folder of photos not found; {hint}")
    splits = [name for name in SPLITS if os.path.isdir(os.path.join(photos, name))]
    if splits:
        raise DatasetError(f"{photos} holds the splits {', '.join(splits)}: pass one of them, e.g. {os.path.join(photos, splits[0])}")
    frames = sorted(os.path.join(folder, name) for folder, _, names in os.walk(photos) for name in names if PHOTO.match(name))
    if not frames:
        raise DatasetError(f"{photos}: no Cityscapes sequence frames (<city>_<seq>_<frame>_leftImg8bit.png) found; {hint}")
    return frames


def frame_key(frame: str) -> str:
    """A frame's city_seq_frame prefix (find_frames kept only names that have one)."""
    match = PHOTO.match(os.path.basename(frame))
    if match is None:
        raise ValueError(f"{frame}: not a Cityscapes sequence frame name")
    return match.group(1)


def sequence_of(frame: str) -> str:
    """A frame's city_seq: the sequence the reader files it under."""
    return frame_key(frame).rsplit('_', 1)[0]


def output_paths(frame: str, opt: argparse.Namespace) -> tuple[str, str | None]:
    """(label map, resized photo or None) a frame is written to: the same folders below DATAROOT/<phase>_label and _img."""
    relative = os.path.relpath(frame, opt.photos)
    label = os.path.join(opt.dataroot, f'{opt.phase}_label', os.path.dirname(relative), f'{frame_key(frame)}_labelIds.png')
    photo = os.path.join(opt.dataroot, f'{opt.phase}_img', relative) if opt.width else None
    return label, photo


def resized(size: tuple[int, int], width: int | None) -> tuple[int, int]:
    """(width, height) of a frame of `size` at --width (the aspect kept, as --resize_or_crop scale_width), or as it is."""
    return size if width is None else (width, int(width * size[1] / size[0]))


class Frames(torch.utils.data.Dataset):
    """(uint8 3xHxW photo at --width, index) per frame."""

    def __init__(self, paths: list[str], width: int | None) -> None:
        self.paths, self.width = paths, width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                image = to_rgb(img, path)
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read image ({error}); re-extract or remove the file") from None
        size = resized(image.size, self.width)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous(), index


def frame_batches(paths: list[str], opt: argparse.Namespace) -> torch.utils.data.DataLoader:
    """Batches of frames of one size (sizes from the file headers)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, path in enumerate(paths):
        groups.setdefault(resized(image_header(path)[0], opt.width), []).append(index)
    batch_sampler = [indices[i : i + opt.batch_size] for indices in groups.values() for i in range(0, len(indices), opt.batch_size)]
    workers = opt.nThreads if len(batch_sampler) > 1 else 0
    return torch.utils.data.DataLoader(Frames(paths, opt.width), batch_sampler=batch_sampler, num_workers=workers)


# --------------------------------------------------------------------------------------------- the network


def load_torchvision_model(arch: str, weights: str, num_classes: int, device: torch.device) -> torch.nn.Module:
    """torchvision's `arch` built without downloads (weights=None, weights_backbone=None) for `num_classes`, with the
    state_dict of `weights` (a training checkpoint's 'model' / 'model_state' / 'state_dict' entry, DataParallel's
    'module.' prefixes dropped; an auxiliary head in the file is built too, and unused)."""
    import torchvision

    if not os.path.isfile(weights):
        raise ModelError(f"--weights {weights}: file not found; pass the state_dict of a {arch} trained on Cityscapes")
    try:
        state = torch.load(weights, map_location='cpu', weights_only=True)  # tensors only: nothing in the file runs
    except Exception as error:  # unpickling / zip errors come in many types
        raise ModelError(
            f"--weights {weights}: cannot load ({metrics.first_line(error)}); save the weights alone where you trust the file: "
            f"torch.save(model.state_dict(), PATH)"
        ) from None
    if isinstance(state, dict):
        state = next((state[key] for key in WRAPPERS if isinstance(state.get(key), dict)), state)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelError(f"--weights {weights}: holds a {type(state).__name__} that is not a state_dict; save model.state_dict()")
    state = {key.removeprefix('module.'): value for key, value in state.items()}
    builder = getattr(torchvision.models.segmentation, arch)
    aux_loss = any(key.startswith('aux_classifier.') for key in state)
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)
    expected = model.state_dict()
    mismatched = [key for key in expected.keys() & state.keys() if expected[key].shape != state[key].shape]
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if mismatched or missing or unexpected:
        if mismatched:
            key = sorted(mismatched)[-1]  # the classifier's last layer where the class count differs
            what = f"{key} is {tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in {arch}"
        else:
            what = f"{len(missing)} weights missing (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        raise ModelError(
            f"--weights {weights}: not a state_dict of {arch} with {num_classes} classes ({what}); check --arch and "
            f"--num_classes (19: trainIds, 34: labelIds)"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


def load_network(opt: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """The network of --seg_model (TorchScript or .pt2) or of --arch and --weights."""
    if opt.seg_model is not None:
        return metrics.load_segmentation_model(opt.seg_model, device)
    return load_torchvision_model(opt.arch, opt.weights, opt.num_classes, device)


def label_ids(num_classes: int) -> torch.Tensor:
    """The labelId written for each class the network predicts (its trainId's labelId, or the labelId itself)."""
    if num_classes == 34:
        return torch.arange(34)
    return torch.tensor([TRAIN_TO_LABEL_ID[train_id] for train_id in range(num_classes)])


@torch.no_grad()
def label_batch(model: torch.nn.Module, images: torch.Tensor, opt: argparse.Namespace, device: torch.device) -> torch.Tensor:
    """uint8 BxHxW labelIds of a uint8 Bx3xHxW batch of photos."""
    name = f'--seg_model {opt.seg_model}' if opt.seg_model else f'--arch {opt.arch} --weights {opt.weights}'
    expected = 'logits (--num_classes 19 for trainIds, 34 for labelIds)'
    logits = metrics.run_segmentation(model, images.to(device), opt.input_range, opt.num_classes, name, expected)
    if logits.shape[2:] != images.shape[2:]:  # networks that predict at a stride
        logits = F.interpolate(logits.float(), size=images.shape[2:], mode='bilinear', align_corners=False)
    return label_ids(opt.num_classes).to(logits.device)[logits.argmax(dim=1)].to(torch.uint8).cpu()


# ------------------------------------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> dict:
    """Label the frames not labelled yet; return {'frames', 'sequences', 'labelled', 'kept'}."""
    opt = parse_args(argv)
    frames = find_frames(opt.photos)
    image_dir = os.path.join(opt.dataroot, f'{opt.phase}_img')
    inputs, outputs = os.path.realpath(opt.photos), os.path.realpath(image_dir)
    if opt.width and os.path.commonpath([inputs, outputs]) in (inputs, outputs):  # the same folder, or one inside the other
        raise OptionsError(f"--width {opt.width} writes resized photos to {image_dir}, which holds --photos; pass another --dataroot")
    todo = [frame for frame in frames if not all(path is None or os.path.isfile(path) for path in output_paths(frame, opt))]
    sequences = len({os.path.join(os.path.dirname(frame), sequence_of(frame)) for frame in frames})
    if todo:
        gpu_ids = resolve_gpu_ids(opt.gpu_ids)
        device = torch.device(f'cuda:{gpu_ids[0]}' if gpu_ids else 'cpu')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch >= 2.10 marks TorchScript deprecated
            model = load_network(opt, device)
        progress = tqdm(total=len(todo), desc='labelling', unit='frame', dynamic_ncols=True, disable=None)
        for images, indices in frame_batches(todo, opt):
            for image, labels, index in zip(images, label_batch(model, images, opt, device), indices.tolist(), strict=True):
                label_path, photo_path = output_paths(todo[index], opt)
                os.makedirs(os.path.dirname(label_path), exist_ok=True)
                if photo_path is not None:  # the very pixels the network saw, so that labels and photos pair exactly
                    os.makedirs(os.path.dirname(photo_path), exist_ok=True)
                    save_image(image.permute(1, 2, 0).numpy(), photo_path)
                save_image(labels.numpy(), label_path)
            progress.update(len(indices))
        progress.close()
    label_dir = os.path.join(opt.dataroot, f'{opt.phase}_label')
    print(
        f"{len(todo)} frames labelled, {len(frames) - len(todo)} already labelled kept, of {len(frames)} frames in {sequences} "
        f"sequences: {label_dir} ({NUM_CLASSES[opt.num_classes]})"
    )
    if not opt.width and not os.path.isdir(image_dir):
        print(f"the reader pairs them with the photos in {image_dir}: ln -s {os.path.abspath(opt.photos)} {image_dir}")
    return {'frames': len(frames), 'sequences': sequences, 'labelled': len(todo), 'kept': len(frames) - len(todo)}


def cli() -> None:
    """The command line: main() on sys.argv, its summary printed already."""
    main()


if __name__ == '__main__':
    run_main(cli)
