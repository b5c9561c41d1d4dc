"""Optical flow as vid2vid uses it: a B x 2 x H x W tensor in pixels (channel 0 = x, channel 1 = y) that says, for
each pixel of a frame, where in another frame its content is; warp() reads that other frame there.

The convention is vid2vid's resample(): the sampling grid is the pixel centres' coordinates under
align_corners=True (pixel 0 at -1, pixel W-1 at +1), shifted by flow / ((W-1)/2), (H-1)/2; bilinear, and a point
outside the frame takes the nearest border pixel. A zero flow is the identity.
"""

import torch
import torch.nn.functional as F


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """The grid_sample grid (B x H x W x 2, align_corners=True) that reads each pixel at itself plus `flow` (B x 2 x H x W)."""
    batch, _, height, width = flow.shape
    # Flow arrives in the frames' dtype (bf16 under autocast); the grid is built in float32 for exact pixel centres.
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device).view(1, 1, width).expand(batch, height, width)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device).view(1, height, 1).expand(batch, height, width)
    scale_x = (width - 1.0) / 2.0 if width > 1 else 1.0
    scale_y = (height - 1.0) / 2.0 if height > 1 else 1.0
    return torch.stack((xs + flow[:, 0].float() / scale_x, ys + flow[:, 1].float() / scale_y), dim=3)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` (B x C x H x W) read at each pixel plus `flow` (B x 2 x H x W, pixels): bilinear, border padding."""
    grid = flow_grid(flow).to(image.dtype)
    return F.grid_sample(image, grid, mode='bilinear', padding_mode='border', align_corners=True)


def compose_flows(flows: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow and confidence from the last frame of a run to its first, from the consecutive ones (N x k x 2 x H x W,
    flow i taking frame i+1 to frame i; masks N x k x 1 x H x W): f = f_k + warp(f_{k-1}, f_k) + ..., the confidence
    the product of the masks along the way (bilinear reads: fractional beside an occlusion)."""
    total, confidence = flows[:, -1], masks[:, -1]
    for step in range(flows.shape[1] - 2, -1, -1):
        # Where the last frame's pixel is in frame step + 1: its mask and flow are read there.
        confidence = confidence * warp(masks[:, step], total)
        total = total + warp(flows[:, step], total)
    return total, confidence


def warping_error(frames: torch.Tensor, flows: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mean |frame_t - warp(frame_{t-1}, flow_t)| over the pixels `visible` marks, per sequence.

    frames: B x T x C x H x W; flows: B x (T-1) x 2 x H x W, flow t taking frame t+1's pixels to frame t; visible:
    B x (T-1) x 1 x H x W, 1 where frame t+1's pixel is seen in frame t (outside occlusions). Returns B values.
    """
    batch, steps = frames.shape[:2]
    previous = frames[:, :-1].flatten(0, 1)
    current = frames[:, 1:].flatten(0, 1)
    warped = warp(previous, flows.flatten(0, 1))
    mask = visible.flatten(0, 1).to(frames.dtype)
    error = ((current - warped).abs() * mask).sum(dim=(1, 2, 3)).view(batch, steps - 1)
    count = (mask.sum(dim=(1, 2, 3)) * frames.shape[2]).view(batch, steps - 1)
    return error.sum(1) / count.sum(1).clamp(min=1.0)
