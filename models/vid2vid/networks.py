"""vid2vid's networks with its authors' module names (their checkpoints load with strict=True): the sequential
generator (CompositeGenerator, and CompositeLocalGenerator for each finer spatial scale) and the multi-scale image
and temporal discriminators (pix2pixHD's PatchGAN stack with vid2vid's widths).

One generator call makes one frame t from the label maps of frames t-n_frames_G+1 .. t (one-hot, stacked on
channels, oldest first) and the n_frames_G-1 frames before t (stacked the same way):
    raw  = hallucinated image (tanh),  flow = flow from frame t to frame t-1 in pixels,  weight = occlusion mask
    image = raw * weight + warp(frame t-1, flow) * (1 - weight)
and, with --fg, the foreground classes come from a separate hallucination branch only.
"""

import copy
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from util.flow import warp

from ..common.normalization import InstanceNorm2d
from ..pix2pixhd.networks.discriminator import MultiscaleDiscriminator
from ..pix2pixhd.networks.generator import ResnetBlock

# The generator's flow head ends in a conv whose output is scaled by this (x 2**scale at finer scales): its
# outputs start near 0, and flows are tens of pixels.
FLOW_MULTIPLIER = 20.0
# vid2vid's discriminators cap the first layer's filters at 64 (pix2pixHD's do not).
D_WIDTH_CAP = 64


def vid2vid_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """The authors' choices: affine BatchNorm2d, or InstanceNorm2d without affine but with running statistics."""
    if norm == 'batch':
        return functools.partial(nn.BatchNorm2d, affine=True)
    if norm == 'instance':
        # The project's InstanceNorm2d (same keys): its channels-last gradient workaround applies (normalization.py).
        return functools.partial(InstanceNorm2d, affine=False, track_running_stats=True)
    raise ValueError(f"--norm {norm}: vid2vid uses batch or instance")


class FrameOutput(NamedTuple):
    """One generator call's results (flow, weight and the features are None where the network has no such head)."""

    image: torch.Tensor
    flow: torch.Tensor | None
    weight: torch.Tensor | None
    raw: torch.Tensor
    image_feat: torch.Tensor
    flow_feat: torch.Tensor | None
    fg_feat: torch.Tensor | None


def _stem(in_nc: int, out_nc: int, norm_layer: Callable[[int], nn.Module]) -> list[nn.Module]:
    """Reflection pad 3, 7x7 conv, norm, ReLU."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, out_nc, kernel_size=7, padding=0), norm_layer(out_nc), nn.ReLU()]


def _down(in_nc: int, out_nc: int, norm_layer: Callable[[int], nn.Module]) -> list[nn.Module]:
    """3x3 stride-2 conv, norm, ReLU."""
    return [nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=2, padding=1), norm_layer(out_nc), nn.ReLU()]


def _up(in_nc: int, out_nc: int, norm_layer: Callable[[int], nn.Module]) -> list[nn.Module]:
    """3x3 stride-2 transposed conv (output padding 1: exactly 2x), norm, ReLU."""
    return [nn.ConvTranspose2d(in_nc, out_nc, kernel_size=3, stride=2, padding=1, output_padding=1), norm_layer(out_nc), nn.ReLU()]


def _head(in_nc: int, out_nc: int, final: nn.Module | None) -> nn.Sequential:
    """Reflection pad 3, 7x7 conv to out_nc, then `final` (tanh, sigmoid or nothing)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, out_nc, kernel_size=7, padding=0)]
    return nn.Sequential(*layers, *([final] if final is not None else []))


def _blocks(dim: int, count: int, norm_layer: Callable[[int], nn.Module]) -> list[nn.Module]:
    """`count` residual blocks at `dim` channels."""
    return [ResnetBlock(dim, norm_layer) for _ in range(count)]


def _compose(
    raw: torch.Tensor, flow: torch.Tensor | None, weight: torch.Tensor | None, previous: torch.Tensor, raw_only: bool
) -> torch.Tensor:
    """raw * weight + warp(last previous frame, flow) * (1 - weight), or raw alone without a flow head / for a first frame."""
    if raw_only or flow is None or weight is None:
        return raw
    warped = warp(previous[:, -raw.shape[1] :], flow)
    return raw * weight + warped * (1 - weight)


