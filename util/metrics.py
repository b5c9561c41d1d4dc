"""Evaluation metrics of the pix2pixHD paper: segmentation accuracy / mean IoU on Cityscapes, and FID.

Segmentation score (pix2pixHD, CVPR 2018, section 4.1): an off-the-shelf segmentation network labels the
synthesized images and its prediction is compared with the input label map over the 19 Cityscapes
evaluation classes (trainIds); pixels whose labelId has no trainId are ignored (255).

FID uses the maintained `pytorch-fid` package rather than a home-grown Inception: it is the PyTorch port
of the TensorFlow reference implementation (TTUR, Heusel et al. 2017) with the same Inception weights
(`pt_inception-2015-12-05`, converted from the TF graph) and the TF-specific layer quirks reproduced, so
its numbers are the ones the GAN literature (SPADE included) reports; torchvision's ImageNet Inception
gives different, non-comparable values. Only the weight loading is ours: pytorch-fid always downloads
its weights, whereas `fid_inception(weights=PATH)` builds the same architecture and loads a local file,
so evaluation works offline.
"""
from __future__ import annotations

import os
import warnings
from typing import Iterable, Optional

import numpy as np
import scipy
import torch
import torch.nn as nn
import torchvision
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import (FID_WEIGHTS_URL, FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2,
                                   InceptionV3)

from util.errors import ModelError

IGNORE_INDEX = 255

# Official cityscapesScripts labels.py: labelId -> trainId of the 19 evaluation classes.
LABEL_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CITYSCAPES_CLASSES: tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
    'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
)
NUM_CLASSES = len(CITYSCAPES_CLASSES)

_TRAIN_ID_LUT = torch.full((256,), IGNORE_INDEX, dtype=torch.int64)
for _label_id, _train_id in LABEL_TO_TRAIN_ID.items():
    _TRAIN_ID_LUT[_label_id] = _train_id

FID_WEIGHTS_FILE = os.path.basename(FID_WEIGHTS_URL)  # pt_inception-2015-12-05-6726825d.pth
FID_DIMS = tuple(sorted(InceptionV3.BLOCK_INDEX_BY_DIM))  # 64, 192, 768, 2048 (pool3, the standard)


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


# ----------------------------------------------------------------------------------------------------- FID


def build_fid_inception() -> torchvision.models.Inception3:
    """pytorch-fid's FID Inception architecture (`pytorch_fid.inception.fid_inception_v3`) without loading weights.

    The modules are pytorch-fid's own (its TF-compatible FIDInception* blocks), assembled exactly as
    fid_inception_v3 does, so the official state_dict loads into it with strict key matching.
    """
    inception = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    inception.Mixed_5b = FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = FIDInceptionE_1(1280)
    inception.Mixed_7c = FIDInceptionE_2(2048)
    return inception


class FIDFeatureExtractor(InceptionV3):
    """pytorch-fid's InceptionV3 feature extractor built around an already-loaded FID Inception network.

    InceptionV3.__init__ downloads its weights unconditionally, so this subclass assembles the same blocks
    itself (as InceptionV3.__init__ does) and inherits InceptionV3.forward unchanged: inputs are Bx3xHxW
    in [0, 1], resized bilinearly to 299x299 and scaled to [-1, 1] inside, exactly as pytorch-fid does.
    """

    def __init__(self, inception: torchvision.models.Inception3, dims: int = 2048) -> None:
        if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
            raise ModelError(f"FID feature dims {dims} not supported; use one of {', '.join(map(str, FID_DIMS))}")
        nn.Module.__init__(self)
        self.resize_input = True
        self.normalize_input = True
        block_index = InceptionV3.BLOCK_INDEX_BY_DIM[dims]
        self.output_blocks = [block_index]
        self.last_needed_block = block_index
        blocks = [
            [inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
            [inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
            [inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a, inception.Mixed_6b,
             inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e],
            [inception.Mixed_7a, inception.Mixed_7b, inception.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))],
        ]
        self.blocks = nn.ModuleList(nn.Sequential(*block) for block in blocks[:block_index + 1])
        for param in self.parameters():
            param.requires_grad = False


def load_fid_inception_state(weights: Optional[str] = None) -> dict:
    """The FID Inception state_dict: from a local file, else pytorch-fid's download (torch hub cache)."""
    hint = f"download {FID_WEIGHTS_URL} on a machine with network access and pass --inception_weights PATH"
    if weights is not None:
        if not os.path.isfile(weights):
            raise ModelError(f"--inception_weights {weights}: file not found; {hint}")
        try:
            return torch.load(weights, map_location='cpu', weights_only=True)
        except Exception as error:  # unpickling / zip errors come in many types
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ModelError(f"--inception_weights {weights}: cannot load ({reason}); expected {FID_WEIGHTS_FILE}") from None
    try:
        return torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, map_location='cpu', progress=False, weights_only=True)
    except Exception as error:  # URLError, HTTPError, timeouts, a truncated file...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"cannot download the FID Inception weights ({reason}); {hint}") from None


def fid_inception(weights: Optional[str] = None, dims: int = 2048, device='cpu') -> FIDFeatureExtractor:
    """The FID feature extractor in eval mode with the official weights (a local file, else the download)."""
    state = load_fid_inception_state(weights)
    inception = build_fid_inception()
    source = f"--inception_weights {weights}" if weights else FID_WEIGHTS_FILE
    if not isinstance(state, dict):
        raise ModelError(f"{source}: holds a {type(state).__name__}, not the FID Inception state_dict")
    try:
        inception.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ModelError(f"{source}: not the FID Inception state_dict ({FID_WEIGHTS_FILE}): {first}") from None
    return FIDFeatureExtractor(inception, dims).to(device).eval()


@torch.no_grad()
def inception_activations(model: FIDFeatureExtractor, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """Stack the model's features (N x dims, float64) over batches of Bx3xHxW images in [0, 1]."""
    device = next(model.parameters()).device
    features = []
    for batch in batches:
        output = model(batch.to(device=device, dtype=torch.float32))[0]
        if output.shape[2:] != (1, 1):  # blocks before pool3 (as pytorch-fid's get_activations does)
            output = nn.functional.adaptive_avg_pool2d(output, output_size=(1, 1))
        features.append(output.flatten(1).double().cpu())
    if not features:
        raise ValueError("no images to compute Inception activations of")
    return torch.cat(features).numpy()


def activation_statistics(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance as pytorch-fid's calculate_activation_statistics computes them."""
    if activations.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {activations.shape[0]}")
    return np.mean(activations, axis=0), np.cov(activations, rowvar=False)


def frechet_distance(activations1: np.ndarray, activations2: np.ndarray) -> float:
    """FID between two sets of Inception activations (pytorch_fid.fid_score.calculate_frechet_distance)."""
    mu1, sigma1 = activation_statistics(activations1)
    mu2, sigma2 = activation_statistics(activations2)
    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 calls scipy.linalg.sqrtm(..., disp=False): deprecated in scipy 1.16, gone in 1.18.
        warnings.filterwarnings('ignore', message='.*`disp` argument is deprecated', category=DeprecationWarning)
        try:
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        except TypeError as error:
            if 'disp' not in str(error):
                raise
            raise ModelError(f"pytorch-fid cannot run with scipy {scipy.__version__} ({error}); "
                             f"pip install 'scipy>=1.13,<1.18'") from None
