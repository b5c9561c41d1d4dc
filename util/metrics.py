"""Evaluation metrics of the pix2pixHD paper: segmentation accuracy / mean IoU on Cityscapes, and FID / KID.

Segmentation score (pix2pixHD, CVPR 2018, section 4.1): an off-the-shelf segmentation network labels the
synthesized images and its prediction is compared with the input label map over the 19 Cityscapes
evaluation classes (trainIds); pixels whose labelId has no trainId are ignored (255).

FID and KID come from `torch-fidelity`: its InceptionV3 is the PyTorch port of the TensorFlow 2015-12-05
graph that the reference FID (TTUR, Heusel et al. 2017) and KID (MMD-GAN, Binkowski et al. 2018) run, with
TensorFlow's bilinear resize reproduced, and its `fid_statistics_to_metric` / `kid_features_to_metric` do
the arithmetic; torchvision's ImageNet Inception gives different, non-comparable values. This module only
loads the weights (a local file when offline), streams batches through the network and calls those
functions, so the numbers are torch-fidelity's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch

from util.cityscapes import LABEL_TO_TRAIN_ID, TRAIN_CLASSES
from util.errors import ModelError

if TYPE_CHECKING:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

IGNORE_INDEX = 255

CITYSCAPES_CLASSES = TRAIN_CLASSES  # the 19 evaluation classes in trainId order
NUM_CLASSES = len(CITYSCAPES_CLASSES)

_TRAIN_ID_LUT = torch.full((256,), IGNORE_INDEX, dtype=torch.int64)
for _label_id, _train_id in LABEL_TO_TRAIN_ID.items():
    _TRAIN_ID_LUT[_label_id] = _train_id

# torch-fidelity (the `eval` install group) is imported only by the FID / KID functions, so the segmentation
# score works with the core install. Its names, which the tests check against the installed package:
INCEPTION_WEIGHTS_FILE = 'weights-inception-2015-12-05-6726825d.pth'  # basename of its URL_INCEPTION_V3
INCEPTION_DIMS = (64, 192, 768, 2048)  # its feature blocks; 2048 (pool3) is the one papers report
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # its defaults (those of the MMD-GAN reference)


def label_to_train_id(labels) -> torch.Tensor:
    """Map Cityscapes labelIds (any integer tensor or array) to trainIds 0..18, everything else to 255."""
    if not isinstance(labels, torch.Tensor):
        array = np.asarray(labels)
        if array.dtype.kind not in 'iu':
            raise TypeError(f"label maps must hold integer ids, got {array.dtype}")
        labels = torch.from_numpy(array.astype(np.int64))
    elif labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"label maps must hold integer ids, got {labels.dtype}")
    labels = labels.long()
    lut = _TRAIN_ID_LUT.to(labels.device)
    inside = (labels >= 0) & (labels < lut.numel())
    return torch.where(inside, lut[labels.clamp(0, lut.numel() - 1)], torch.full_like(labels, IGNORE_INDEX))


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes confusion matrix (rows: ground truth, columns: prediction)."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX, device=None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth class maps of equal shape (target == ignore_index is skipped)."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        prediction = prediction.reshape(-1).long().to(self.matrix.device)
        target = target.reshape(-1).long().to(self.matrix.device)
        keep = target != self.ignore_index
        prediction, target = prediction[keep], target[keep]
        n = self.num_classes
        if target.numel() and (target.min() < 0 or target.max() >= n):
            raise ValueError(f"target values must be in [0, {n}) or {self.ignore_index}, got {target.min()}..{target.max()}")
        if prediction.numel() and (prediction.min() < 0 or prediction.max() >= n):
            raise ValueError(f"predicted classes must be in [0, {n}), got {prediction.min()}..{prediction.max()}")
        self.matrix += torch.bincount(target * n + prediction, minlength=n * n).reshape(n, n)

    @property
    def total(self) -> int:
        """Pixels counted (ignored pixels excluded)."""
        return int(self.matrix.sum())

    def pixel_accuracy(self) -> float:
        """Correctly classified pixels / counted pixels (NaN when nothing was counted)."""
        total = self.total
        return float(self.matrix.diag().sum()) / total if total else float('nan')

    def iou(self) -> torch.Tensor:
        """Per-class IoU = TP / (TP + FP + FN), float64; NaN for a class with neither ground truth nor prediction."""
        matrix = self.matrix.double().cpu()
        tp = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float('nan')))

    def mean_iou(self) -> float:
        """Mean IoU over the classes present in the ground truth or the prediction (NaN classes excluded)."""
        iou = self.iou()
        present = ~torch.isnan(iou)
        return float(iou[present].mean()) if present.any() else float('nan')


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ------------------------------------------------------------------------------------ segmentation networks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_RANGES = ('imagenet', 'minus1_1', 'unit')  # what a segmentation network may expect its RGB input normalised to


def segmentation_input(images: torch.Tensor, input_range: str = 'imagenet') -> torch.Tensor:
    """Bx3xHxW RGB in 0-255 (uint8 or float) as a network expects it: ImageNet mean/std, [-1, 1] or [0, 1]."""
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input range {input_range!r} is not one of {', '.join(INPUT_RANGES)}")
    x = images.float()
    if input_range == 'minus1_1':
        return x / 127.5 - 1.0
    x = x / 255.0
    if input_range == 'unit':
        return x
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_segmentation_model(path: str, device: torch.device | str) -> torch.nn.Module:
    """--seg_model's network: a TorchScript archive (torch.jit.load), or a torch.export program when the file ends in .pt2."""
    if not os.path.isfile(path):
        raise ModelError(f"--seg_model {path}: file not found; pass a TorchScript segmentation model (see --help)")
    exported = path.endswith('.pt2')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch >= 2.10 marks TorchScript deprecated
            model = torch.export.load(path).module().to(device) if exported else torch.jit.load(path, map_location=device)
    except Exception as error:  # not a TorchScript / torch.export archive, or saved by an incompatible torch
        how = 'torch.export.save(torch.export.export(model, (example,)), path)' if exported else 'torch.jit.script(model).save(path)'
        raise ModelError(f"--seg_model {path}: cannot load ({_first_line(error)}); export it with {how} (see --help)") from None
    if not exported:
        model = model.eval()  # an exported program has no train/eval switch: it was traced in the mode it was exported in
    return model


