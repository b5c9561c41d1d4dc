"""Score test.py's synthesized images as the pix2pixHD paper does: segmentation accuracy / mean IoU, and FID / KID;
videos by their warping error and FVD.

    python scripts/evaluate.py --results_dir results/label2city_1024p/test_latest --dataroot datasets/cityscapes \\
        --seg_model seg.pt --real --fid [--inception_weights weights-inception-2015-12-05-6726825d.pth] --json scores.json

Synthesized images (`<basename>_synthesized_image.png`, or `_synthesized_image_style<k>.png` with --n_styles)
are read from RESULTS_DIR/images (or RESULTS_DIR itself) and paired with the label maps of
DATAROOT/<phase>_label (and the photos of DATAROOT/<phase>_img) by the Cityscapes city_seq_frame prefix,
else by equal names. Exit status 0 with a table on stdout (and --json), 1 with a one-line error.
"""

import argparse
import glob
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.aligned_dataset import image_header, pair_key  # noqa: E402
from data.base_dataset import DatasetError, open_map, to_rgb  # noqa: E402
from data.image_folder import is_image_file, make_dataset  # noqa: E402
from options.base_options import OptionsError, resolve_gpu_ids  # noqa: E402
from util import metrics  # noqa: E402
from util.cli import run_main  # noqa: E402
from util.files import atomic_write  # noqa: E402

SYNTHESIZED = re.compile(r'^(?P<base>.+)_synthesized_image(?:_style(?P<style>\d+))?\.[A-Za-z]+$')
# pix2pixHD paper, Table 1 (Cityscapes 2048x1024, PSPNet): pixel accuracy %, mean IoU.
PAPER = {'pix2pixHD synthesized': (83.78, 0.6389), 'real photos': (84.29, 0.6857)}

