"""Normalisation layers and weight initialisation shared by every network."""

import functools
from collections.abc import Callable
from typing import cast

import torch
import torch.nn as nn


def get_norm_layer(norm_type: str = 'instance') -> Callable[[int], nn.Module]:
    """`instance`: InstanceNorm2d without affine parameters (reference default); `batch`: affine BatchNorm2d."""
    if norm_type == 'batch':
        return functools.partial(nn.BatchNorm2d, affine=True)
    if norm_type == 'instance':
        return functools.partial(nn.InstanceNorm2d, affine=False)
    raise ValueError(f"normalization layer [{norm_type}] is not found; use --norm instance or --norm batch")


def weights_init(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02) (biases keep PyTorch's default); BatchNorm weight ~ N(1, 0.02), bias 0."""
    classname = module.__class__.__name__
    if classname.find('Conv') != -1:
        cast(torch.Tensor, module.weight).data.normal_(0.0, 0.02)
    elif classname.find('BatchNorm2d') != -1:
        cast(torch.Tensor, module.weight).data.normal_(1.0, 0.02)
        cast(torch.Tensor, module.bias).data.fill_(0)


def weights_init_zero_bias(module: nn.Module) -> None:
    """weights_init's draws, then conv biases set to 0: junyanz's init_weights('normal', 0.02) for pix2pix."""
    weights_init(module)
    if module.__class__.__name__.find('Conv') != -1 and getattr(module, 'bias', None) is not None:
        cast(torch.Tensor, module.bias).data.zero_()
