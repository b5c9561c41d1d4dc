"""Evaluation metrics of the pix2pixHD paper: segmentation accuracy / mean IoU on Cityscapes, and FID / KID; FVD for videos.

Segmentation score (pix2pixHD, CVPR 2018, section 4.1): an off-the-shelf segmentation network labels the
synthesized images and its prediction is compared with the input label map over the 19 Cityscapes
evaluation classes (trainIds); pixels whose labelId has no trainId are ignored (255).

FID and KID come from `torch-fidelity`: its InceptionV3 is the PyTorch port of the TensorFlow 2015-12-05
graph that the reference FID (TTUR, Heusel et al. 2017) and KID (MMD-GAN, Binkowski et al. 2018) run, with
TensorFlow's bilinear resize reproduced, and its `fid_statistics_to_metric` / `kid_features_to_metric` do
the arithmetic; torchvision's ImageNet Inception gives different, non-comparable values. This module only
loads the weights (a local file when offline), streams batches through the network and calls those
functions, so the numbers are torch-fidelity's.

FVD (Unterthiner et al. 2018) is the same distance between Gaussians fitted to I3D features of video clips. Its
network is StyleGAN-V's TorchScript port of the paper's TF-Hub I3D (Kinetics-400), called as StyleGAN-V calls it;
the distance is computed here, in float64.
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


def first_line(error: BaseException) -> str:
    """An error's first line (its type's name when it has no message): what a one-line error quotes of a load failure."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def last_line(error: BaseException) -> str:
    """An error's last line (its type's name when it has no message): a failed forward's reason, below the traceback
    that TorchScript and torch.export put first."""
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


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
        raise ModelError(f"--seg_model {path}: cannot load ({first_line(error)}); export it with {how} (see --help)") from None
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


def run_segmentation(
    model: torch.nn.Module, images: torch.Tensor, input_range: str, num_classes: int, name: str, expected: str
) -> torch.Tensor:
    """B x num_classes x h x w logits of `model` on 0-255 RGB photos (B x 3 x H x W); a one-line ModelError naming
    `name` (the flag that gave the network) when its forward fails or returns anything else (`expected` says what)."""
    try:
        output = model(segmentation_input(images, input_range))
    except Exception as error:  # the network's own code: a size or device it cannot take
        raise ModelError(
            f"{name}: forward pass failed on a {tuple(images.shape)} batch ({last_line(error)}); see --help for what it takes"
        ) from None
    logits = segmentation_logits(output)
    if logits is None or logits.dim() != 4 or logits.shape[:2] != (images.shape[0], num_classes):
        shape = tuple(logits.shape) if logits is not None else type(output).__name__
        raise ModelError(f"{name}: returned {shape} for a {tuple(images.shape)} batch; expected Bx{num_classes}xHxW {expected}")
    return logits


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
                f"--inception_weights {weights}: cannot load ({first_line(error)}); expected {INCEPTION_WEIGHTS_FILE}"
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
                f"--inception_weights {weights}: not the Inception state_dict ({INCEPTION_WEIGHTS_FILE}): {first_line(error)}"
            ) from None
        raise ModelError(f"cannot download the Inception weights ({first_line(error)}); {hint}") from None
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


# -------------------------------------------------------------------------------------------------- FVD

I3D_FILE = 'i3d_torchscript.pt'  # StyleGAN-V's TorchScript port of the FVD paper's TF-Hub I3D (Kinetics-400)
I3D_ARGUMENTS = ('rescale', 'resize', 'return_features')  # its forward's switches, besides the videos
FVD_FRAMES = 16  # frames per clip: the FVD paper's and StyleGAN-V's (its fvd2048_16f)


def load_i3d(path: str, device: torch.device | str) -> torch.nn.Module:
    """The TorchScript I3D of `path` in eval mode; a file that is not TorchScript, or whose forward does not take
    (videos, rescale, resize, return_features), is refused in one line."""
    fix = f"pass StyleGAN-V's {I3D_FILE} (docs/VIDEO.md says where to get it)"
    if not os.path.isfile(path):
        raise ModelError(f"--i3d_weights {path}: file not found; {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch >= 2.10 marks TorchScript deprecated
            model = torch.jit.load(path, map_location=device)
    except Exception as error:  # a state_dict, a pickle, a truncated download: zip and unpickling errors of many types
        raise ModelError(f"--i3d_weights {path}: not a TorchScript file ({first_line(error)}); {fix}") from None
    try:
        arguments = [argument.name for argument in model.forward.schema.arguments[1:]]  # [0] is self
    except AttributeError:  # a TorchScript archive without a forward method
        arguments = []
    missing = [name for name in I3D_ARGUMENTS if name not in arguments]
    if missing:
        raise ModelError(
            f"--i3d_weights {path}: not a TorchScript I3D (its forward takes ({', '.join(arguments)}), without {', '.join(missing)}); {fix}"
        )
    return model.eval()


@torch.no_grad()
def i3d_features(model: torch.nn.Module, clips: Iterable[torch.Tensor], path: str, device: torch.device | str) -> torch.Tensor:
    """The I3D features (N x D float32, on the CPU) of batches of float Bx3xTxHxW clips in 0-255, called as StyleGAN-V
    calls it: the network rescales them to [-1, 1] and resizes the frames to 224x224 itself (the FVD paper's bilinear
    resize of whole frames) and returns its logits before the softmax."""
    features = []
    for batch in clips:
        try:
            output = model(batch.to(device), rescale=True, resize=True, return_features=True)
        except Exception as error:  # the file's own code: a shape it cannot take, a device it was not saved for...
            raise ModelError(
                f"--i3d_weights {path}: forward pass failed on a {tuple(batch.shape)} batch of clips ({last_line(error)}); "
                f"pass StyleGAN-V's {I3D_FILE}"
            ) from None
        if not isinstance(output, torch.Tensor) or output.dim() != 2 or len(output) != len(batch):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ModelError(
                f"--i3d_weights {path}: returned {shape} for {len(batch)} clips, not one feature vector per clip; "
                f"pass StyleGAN-V's {I3D_FILE}"
            )
        features.append(output.float().cpu())
    if not features:
        raise ValueError("no clips to compute I3D features of")
    return torch.cat(features)


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (unbiased, / (N - 1), as the FVD and FID references) of N x D features, in float64."""
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"statistics need at least 2 feature vectors (N x D), got shape {tuple(features.shape)}")
    x = features.double()
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def gaussian_frechet_distance(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between two Gaussians, in float64:
    |mean1 - mean2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^1/2 cov2 cov1^1/2)^1/2)."""
    mean1, cov1, mean2, cov2 = (t.double() for t in (mean1, cov1, mean2, cov2))
    # tr sqrt(cov1 cov2) through the symmetric cov1^1/2 cov2 cov1^1/2 (same eigenvalues): eigh on a symmetric PSD
    # matrix gives real eigenvalues, where the product's own can come out complex; rounding's tiny negatives clip to 0.
    values, vectors = torch.linalg.eigh(cov1)
    root1 = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root1 @ cov2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mean1 - mean2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * trace_root)


def video_frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FVD between two sets of I3D clip features (N x D each): the Frechet distance of their Gaussians, in float64."""
    return gaussian_frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))
