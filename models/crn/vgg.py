"""VGG19 as CRN's loss uses it (build_vgg19 of the official demos): convolutions up to conv5_2, average pooling, on
images in 0..255 minus the ImageNet mean; and the two ways to get its weights.

The CRN code's weights are MatConvNet's `imagenet-vgg-verydeep-19.mat` (--crn_vgg_mat), whose layout as
scipy.io.loadmat returns it is:

    mat['layers']                 1 x 43 cell array (object ndarray): the network's layers in order; layer i is
                                  torchvision's vgg19().features[i] for i < 36 (conv, relu, ..., pool), then the classifier
    mat['layers'][0][i][0][0]     a struct (numpy record) with the fields name ('conv1_1'), type ('conv'), weights, ...;
                                  `weights` is field 2, which build_vgg19 reads as vgg_layers[i][0][0][2]
    ...['weights'][0]             1 x 2 cell: [filters H x W x in x out float32, biases 1 x out]

build_vgg19 hands the filters to tf.nn.conv2d as they are (HWIO), so this reader takes dimension 0 as the kernel's
height as it does. torchvision's VGG19 state_dict (--vgg_weights, read by models/common/losses.py) is the
alternative: its weights are PyTorch's own ImageNet training, fed here exactly as CRN feeds the .mat network
(0..255 minus the mean, not torchvision's normalisation), so the official layer weights were not tuned for it.
"""

import argparse
import os
from collections.abc import Sequence
from typing import cast

import numpy as np
import scipy.io
import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import ModelError, OptionsError

from ..common.losses import load_vgg19_features

# The convolutions build_vgg19 uses, with their index in the .mat's layers and in torchvision's features.
VGG_CONVS = (
    ('conv1_1', 0),
    ('conv1_2', 2),
    ('conv2_1', 5),
    ('conv2_2', 7),
    ('conv3_1', 10),
    ('conv3_2', 12),
    ('conv3_3', 14),
    ('conv3_4', 16),
    ('conv4_1', 19),
    ('conv4_2', 21),
    ('conv4_3', 23),
    ('conv4_4', 25),
    ('conv5_1', 28),
    ('conv5_2', 30),
)
POOL_AFTER = frozenset({'conv1_2', 'conv2_2', 'conv3_4', 'conv4_4'})
# The layers of the loss after the input itself: p1..p5 of the demos.
LOSS_LAYERS = ('conv1_2', 'conv2_2', 'conv3_2', 'conv4_2', 'conv5_2')
IMAGENET_MEAN_255 = (123.68, 116.779, 103.939)


class CRNVgg19(nn.Module):
    """Frozen VGG19 up to conv5_2 with 2x2 average pooling (TF 'SAME': a partial window averages what it covers)."""

    mean: torch.Tensor

    def __init__(self, convs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        if len(convs) != len(VGG_CONVS):
            raise ValueError(f'expected {len(VGG_CONVS)} (weight, bias) pairs, got {len(convs)}')
        self.convs = nn.ModuleList()
        for weight, bias in convs:
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2)
            conv.requires_grad_(False)
            conv.weight.copy_(weight)
            cast(torch.Tensor, conv.bias).copy_(bias)
            self.convs.append(conv)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Images in 0..255 -> [image - mean, conv1_2, conv2_2, conv3_2, conv4_2, conv5_2] (after their ReLU)."""
        x = image - self.mean
        features = [x]
        for (name, _), conv in zip(VGG_CONVS, self.convs):
            x = F.relu(conv(x))
            if name in LOSS_LAYERS:
                features.append(x)
            if name in POOL_AFTER:
                # ceil_mode with no padding averages a partial window over its pixels only, as TF's 'SAME' does.
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        return features


def read_vgg_mat(path: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(OIHW weight, bias) of each convolution of VGG_CONVS from a MatConvNet .mat in the layout of the module docstring."""
    if not os.path.isfile(path):
        raise ModelError(f"--crn_vgg_mat {path}: file not found; give MatConvNet's imagenet-vgg-verydeep-19.mat (the CRN code's VGG19)")
    try:
        layers = scipy.io.loadmat(path)['layers'][0]
    except Exception as error:  # not a .mat, or one without a layers cell: the same fix
        raise ModelError(
            f"--crn_vgg_mat {path}: not MatConvNet's imagenet-vgg-verydeep-19.mat ({type(error).__name__}: {error}); "
            f"give that file, or a torchvision VGG19 state_dict with --vgg_weights"
        ) from None
    convs = []
    channels = 3
    for name, index in VGG_CONVS:
        try:
            layer = layers[index][0][0]
            found = str(layer['name'][0])
            kernel, bias = layer['weights'][0][0], layer['weights'][0][1]
        except (IndexError, ValueError, KeyError) as error:
            raise ModelError(
                f"--crn_vgg_mat {path}: layer {index} ({name}) is missing or has no weights ({error}); not the VGG19 .mat"
            ) from None
        if found != name or kernel.ndim != 4 or kernel.shape[:3] != (3, 3, channels) or bias.size != kernel.shape[3]:
            raise ModelError(
                f"--crn_vgg_mat {path}: layer {index} is {found!r} with filters {kernel.shape} and {bias.size} biases, expected "
                f"{name} with 3 x 3 x {channels} x out filters; not the VGG19 .mat the CRN code loads"
            )
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        convs.append((weight, torch.from_numpy(bias.reshape(-1).astype(np.float32))))
        channels = kernel.shape[3]
    return convs


def torchvision_convs(weights_path: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of each convolution of VGG_CONVS from a torchvision VGG19 state_dict file (as --vgg_weights reads it)."""
    features = load_vgg19_features(weights_path)
    convs = [cast(nn.Conv2d, features[index]) for _, index in VGG_CONVS]
    return [(conv.weight.detach(), cast(torch.Tensor, conv.bias).detach()) for conv in convs]


def load_vgg(opt: argparse.Namespace) -> CRNVgg19:
    """The loss network from --crn_vgg_mat, else --vgg_weights; nothing is downloaded."""
    if opt.crn_vgg_mat:
        return CRNVgg19(read_vgg_mat(opt.crn_vgg_mat))
    if opt.vgg_weights:
        return CRNVgg19(torchvision_convs(opt.vgg_weights))
    raise OptionsError(
        "CRN's loss needs VGG19 weights: pass --crn_vgg_mat imagenet-vgg-verydeep-19.mat (the CRN code's) or --vgg_weights FILE "
        "(torchvision's VGG19 state_dict); nothing is downloaded"
    )