SEG_CONTRACT = """\
--seg_model contract: a TorchScript file (torch.jit.script(model).save('seg.pt') or torch.jit.trace),
or a torch.export program saved as FILE.pt2 (torch.export.save; export it in eval mode with dynamic
batch / height / width), that maps a float Bx3xHxW RGB batch, normalised per --seg_input_range
(default imagenet: (x/255 - mean) / std, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)),
to Bx19xhxw logits over the 19 Cityscapes trainId classes in trainId order (road, sidewalk, ...,
bicycle). A dict output uses its 'out' entry, a tuple/list output its first element (torchvision
style). The argmax is the prediction; label maps (labelIds) are mapped to trainIds (other ids are
ignored) and resized (nearest) to the prediction size. Real photos (--real, --fid) are resized
(bicubic) to the synthesized size first. The mean IoU averages the classes present in the label maps
or the predictions. pix2pixHD used PSPNet, SPADE DRN-D-105, both trained on Cityscapes.

The built-in synthetic scenes (data/synthetic.py) hold Cityscapes labelIds of 8 classes, so the same
mapping serves them; scripts/train_seg_net.py trains a model meeting this contract on their training
photos. Every results folder (test.py of --model pix2pixHD, pix2pix or crn) is scored the same way;
--method names the row.

--fid computes FID and KID with torch-fidelity (pip install '.[eval]') and its Inception weights
(weights-inception-2015-12-05-6726825d.pth, downloaded to the torch hub cache on first use; offline,
pass the file with --inception_weights). Papers report 2048-d features over the 500 Cityscapes val
images; FIDs are only comparable at equal image counts and sizes. KID is unbiased, so it is the
steadier of the two on a few hundred images: the mean (and std) over 100 random subsets.

Warping error (--warping_error, for videos): each synthesized frame t against the synthesized frame t-1 warped by the
reference flow of DATAROOT/<phase>_flow (frame t to t-1), mean |difference| over the pixels the flow's mask marks
visible, on the 0-255 scale; 0 for a video whose content moves exactly with the scene. Frames are read from
RESULTS_DIR/images/<sequence>/synthesized_image_<t>.png (test.py's video pages; synthesized_image_style<K>_<t>.png with
--style K, one video of a --n_styles page); the real photos' own error is printed beside it (the floor: 0 up to rounding
for exact flow, as the synthetic video's).

FVD (--fvd --i3d_weights i3d_torchscript.pt, for videos): the Frechet Video Distance (Unterthiner et al. 2018) between
the synthesized and the real videos of the same results folder (images/<sequence>/synthesized_image_<t>.png, or one --style's, against
real_image_<t>.png). Each video's frames from --first_frame on are cut into consecutive clips of --fvd_frames (16,
the standard), the same clips of both; the I3D is StyleGAN-V's TorchScript port of the FVD paper's Kinetics-400
network, called as StyleGAN-V calls it (frames 0-255, which it rescales to [-1, 1] and resizes to 224x224 itself;
its 400 logits before the softmax), and the Frechet distance of the two sets' Gaussians is computed in float64.
Nothing is downloaded: docs/VIDEO.md says where to get the file. Like FID, FVD is comparable only at equal clip
counts, clip lengths and frame sizes."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate synthesized images (segmentation accuracy / mean IoU, FID, KID) and videos (warping error, FVD).',
        epilog=SEG_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--results_dir',
        required=True,
        help="test.py's output folder, e.g. results/label2city_1024p/test_latest (its images/ subfolder is used)",
    )
    parser.add_argument('--dataroot', required=True, help='dataset root holding <phase>_label (and <phase>_img)')
    parser.add_argument('--phase', default='test', help='dataset phase whose label maps / photos to use (default test)')
    parser.add_argument('--real_dir', default=None, help='folder of real photos (default DATAROOT/<phase>_img)')
    parser.add_argument(
        '--style',
        type=int,
        default=None,
        help='with --n_styles results: evaluate only _synthesized_image_style<STYLE> (default: every style)',
    )
    parser.add_argument('--fid', action='store_true', help='FID and KID between the synthesized and the real photos (torch-fidelity)')
    parser.add_argument(
        '--inception_weights',
        default=None,
        help=f'local torch-fidelity Inception weights ({metrics.INCEPTION_WEIGHTS_FILE}); default: download them',
    )
    parser.add_argument(
        '--fid_dims',
        type=int,
        default=2048,
        choices=metrics.INCEPTION_DIMS,
        help='Inception feature block for FID and KID (default 2048 = pool3, the value papers report)',
    )
    parser.add_argument(
        '--kid_subset_size',
        type=int,
        default=metrics.KID_SUBSET_SIZE,
        help=f'images per KID subset (default {metrics.KID_SUBSET_SIZE}, or all images when there are fewer)',
    )
    parser.add_argument(
        '--seg_model', default=None, help='Cityscapes segmentation model: TorchScript .pt or torch.export .pt2 (see the contract below)'
    )
    parser.add_argument(
        '--seg_input_range',
        default='imagenet',
        choices=metrics.INPUT_RANGES,
        help='input normalisation the segmentation model expects: imagenet mean/std, [-1, 1] or [0, 1]',
    )
    parser.add_argument(
        '--real', action='store_true', help='also segment the real photos (resized to the synthesized size): the upper bound row'
    )
    parser.add_argument(
        '--method',
        default='pix2pixHD',
        help='name of the method whose results these are, for the table row and the JSON (e.g. pix2pix, crn; default pix2pixHD)',
    )
    parser.add_argument(
        '--warping_error',
        action='store_true',
        help='temporal coherence of video results (test.py of --model vid2vid): see "Warping error" below',
    )
    parser.add_argument(
        '--fvd',
        action='store_true',
        help='Frechet Video Distance between the synthesized and the real videos of video results, with --i3d_weights',
    )
    parser.add_argument(
        '--i3d_weights',
        default=None,
        help=f"--fvd's network: StyleGAN-V's TorchScript I3D, {metrics.I3D_FILE} (a local file: nothing is downloaded)",
    )
    parser.add_argument(
        '--fvd_frames',
        type=int,
        default=metrics.FVD_FRAMES,
        help=f'--fvd: frames per clip (default {metrics.FVD_FRAMES}, the standard FVD clip)',
    )
    parser.add_argument(
        '--first_frame',
        type=int,
        default=0,
        help='--warping_error and --fvd: score frames from this one on (e.g. 2 for vid2vid, whose first n_frames_G - 1 frames are photos)',
    )
    parser.add_argument('--json', default=None, help='write every number here (per-class IoU by class name)')
    parser.add_argument('--gpu_ids', default='0', help='GPU id, e.g. 0; -1 for CPU (falls back to CPU without CUDA)')
    parser.add_argument('--batch_size', type=int, default=8, help='images (--fvd: clips) per forward pass')
    parser.add_argument('--nThreads', type=int, default=2, help='image-decoding worker processes (0: in the main process)')
    opt = parser.parse_args(argv)
    if opt.batch_size < 1:
        raise OptionsError(f"--batch_size {opt.batch_size} must be at least 1")
    if opt.nThreads < 0:
        raise OptionsError(f"--nThreads {opt.nThreads} must be non-negative")
    if not opt.fid and opt.seg_model is None and not opt.warping_error and not opt.fvd:
        raise OptionsError("nothing to evaluate: pass --seg_model FILE.pt (accuracy / mean IoU), --fid, --warping_error and/or --fvd")
    if opt.real and opt.seg_model is None:
        raise OptionsError("--real segments the real photos: it needs --seg_model")
    if opt.inception_weights and not opt.fid:
        raise OptionsError("--inception_weights is only used with --fid")
    if opt.kid_subset_size < 2:
        raise OptionsError(f"--kid_subset_size {opt.kid_subset_size} must be at least 2")
    if opt.fvd and opt.i3d_weights is None:
        raise OptionsError(
            f"--fvd needs --i3d_weights PATH: StyleGAN-V's TorchScript I3D {metrics.I3D_FILE}, which is never downloaded "
            f"(docs/VIDEO.md says where to get it)"
        )
    if opt.i3d_weights and not opt.fvd:
        raise OptionsError("--i3d_weights is only used with --fvd")
    if opt.fvd_frames < 1:
        raise OptionsError(f"--fvd_frames {opt.fvd_frames} must be at least 1 (the standard FVD clip has {metrics.FVD_FRAMES})")
    if opt.first_frame < 0:
        raise OptionsError(f"--first_frame {opt.first_frame} must be 0 or more (the first frame scored)")
    if opt.json and not os.path.isdir(os.path.dirname(os.path.abspath(opt.json))):
        raise OptionsError(f"--json {opt.json}: folder {os.path.dirname(os.path.abspath(opt.json))} does not exist")
    if opt.json and os.path.isdir(opt.json):  # refused before any scoring, not after it
        raise OptionsError(f"--json {opt.json} is a folder: name the file to write, e.g. {os.path.join(opt.json, 'scores.json')}")
    if opt.fid and importlib.util.find_spec('torch_fidelity') is None:
        raise OptionsError("--fid needs torch-fidelity, which is not installed: pip install '.[eval]' (or pip install torch-fidelity)")
    return opt


# ------------------------------------------------------------------------------------------- finding files


def _examples(names: list) -> str:
    return f"{len(names)} (e.g. {', '.join(sorted(names)[:3])})"


def find_synthesized(results_dir: str, style) -> tuple:
    """[(path, basename, style)] of the synthesized images in RESULTS_DIR/images, else RESULTS_DIR."""
    if not os.path.isdir(results_dir):
        raise DatasetError(f"{results_dir}: results folder not found; pass the folder test.py wrote, e.g. results/<name>/<phase>_<epoch>")
    image_dir = os.path.join(results_dir, 'images')
    if not os.path.isdir(image_dir):
        image_dir = results_dir
    found = []
    for name in sorted(os.listdir(image_dir)):
        match = SYNTHESIZED.match(name)
        if match and is_image_file(name):
            image_style = int(match.group('style')) if match.group('style') is not None else None
            found.append((os.path.join(image_dir, name), match.group('base'), image_style))
    if not found:
        raise DatasetError(
            f"{image_dir}: no *_synthesized_image*.png files; run test.py first "
            f"(it writes <results_dir>/images/<name>_synthesized_image.png)"
        )
    if style is not None:
        styles = sorted({s for _, _, s in found if s is not None})
        found = [item for item in found if item[2] == style]
        if not found:
            raise OptionsError(
                f"--style {style}: no _synthesized_image_style{style} files in {image_dir} "
                f"(styles found: {', '.join(map(str, styles)) or 'none'})"
            )
    return image_dir, found


def index_folder(directory: str, what: str, hint: str) -> dict:
    """{pair_key: path} of the images in a folder; duplicate keys are an error."""
    if not os.path.isdir(directory):
        raise DatasetError(f"{directory}: folder of {what} not found; {hint}")
    paths = make_dataset(directory)
    if not paths:
        raise DatasetError(f"{directory}: no images found ({what})")
    index: dict[str, str] = {}
    for path in paths:
        key = pair_key(path)
        if key in index:
            raise DatasetError(
                f"{directory}: {os.path.basename(index[key])} and {os.path.basename(path)} pair with "
                f"the same key {key}; keep one file per image"
            )
        index[key] = path
    return index


def pair_files(opt: argparse.Namespace) -> dict:
    """Synthesized images with their label maps (and photos): checks names and headers, reads no pixels."""
    image_dir, synthesized = find_synthesized(opt.results_dir, opt.style)
    label_dir = os.path.join(opt.dataroot, f'{opt.phase}_label')
    labels = index_folder(label_dir, 'label maps (labelIds)', f'check --dataroot {opt.dataroot} and --phase {opt.phase}')
    keys = [pair_key(base + '.png') for _, base, _ in synthesized]
    unpaired = sorted({os.path.basename(path) for (path, _, _), key in zip(synthesized, keys, strict=True) if key not in labels})
    if unpaired:
        raise DatasetError(
            f"{_examples(unpaired)} synthesized image(s) in {image_dir} have no label map in {label_dir}; "
            f"files pair by the Cityscapes city_seq_frame prefix, else by equal names (check --phase)"
        )
    photos = None
    if opt.fid or opt.real:
        photo_dir = opt.real_dir or os.path.join(opt.dataroot, f'{opt.phase}_img')
        photos = index_folder(photo_dir, 'real photos', 'pass --real_dir DIR, or drop --fid / --real')
        missing = sorted({os.path.basename(labels[key]) for key in keys if key not in photos})
        if missing:
            raise DatasetError(
                f"{_examples(missing)} label map(s) have no real photo in {photo_dir}; files pair by the "
                f"Cityscapes city_seq_frame prefix, else by equal names"
            )
    items = []
    for (path, _, _), key in zip(synthesized, keys, strict=True):
        size, _ = image_header(path)
        label_size, label_mode = image_header(labels[key])
        if label_mode in ('RGB', 'RGBA'):
            raise DatasetError(f"{labels[key]}: label map is a colour image (mode {label_mode}); use the labelIds PNGs")
        items.append(
            {
                'key': key,
                'synthesized': path,
                'size': size,
                'label': labels[key],
                'label_size': label_size,
                'photo': photos[key] if photos else None,
            }
        )
    sizes = sorted({item['size'] for item in items})
    return {'image_dir': image_dir, 'items': items, 'n_labels': len(labels), 'sizes': sizes}


# ------------------------------------------------------------------------------------------ loading images


class EvalImages(torch.utils.data.Dataset):
    """(uint8 3xHxW image, int64 HxW labelIds or empty) per item; photos are resized (bicubic) to the synthesized size."""

    def __init__(self, items: list, source: str, with_labels: bool) -> None:
        self.items, self.source, self.with_labels = items, source, with_labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        path = item[self.source]
        try:
            with Image.open(path) as img:
                image = to_rgb(img, path)
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{path}: cannot read image ({error}); re-export or remove the file") from None
        if image.size != item['size']:
            image = image.resize(item['size'], Image.Resampling.BICUBIC)
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        label = torch.zeros(0, dtype=torch.int64)
        if self.with_labels:
            array = np.asarray(open_map(item['label']))
            if array.ndim != 2:
                raise DatasetError(f"{item['label']}: label map must have one channel, got shape {array.shape}")
            label = torch.from_numpy(array.astype(np.int64))
        return tensor, label


def batches(items: list, source: str, with_labels: bool, opt: argparse.Namespace):
    """Batches of equal-sized images (and label maps), grouped by size from the file headers."""
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault((item['size'], item['label_size'] if with_labels else None), []).append(index)
    batch_sampler = [indices[i : i + opt.batch_size] for indices in groups.values() for i in range(0, len(indices), opt.batch_size)]
    return torch.utils.data.DataLoader(
        EvalImages(items, source, with_labels), batch_sampler=batch_sampler, num_workers=opt.nThreads if len(batch_sampler) > 1 else 0
    )


# ---------------------------------------------------------------------------------------------- segmentation


@torch.no_grad()
def segmentation_scores(model, items: list, source: str, opt: argparse.Namespace, device: torch.device) -> dict:
    confusion = metrics.ConfusionMatrix(device=device)
    for images, labels in batches(items, source, True, opt):
        name = f'--seg_model {opt.seg_model}'
        logits = metrics.run_segmentation(
            model, images.to(device), opt.seg_input_range, metrics.NUM_CLASSES, name, 'Cityscapes trainId logits (see --help)'
        )
        prediction = logits.argmax(dim=1)
        target = metrics.label_to_train_id(labels.to(device))
        if target.shape[1:] != prediction.shape[1:]:
            target = F.interpolate(target[:, None].float(), size=prediction.shape[1:], mode='nearest-exact')[:, 0].long()
        confusion.update(prediction, target)
    iou = confusion.iou().tolist()
    return {
        'pixel_accuracy': confusion.pixel_accuracy(),
        'mean_iou': confusion.mean_iou(),
        'per_class_iou': dict(zip(metrics.CITYSCAPES_CLASSES, iou, strict=True)),
        'pixels': confusion.total,
    }


# ---------------------------------------------------------------------------------------------- FID / KID


def kid_subset_size(n_fake: int, n_real: int, opt: argparse.Namespace) -> int:
    """--kid_subset_size, or the smaller set's size when that is smaller."""
    return min(opt.kid_subset_size, n_fake, n_real)


