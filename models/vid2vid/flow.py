"""The reference flow where the data has no flow files: torchvision's RAFT (Teed and Deng, ECCV 2020) with weights
from a local file (--flow_weights), in place of the FlowNet2 of the authors' code (its CUDA kernels do not build on
most machines and do not run on CPUs). What the substitution changes is in docs/VIDEO.md.

Flow convention: util/flow.py's (frame t to frame t-1, pixels, x then y). The confidence is photometric: 1 where
the previous frame warped by the flow matches the frame (the authors' FlowNet2 wrapper also checks the warped
image; the threshold here is ours).
"""

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import ModelError
from util.flow import warp

# RAFT's correlation pyramid needs feature maps of at least 16 x 16 at 1/8 of the input: frames are resized up to this.
RAFT_MIN_SIDE = 128
RAFT_UPDATES = 12  # torchvision's default number of refinement iterations
# A pixel is confident where |frame - warped previous| (RGB in [-1, 1], L2 over channels) is below this.
CONFIDENCE_THRESHOLD = 0.1


def load_raft(path: str) -> nn.Module:
    """torchvision's RAFT (large, or small if the file is small's) with the state_dict in `path`, frozen, eval mode."""
    from torchvision.models.optical_flow import raft_large, raft_small

    if not os.path.isfile(path):
        raise ModelError(f"--flow_weights {path}: file not found; give a torchvision RAFT state_dict (docs/VIDEO.md)")
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # an unreadable file of any kind gets the same one-line message
        raise ModelError(f"--flow_weights {path}: not a torch state_dict ({str(error).splitlines()[0]})") from None
    for build in (raft_large, raft_small):
        net = build(weights=None)
        if set(net.state_dict()) == set(state):
            net.load_state_dict(state)
            net.eval().requires_grad_(False)
            return net
    raise ModelError(
        f"--flow_weights {path}: not a torchvision RAFT state_dict; save one with "
        f"torch.save(torchvision.models.optical_flow.raft_large(weights='DEFAULT').state_dict(), PATH)"
    )


class ReferenceFlow(nn.Module):
    """RAFT's flow from each frame to the one before, with a photometric confidence."""

    def __init__(self, raft: nn.Module) -> None:
        super().__init__()
        self.raft = raft

    def train(self, mode: bool = True) -> 'ReferenceFlow':
        """Always in eval mode: RAFT's BatchNorm layers keep their trained statistics inside a training model."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames B x T x 3 x H x W in [-1, 1] -> (flows B x (T-1) x 2 x H x W, confidences B x (T-1) x 1 x H x W)."""
        batch, steps, _, height, width = frames.shape
        current = frames[:, 1:].flatten(0, 1).float()
        previous = frames[:, :-1].flatten(0, 1).float()
        size = (max(RAFT_MIN_SIDE, math.ceil(height / 8) * 8), max(RAFT_MIN_SIDE, math.ceil(width / 8) * 8))
        resized = (height, width) != size
        if resized:
            current_in = F.interpolate(current, size=size, mode='bilinear', align_corners=False)
            previous_in = F.interpolate(previous, size=size, mode='bilinear', align_corners=False)
        else:
            current_in, previous_in = current, previous
        flow = self.raft(current_in, previous_in, num_flow_updates=RAFT_UPDATES)[-1]
        if resized:
            flow = F.interpolate(flow, size=(height, width), mode='bilinear', align_corners=False)
            flow = flow * torch.tensor([width / size[1], height / size[0]], device=flow.device).view(1, 2, 1, 1)
        error = (current - warp(previous, flow)).norm(dim=1, keepdim=True)
        confidence = (error < CONFIDENCE_THRESHOLD).float()
        return flow.view(batch, steps - 1, 2, height, width), confidence.view(batch, steps - 1, 1, height, width)