def _paste_foreground(fg: torch.Tensor, mask: torch.Tensor, image: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The foreground branch's image where `mask` (1 x H x W per sample) is 1, in both the final and the raw image."""
    mask = mask.expand_as(raw)
    return fg * mask + image * (1 - mask), fg * mask + raw * (1 - mask)


def _frame(
    net: Any,  # either generator: its heads model_final_flow, model_final_w, indv_final
    raw: torch.Tensor,
    image_feat: torch.Tensor,
    flow_feat: torch.Tensor | None,
    flow_multiplier: float,
    previous: torch.Tensor,
    raw_only: bool,
    fg_feat: torch.Tensor | None,
    fg_mask: torch.Tensor | None,
) -> FrameOutput:
    """A scale's frame from its features: the flow and weight heads on the flow features, the composition with the
    warped previous frame, then the foreground branch's image pasted in (either generator's last steps)."""
    flow = weight = None
    if flow_feat is not None:
        flow = net.model_final_flow(flow_feat) * flow_multiplier
        weight = net.model_final_w(flow_feat)
    image = _compose(raw, flow, weight, previous, raw_only)
    if fg_feat is not None:
        image, raw = _paste_foreground(net.indv_final(fg_feat), fg_mask, image, raw)  # type: ignore[arg-type]
    return FrameOutput(image, flow, weight, raw, image_feat, flow_feat, fg_feat)


class CompositeGenerator(nn.Module):
    """The coarsest (or only) spatial scale: two encoders (labels, previous frames) summed, then an image branch and a
    flow branch (flow + weight heads), each with its own residual blocks and upsampling."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        prev_output_nc: int,
        ngf: int,
        n_downsampling: int,
        n_blocks: int,
        norm_layer: Callable[[int], nn.Module],
        use_fg_model: bool = False,
        no_flow: bool = False,
    ) -> None:
        super().__init__()
        self.no_flow = no_flow
        self.use_fg_model = use_fg_model
        mult = 2**n_downsampling
        if use_fg_model:
            ngf_fg = ngf // 2 if n_downsampling > 2 else ngf
            fg_down = _stem(input_nc, ngf_fg, norm_layer)
            for i in range(n_downsampling):
                fg_down += _down(ngf_fg * 2**i, ngf_fg * 2 ** (i + 1), norm_layer)
            fg_up: list[nn.Module] = []
            for i in range(n_downsampling):
                fg_up += _up(ngf_fg * 2 ** (n_downsampling - i), ngf_fg * 2 ** (n_downsampling - i) // 2, norm_layer)
            self.indv_down = nn.Sequential(*fg_down)
            self.indv_res = nn.Sequential(*_blocks(ngf_fg * mult, n_blocks, norm_layer))
            self.indv_up = nn.Sequential(*fg_up)
            self.indv_final = _head(ngf_fg, output_nc, nn.Tanh())

        # The label encoder holds the first n_blocks - n_blocks//2 residual blocks; the previous-frames encoder has
        # its own stem and the same downsampling and blocks (the authors copy them: same indices, same keys).
        down_seg = _stem(input_nc, ngf, norm_layer)
        for i in range(n_downsampling):
            down_seg += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm_layer)
        down_seg += _blocks(ngf * mult, n_blocks - n_blocks // 2, norm_layer)
        down_img = _stem(prev_output_nc, ngf, norm_layer) + copy.deepcopy(down_seg[4:])
        up: list[nn.Module] = []
        for i in range(n_downsampling):
            up += _up(ngf * 2 ** (n_downsampling - i), ngf * 2 ** (n_downsampling - i) // 2, norm_layer)
        self.model_down_seg = nn.Sequential(*down_seg)
        self.model_down_img = nn.Sequential(*down_img)
        self.model_res_img = nn.Sequential(*_blocks(ngf * mult, n_blocks // 2, norm_layer))
        self.model_up_img = nn.Sequential(*up)
        self.model_final_img = _head(ngf, output_nc, nn.Tanh())
        if not no_flow:
            self.model_res_flow = copy.deepcopy(self.model_res_img)
            self.model_up_flow = copy.deepcopy(self.model_up_img)
            self.model_final_flow = _head(ngf, 2, None)
            self.model_final_w = _head(ngf, 1, nn.Sigmoid())

    def forward(
        self,
        labels: torch.Tensor,
        previous: torch.Tensor,
        fg_mask: torch.Tensor | None = None,
        coarse: FrameOutput | None = None,
        raw_only: bool = False,
    ) -> FrameOutput:
        """One frame from `labels` (B x n_frames_G*label channels) and `previous` (B x (n_frames_G-1)*3); `coarse` unused."""
        features = self.model_down_seg(labels) + self.model_down_img(previous)
        image_feat = self.model_up_img(self.model_res_img(features))
        flow_feat = None if self.no_flow else self.model_up_flow(self.model_res_flow(features))
        fg_feat = self.indv_up(self.indv_res(self.indv_down(labels))) if self.use_fg_model else None
        return _frame(self, self.model_final_img(image_feat), image_feat, flow_feat, FLOW_MULTIPLIER, previous, raw_only, fg_feat, fg_mask)


class CompositeLocalGenerator(nn.Module):
    """A finer spatial scale (scale s >= 1, 2**s times the coarsest's size): one downsampling, added to the coarser
    scale's features before its residual blocks and upsampling (pix2pixHD's local enhancer, per branch)."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        prev_output_nc: int,
        ngf: int,
        n_blocks_local: int,
        norm_layer: Callable[[int], nn.Module],
        scale: int,
        n_downsampling: int,
        use_fg_model: bool = False,
        no_flow: bool = False,
    ) -> None:
        super().__init__()
        self.no_flow = no_flow
        self.use_fg_model = use_fg_model
        self.flow_multiplier = FLOW_MULTIPLIER * 2**scale  # flows in pixels of this scale
        if use_fg_model:
            ngf_fg = ngf // 2 if n_downsampling > 2 else ngf  # the coarsest scale's rule (its n_downsample_G)
            self.indv_down = nn.Sequential(*_stem(input_nc, ngf_fg, norm_layer), *_down(ngf_fg, ngf_fg * 2, norm_layer))
            self.indv_up = nn.Sequential(*_blocks(ngf_fg * 2, n_blocks_local, norm_layer), *_up(ngf_fg * 2, ngf_fg, norm_layer))
            self.indv_final = _head(ngf_fg, output_nc, nn.Tanh())
        self.model_down_seg = nn.Sequential(*_stem(input_nc, ngf, norm_layer), *_down(ngf, ngf * 2, norm_layer))
        self.model_down_img = nn.Sequential(*_stem(prev_output_nc, ngf, norm_layer), *_down(ngf, ngf * 2, norm_layer))
        self.model_up_img = nn.Sequential(*_blocks(ngf * 2, n_blocks_local, norm_layer), *_up(ngf * 2, ngf, norm_layer))
        self.model_final_img = _head(ngf, output_nc, nn.Tanh())
        if not no_flow:
            self.model_up_flow = copy.deepcopy(self.model_up_img)
            self.model_final_flow = _head(ngf, 2, None)
            self.model_final_w = _head(ngf, 1, nn.Sigmoid())

    def forward(
        self,
        labels: torch.Tensor,
        previous: torch.Tensor,
        fg_mask: torch.Tensor | None = None,
        coarse: FrameOutput | None = None,
        raw_only: bool = False,
    ) -> FrameOutput:
        """One frame at this scale, refining `coarse` (the next coarser scale's output for the same frame)."""
        if coarse is None:
            raise ValueError('a finer vid2vid scale needs the coarser scale\'s features')
        features = self.model_down_seg(labels) + self.model_down_img(previous)
        image_feat = self.model_up_img(features + coarse.image_feat)
        flow_feat = None
        if not self.no_flow and coarse.flow_feat is not None:
            flow_feat = self.model_up_flow(features + coarse.flow_feat)
        fg_feat = self.indv_up(self.indv_down(labels) + coarse.fg_feat) if self.use_fg_model else None
        raw = self.model_final_img(image_feat)
        return _frame(self, raw, image_feat, flow_feat, self.flow_multiplier, previous, raw_only, fg_feat, fg_mask)


def define_D(input_nc: int, ndf: int, n_layers_D: int, norm: str, num_D: int, get_interm_feat: bool) -> MultiscaleDiscriminator:
    """vid2vid's multi-scale PatchGAN: scale i starts with min(64, ndf * 2**(num_D-1-i)) filters (full resolution goes to
    scale num_D-1), initialised as the authors' weights_init."""
    widths = tuple(min(D_WIDTH_CAP, ndf * 2 ** (num_D - 1 - i)) for i in range(num_D))
    net = MultiscaleDiscriminator(input_nc, ndf, n_layers_D, vid2vid_norm_layer(norm), num_D, get_interm_feat, widths)
    return net