def inception_scores(model, items: list, real_items: list, opt: argparse.Namespace) -> dict:
    """{'fid', 'kid', 'kid_std'} between the synthesized images and the real photos, from one pass of each set."""
    fake = metrics.inception_features(model, (images for images, _ in batches(items, 'synthesized', False, opt)))
    real = metrics.inception_features(model, (images for images, _ in batches(real_items, 'photo', False, opt)))
    if min(len(fake), len(real)) < 2:
        raise DatasetError(f"FID and KID need at least 2 images per set, got {len(fake)} synthesized and {len(real)} real")
    if min(len(fake), len(real)) <= opt.fid_dims:
        print(
            f"note: FID from {len(fake)} synthesized / {len(real)} real images with {opt.fid_dims}-d features: "
            f"the covariances are rank-deficient, so compare FIDs only at equal image counts"
        )
    subset_size = kid_subset_size(len(fake), len(real), opt)
    if subset_size < opt.kid_subset_size:
        print(f"note: KID from subsets of {subset_size} images (fewer than --kid_subset_size {opt.kid_subset_size})")
    kid, kid_std = metrics.kernel_inception_distance(fake, real, subset_size=subset_size)
    return {'fid': metrics.frechet_distance(fake, real), 'kid': kid, 'kid_std': kid_std}


