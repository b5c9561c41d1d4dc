"""Normalisation layers and weight initialisation shared by every network."""

import functools
from collections.abc import Callable
from typing import cast

import torch
import torch.nn as nn


class ContiguousGradient(torch.autograd.Function):
    """Identity whose backward hands on its gradient in the contiguous (NCHW) layout."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x, as a view (a Function that returned its input itself would not get a node of its own in the graph)."""
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The gradient, made contiguous."""
        return grad.contiguous()


class InstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d, with its backward fed contiguous gradients under --channels_last.

    PyTorch's instance_norm backward is wrong at batch size 1 when the incoming gradient is channels-last
    (torch 2.14 on the CPU; the same error, ~1 relative in the generator's gradients, came out of a
    channels-last training step on an H200 with torch 2.11; tests/test_scaling.py). A channels-last network
    hands it exactly such gradients, so there the gradient is made contiguous first; an NCHW network's
    forward is unchanged.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Instance normalisation; see the class docstring."""
        output = super().forward(input)
        channels_last = input.dim() == 4 and not input.is_contiguous() and input.is_contiguous(memory_format=torch.channels_last)
        if output.requires_grad and channels_last:
            output = ContiguousGradient.apply(output)
        return output


def get_norm_layer(norm_type: str = 'instance') -> Callable[[int], nn.Module]:
    """`instance`: InstanceNorm2d without affine parameters (reference default); `batch`: affine BatchNorm2d."""
    if norm_type == 'batch':
        return functools.partial(nn.BatchNorm2d, affine=True)
    if norm_type == 'instance':
        return functools.partial(InstanceNorm2d, affine=False)
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