def segmentation_logits(output: object) -> torch.Tensor | None:
    """The logits in a network's output: torchvision's dict (its 'out'), a tuple's or list's first element, or the
    tensor itself; None when there are none."""
    if isinstance(output, dict):
        output = output.get('out')
    elif isinstance(output, (tuple, list)):
        output = output[0] if output else None
    return output if isinstance(output, torch.Tensor) else None


# --------------------------------------------------------------------------------------------- FID / KID


def load_inception(
    weights: str | None = None, dims: int = 2048, device: torch.device | str = 'cpu', logits: bool = False
) -> FeatureExtractorInceptionV3:
    """torch-fidelity's Inception in eval mode, giving `dims`-d features (and, with `logits`, the class logits the
    Inception Score reads, as a second output): weights from a local file, else its download."""
    if dims not in INCEPTION_DIMS:
        raise ModelError(f"Inception feature dims {dims} not supported; use one of {', '.join(map(str, INCEPTION_DIMS))}")
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

    hint = f"download {URL_INCEPTION_V3} on a machine with network access and pass --inception_weights PATH"
    if weights is not None:
        if not os.path.isfile(weights):
            raise ModelError(f"--inception_weights {weights}: file not found; {hint}")
        # torch-fidelity unpickles the file with weights_only=False: refuse anything but plain tensors before it does.
        try:
            state = torch.load(weights, map_location='cpu', weights_only=True)
        except Exception as error:  # unpickling / zip errors come in many types
            raise ModelError(
                f"--inception_weights {weights}: cannot load ({_first_line(error)}); expected {INCEPTION_WEIGHTS_FILE}"
            ) from None
        if not isinstance(state, dict):
            raise ModelError(
                f"--inception_weights {weights}: holds a {type(state).__name__}, not the Inception state_dict ({INCEPTION_WEIGHTS_FILE})"
            )
    try:
        features = [str(dims)] + (['logits_unbiased'] if logits else [])
        model = FeatureExtractorInceptionV3('inception-v3-compat', features, feature_extractor_weights_path=weights)
    except Exception as error:  # a key mismatch (RuntimeError); without a file: URLError, HTTPError, timeouts...
        if weights is not None:
            raise ModelError(
                f"--inception_weights {weights}: not the Inception state_dict ({INCEPTION_WEIGHTS_FILE}): {_first_line(error)}"
            ) from None
        raise ModelError(f"cannot download the Inception weights ({_first_line(error)}); {hint}") from None
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: FeatureExtractorInceptionV3, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """The model's features (N x dims, float32, on the CPU) of batches of uint8 Bx3xHxW RGB images."""
    device = next(model.parameters()).device
    features = [model(batch.to(device))[0].cpu() for batch in batches]
    if not features:
        raise ValueError("no images to compute Inception features of")
    return torch.cat(features)


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Inception Score (mean, std over `splits` parts): exp(E_x KL(p(y|x) || p(y))), torch-fidelity's computation."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    scores = isc_features_to_metric(logits, splits=splits)  # its defaults: shuffled with its seed, as torch-fidelity reports IS
    return float(scores[KEY_METRIC_ISC_MEAN]), float(scores[KEY_METRIC_ISC_STD])


def frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FID between two sets of Inception features (torch-fidelity's statistics and distance)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    if min(len(features1), len(features2)) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features1)} and {len(features2)}")
    statistics = [fid_features_to_statistics(features) for features in (features1, features2)]
    return float(fid_statistics_to_metric(*statistics, verbose=False)[KEY_METRIC_FID])


def kernel_inception_distance(
    features1: torch.Tensor, features2: torch.Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE
) -> tuple[float, float]:
    """KID (mean, std over `subsets` random subsets of `subset_size` images per set; torch-fidelity, seeded)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    if not 2 <= subset_size <= min(len(features1), len(features2)):
        raise ValueError(f"KID subset size {subset_size} must be in [2, {min(len(features1), len(features2))}] (the smaller set's size)")
    scores = kid_features_to_metric(features1, features2, kid_subsets=subsets, kid_subset_size=subset_size, verbose=False)
    return float(scores[KEY_METRIC_KID_MEAN]), float(scores[KEY_METRIC_KID_STD])