# ------------------------------------------------------------------------------------------------- output


def _number(value, fmt: str) -> str:
    return '-' if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def print_table(rows: dict, header: str) -> None:
    print(header)
    print(f"{'':<24}{'Pixel acc':>10}{'Mean IoU':>10}{'FID':>10}{'KID':>10}")
    for name, row in rows.items():
        accuracy = _number(row.get('pixel_accuracy'), '.2%')
        print(
            f"{name:<24}{accuracy:>10}{_number(row.get('mean_iou'), '.4f'):>10}"
            f"{_number(row.get('fid'), '.2f'):>10}{_number(row.get('kid'), '.4f'):>10}"
        )
    if any('per_class_iou' in row for row in rows.values()):
        names = [name for name, row in rows.items() if 'per_class_iou' in row]
        print(f"\n{'IoU per class':<24}" + ''.join(f"{name.split()[0]:>12}" for name in names))
        for cls in metrics.CITYSCAPES_CLASSES:
            print(f"{cls:<24}" + ''.join(f"{_number(rows[name]['per_class_iou'][cls], '.4f'):>12}" for name in names))
    print(
        "(paper, Cityscapes 2048x1024 with PSPNet: pix2pixHD {:.2f}% / {:.4f}, real photos {:.2f}% / {:.4f})".format(
            *PAPER['pix2pixHD synthesized'], *PAPER['real photos']
        )
    )


