"""util/flow.py: warping by a flow in pixels (vid2vid's resample convention) on motions whose answer is known."""

import torch

from util.flow import warp, warping_error


def ramp(height: int = 6, width: int = 9) -> torch.Tensor:
    """A 1 x 2 x H x W image: channel 0 = x, channel 1 = y (so a warp's output says where it read)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing='ij')
    return torch.stack((xs, ys)).unsqueeze(0)


def test_zero_flow_is_the_identity():
    image = torch.randn(2, 3, 5, 7)
    assert torch.allclose(warp(image, torch.zeros(2, 2, 5, 7)), image, atol=1e-6)


def test_a_whole_pixel_shift_reads_the_neighbour_and_the_border_beyond_the_edge():
    image = ramp()
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = 2.0  # read two pixels to the right
    flow[:, 1] = -1.0  # and one up
    out = warp(image, flow)
    xs, ys = out[0, 0], out[0, 1]
    assert torch.allclose(xs[:, :7], ramp()[0, 0, :, 2:], atol=1e-5)
    assert torch.allclose(xs[:, 7:], torch.full((6, 2), 8.0), atol=1e-5)  # beyond the right edge: the border column
    assert torch.allclose(ys[1:], ramp()[0, 1, :-1], atol=1e-5)
    assert torch.allclose(ys[0], torch.zeros(9), atol=1e-5)  # above the top: row 0


def test_a_fractional_shift_interpolates_bilinearly():
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = 0.25
    flow[:, 1] = 0.5
    out = warp(ramp(), flow)
    # Bilinear interpolation of a linear ramp is exact: x + 0.25, y + 0.5 inside the frame.
    assert torch.allclose(out[0, 0, :, :8], ramp()[0, 0, :, :8] + 0.25, atol=1e-5)
    assert torch.allclose(out[0, 1, :5], ramp()[0, 1, :5] + 0.5, atol=1e-5)


def test_warping_error_is_zero_for_exact_motion_and_counts_only_visible_pixels():
    torch.manual_seed(0)
    first = torch.randn(1, 3, 6, 9)
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = -1.0  # frame 1's pixel x is frame 0's pixel x - 1: content moved right by one
    second = warp(first, flow)
    frames = torch.stack((first, second), 1)
    visible = torch.ones(1, 1, 1, 6, 9)
    assert warping_error(frames, flow.unsqueeze(1), visible).item() < 1e-6
    changed = frames.clone()
    changed[0, 1, :, :, 0] += 5.0  # the column that came from outside the frame: an occlusion
    assert warping_error(changed, flow.unsqueeze(1), visible).item() > 0.5
    visible[..., 0] = 0
    assert warping_error(changed, flow.unsqueeze(1), visible).item() < 1e-6
