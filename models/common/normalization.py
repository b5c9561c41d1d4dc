"""Normalisation layers and weight initialisation shared by every network."""

import functools
import math
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
    """nn.InstanceNorm2d that, in a channels-last network, hands its backward contiguous gradients.

    PyTorch's instance_norm backward is wrong at batch size 1 when the incoming gradient is channels-last,
    whatever the input's layout (torch 2.14 on the CPU: relative error ~1.4 on a lone layer; the same kind of
    error, ~1 relative in the generator's gradients, came out of a channels-last training step on an H200 with
    torch 2.11; tests/test_scaling.py). TrainerBase sets `contiguous_gradient` on every such layer of a
    --channels_last network; elsewhere nothing changes.
    """

    contiguous_gradient = False
    # --instance_norm_impl decomposed: mean and variance by a reduction over H x W, then elementwise arithmetic, all of
    # which keep a channels-last input channels-last (PyTorch's instance_norm runs as a batch norm over a (1, N*C, H,
    # W) view, which takes and gives NCHW, so a channels-last network converts around every such layer), and whose
    # backward is autograd's own (no contiguous gradient needed). Computed in float32 under autocast, as the native
    # kernel keeps its statistics.
    decomposed = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Instance normalisation; see the class docstring."""
        if self.decomposed and not self.track_running_stats:
            x = input.float()
            var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
            output = (x - mean) * torch.rsqrt(var + self.eps)
            if self.affine:
                output = output * self.weight[None, :, None, None] + self.bias[None, :, None, None]
            return output.to(input.dtype)
        output = super().forward(input)
        if self.contiguous_gradient and output.requires_grad and input.size(0) == 1:  # right at batch 2 and more
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


def centre_tap_init(module: nn.Module) -> None:
    """A Conv2d's centre-tap draw times sqrt(kh * kw) (the same expected squared norm), its other taps 0.

    Applied after weights_init's draws: a Gaussian variant of the delta-orthogonal initialisation of Xiao et al.
    (ICML 2018). Each kernel starts without the reference's spatial noise, which a short training run leaves in
    place as speckle along every edge of the input (docs/QUICKSTART.md, "The coloured fringes"). The centre is
    that of an odd kernel, as all of G's are. Transposed convolutions keep their draws: with only the centre
    tap, a stride-2 one would start as a checkerboard.
    """
    if type(module) is nn.Conv2d:
        height, width = module.kernel_size
        with torch.no_grad():
            centre = module.weight[:, :, height // 2, width // 2].clone()
            module.weight.zero_()
            module.weight[:, :, height // 2, width // 2] = centre * math.sqrt(height * width)


def weights_init_zero_bias(module: nn.Module) -> None:
    """weights_init's draws, then conv biases set to 0: junyanz's init_weights('normal', 0.02) for pix2pix."""
    weights_init(module)
    if module.__class__.__name__.find('Conv') != -1 and getattr(module, 'bias', None) is not None:
        cast(torch.Tensor, module.bias).data.zero_()