def write_json(path: str, report: dict) -> None:
    """`report` as indented JSON, written atomically."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as handle:
            json.dump(_json_safe(report), handle, indent=2, allow_nan=False)
            handle.write('\n')

    atomic_write(path, write)


def read_frames(paths: list) -> torch.Tensor:
    """T x 3 x H x W float frames (0-255) from image files."""
    return torch.stack([torch.from_numpy(np.asarray(to_rgb(Image.open(path), path), dtype=np.float32)).permute(2, 0, 1) for path in paths])


def video_prefix(style: int | None) -> str:
    """The file prefix of a results video's frames: synthesized_image, or synthesized_image_style<K> (--style K)."""
    return 'synthesized_image' if style is None else f'synthesized_image_style{style}'


def video_frames(image_dir: str, sequence: str, style: int | None = None) -> tuple[list[str], list[str]]:
    """(synthesized, real) frame files of one video of test.py's results, in frame order: images/<sequence>/
    synthesized_image_<t>.png (or one --n_styles video's: --style), and real_image_<t>.png where the test set had
    photos (frame t pairs with frame t)."""
    folder = os.path.join(image_dir, sequence)
    # Digits right after the prefix: a --n_styles page holds one video per style beside each other.
    synthesized = sorted(glob.glob(os.path.join(folder, f'{video_prefix(style)}_[0-9]*.png')))
    return synthesized, sorted(glob.glob(os.path.join(folder, 'real_image_[0-9]*.png')))


def video_warping_errors(opt: argparse.Namespace) -> dict:
    """{'synthesized': mean warping error, 'real': the photos', 'sequences': per sequence, 'frames': pairs scored}."""
    from data.flow_files import load_flow
    from util.flow import warping_error

    flow_root = os.path.join(opt.dataroot, f'{opt.phase}_flow')
    if not os.path.isdir(flow_root):
        raise OptionsError(f"--warping_error: {flow_root} not found; the reference flow of the test sequences is needed")
    image_dir = os.path.join(opt.results_dir, 'images')
    per_sequence: dict[str, dict] = {}
    totals: dict[str, list[float]] = {'synthesized': [], 'real': []}
    pairs = 0
    for sequence in sorted(os.listdir(flow_root)):
        flow_files = sorted(os.path.join(flow_root, sequence, name) for name in os.listdir(os.path.join(flow_root, sequence)))
        frames, photos = video_frames(image_dir, sequence, opt.style)
        if not frames:
            raise OptionsError(
                f"--warping_error: no {image_dir}/{sequence}/{video_prefix(opt.style)}_<t>.png; run test.py on the video first "
                f"(a page of --n_styles videos: pass --style K)"
            )
        if len(frames) != len(flow_files) + 1:
            raise DatasetError(f"{image_dir}/{sequence}: {len(frames)} frames but {len(flow_files)} flow files in {flow_root}/{sequence}")
        start = opt.first_frame
        if start >= len(frames) - 1:
            raise OptionsError(
                f"--first_frame {start}: {image_dir}/{sequence} has {len(frames)} frames, so no pair to score; pass a smaller one"
            )
        loaded = [load_flow(path) for path in flow_files[start:]]
        flows = torch.stack([torch.from_numpy(flow) for flow, _ in loaded]).unsqueeze(0)
        visible = torch.stack([torch.from_numpy(mask.astype(np.float32))[None] for _, mask in loaded]).unsqueeze(0)
        synthesized = read_frames(frames[start:]).unsqueeze(0)
        if synthesized.shape[-2:] != flows.shape[-2:]:
            raise DatasetError(
                f"{frames[0]}: {synthesized.shape[-1]}x{synthesized.shape[-2]}, flow {flows.shape[-1]}x{flows.shape[-2]}; "
                f"test at the flow's size"
            )
        entry = {'synthesized': float(warping_error(synthesized, flows, visible)[0])}
        if len(photos) == len(frames):
            entry['real'] = float(warping_error(read_frames(photos[start:]).unsqueeze(0), flows, visible)[0])
        per_sequence[sequence] = entry
        for kind, value in entry.items():
            totals[kind].append(value)
        pairs += len(frames) - start - 1
    summary = {kind: (float(np.mean(values)) if values else None) for kind, values in totals.items()}
    return {**summary, 'sequences': per_sequence, 'frames': pairs}


def fvd_clips(opt: argparse.Namespace) -> tuple[str, list[tuple[list[str], list[str]]], int]:
    """(image folder, [(synthesized, real) frame files of each clip], videos): every video's frames from --first_frame
    on, cut into consecutive clips of --fvd_frames (a shorter rest is left out), the same frames of both videos."""
    image_dir = os.path.join(opt.results_dir, 'images')
    hint = "run test.py --model vid2vid first: it writes images/<sequence>/synthesized_image_<t>.png"
    if not os.path.isdir(image_dir):
        raise OptionsError(f"--fvd: {image_dir} not found; {hint}")
    clips, lengths = [], []
    for sequence in sorted(os.listdir(image_dir)):
        synthesized, real = video_frames(image_dir, sequence, opt.style)
        if not synthesized:
            continue
        if len(real) != len(synthesized):
            raise DatasetError(
                f"{image_dir}/{sequence}: {len(synthesized)} synthesized frames but {len(real)} real_image_*.png; --fvd compares "
                f"with the real video, which test.py writes where DATAROOT/<phase>_img has the sequence's photos"
            )
        lengths.append(len(synthesized))
        for first in range(opt.first_frame, len(synthesized) - opt.fvd_frames + 1, opt.fvd_frames):
            clips.append((synthesized[first : first + opt.fvd_frames], real[first : first + opt.fvd_frames]))
    if not lengths:
        raise OptionsError(f"--fvd: no {image_dir}/<sequence>/synthesized_image_*.png; {hint}")
    if len(clips) < 2:
        raise DatasetError(
            f"--fvd: {len(clips)} clip(s) of {opt.fvd_frames} frames from frame {opt.first_frame} in {len(lengths)} video(s) of "
            f"{min(lengths)}-{max(lengths)} frames in {image_dir}; FVD needs at least 2: test more or longer sequences, or pass "
            f"a smaller --fvd_frames (the standard is {metrics.FVD_FRAMES}) or --first_frame"
        )
    short = sum(length < opt.first_frame + opt.fvd_frames for length in lengths)
    if short:
        print(
            f"note: {short} of {len(lengths)} videos have fewer than --first_frame + --fvd_frames = "
            f"{opt.first_frame + opt.fvd_frames} frames: no clip from them"
        )
    return image_dir, clips, len(lengths)


def clip_batches(clips: list[list[str]], batch_size: int) -> Iterator[torch.Tensor]:
    """float Bx3xTxHxW batches (0-255) of the clips' frames, read one batch at a time; a batch holds one frame size."""
    groups: dict[tuple, list[list[str]]] = {}
    for clip in clips:
        groups.setdefault(image_header(clip[0])[0], []).append(clip)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield torch.stack([read_frames(clip).permute(1, 0, 2, 3) for clip in group[i : i + batch_size]])


def video_fvd(opt: argparse.Namespace, i3d: torch.nn.Module, device: torch.device) -> dict:
    """{'fvd', 'clips', 'frames_per_clip', 'first_frame', 'videos', 'image_dir', 'i3d_weights'}: FVD between the
    synthesized and the real clips of the results' videos."""
    image_dir, clips, videos = fvd_clips(opt)
    features = [
        metrics.i3d_features(i3d, clip_batches([clip[kind] for clip in clips], opt.batch_size), opt.i3d_weights, device) for kind in (0, 1)
    ]
    if len(clips) <= features[0].shape[1]:
        print(
            f"note: FVD from {len(clips)} clips with {features[0].shape[1]}-d features: the covariances are rank-deficient, so "
            f"compare FVDs only at equal clip counts"
        )
    return {
        'fvd': metrics.video_frechet_distance(*features),
        'clips': len(clips),
        'frames_per_clip': opt.fvd_frames,
        'first_frame': opt.first_frame,
        'videos': videos,
        'image_dir': image_dir,
        'i3d_weights': opt.i3d_weights,
    }


def device_of(opt: argparse.Namespace) -> torch.device:
    """The device of --gpu_ids (the CPU without CUDA)."""
    gpu_ids = resolve_gpu_ids(opt.gpu_ids)
    return torch.device(f'cuda:{gpu_ids[0]}' if gpu_ids else 'cpu')


def main(argv=None) -> None:
    opt = parse_args(argv)
    # resolve_gpu_ids says when it falls back to the CPU: only where a network runs (the warping error has none).
    device = device_of(opt) if opt.fvd or opt.fid or opt.seg_model else torch.device('cpu')
    i3d = metrics.load_i3d(opt.i3d_weights, device) if opt.fvd else None  # before any scoring: a bad file fails in seconds
    video: dict[str, dict] = {}  # the video scores, in the JSON beside the image scores
    if opt.warping_error:
        errors = video['warping_error'] = video_warping_errors(opt)
        real = f", real photos {errors['real']:.3f}" if errors['real'] is not None else ''
        print(
            f"warping error ({opt.method}, {len(errors['sequences'])} sequences, {errors['frames']} frame pairs from frame "
            f"{opt.first_frame}, 0-255 scale): synthesized {errors['synthesized']:.3f}{real}"
        )
    if i3d is not None:
        fvd = video['fvd'] = video_fvd(opt, i3d, device)
        print(
            f"FVD ({opt.method}, {fvd['clips']} clips of {fvd['frames_per_clip']} frames from frame {opt.first_frame} of "
            f"{fvd['videos']} videos, synthesized against real, I3D {os.path.basename(opt.i3d_weights)}): {fvd['fvd']:.2f}"
        )
    if not opt.fid and opt.seg_model is None:
        if opt.json:
            write_json(opt.json, {'method': opt.method, **video})
        return
    found = pair_files(opt)
    items = found['items']
    real_items = list({item['key']: item for item in items}.values())  # one photo per label map, even with styles
    # Both models load before any image is processed, so a bad file fails in seconds.
    seg_model = metrics.load_segmentation_model(opt.seg_model, device) if opt.seg_model else None
    inception = metrics.load_inception(opt.inception_weights, dims=opt.fid_dims, device=device) if opt.fid else None

    synthesized = f'{opt.method} synthesized'
    rows: dict[str, dict] = {synthesized: {}}
    if opt.real:
        rows['real photos'] = {}
    if seg_model is not None:
        rows[synthesized].update(segmentation_scores(seg_model, items, 'synthesized', opt, device))
        if opt.real:
            rows['real photos'].update(segmentation_scores(seg_model, real_items, 'photo', opt, device))
    if opt.fid:
        rows[synthesized].update(inception_scores(inception, items, real_items, opt))

    sizes = ', '.join(f'{w}x{h}' for w, h in found['sizes'])
    header = (
        f"{len(items)} synthesized image(s) of {sizes} in {found['image_dir']} "
        f"({len(real_items)} of {found['n_labels']} label maps in {opt.dataroot}/{opt.phase}_label)"
    )
    print_table(rows, header)
    if opt.json:
        report = {
            'method': opt.method,
            'results_dir': opt.results_dir,
            'image_dir': found['image_dir'],
            'dataroot': opt.dataroot,
            'phase': opt.phase,
            'n_synthesized': len(items),
            'n_label_maps': len(real_items),
            'image_sizes': [list(s) for s in found['sizes']],
            'seg_model': opt.seg_model,
            'seg_input_range': opt.seg_input_range if opt.seg_model else None,
            'fid_dims': opt.fid_dims if opt.fid else None,
            'kid_subsets': metrics.KID_SUBSETS if opt.fid else None,
            'kid_subset_size': kid_subset_size(len(items), len(real_items), opt) if opt.fid else None,
            'classes': list(metrics.CITYSCAPES_CLASSES),
            'synthesized': rows[synthesized],
            'real': rows.get('real photos'),
            'paper': {
                'synthesized': dict(zip(('pixel_accuracy_percent', 'mean_iou'), PAPER['pix2pixHD synthesized'], strict=True)),
                'real': dict(zip(('pixel_accuracy_percent', 'mean_iou'), PAPER['real photos'], strict=True)),
            },
            **video,
        }
        write_json(opt.json, report)
        print(f"scores written to {opt.json}")


if __name__ == '__main__':
    run_main(main)
