"""The instance-feature encoder E (docs/overview.md, "Networks") and its instance-wise average pooling."""

from collections.abc import Callable

import torch
import torch.nn as nn

from .generator import global_generator_layers


def instance_segments(instance_map: torch.Tensor) -> tuple:
    """Number every (image, instance id) pair of a B x 1 x H x W map without a loop over instances.

    Returns (segment index of every pixel, flattened B*H*W; instance id of each segment; image index of
    each segment). Ids are compacted with one torch.unique, then offset by the image index.
    """
    batch = instance_map.shape[0]
    ids = instance_map.reshape(batch, -1).long()
    unique_ids, compact = torch.unique(ids, return_inverse=True)
    n_ids = unique_ids.numel()
    image_offset = torch.arange(batch, device=ids.device).unsqueeze(1) * n_ids
    segment = (compact + image_offset).reshape(-1)
    present = torch.zeros(batch * n_ids, dtype=torch.bool, device=ids.device)
    present[segment] = True
    segment_ids = unique_ids.repeat(batch)[present]
    segment_images = torch.arange(batch, device=ids.device).repeat_interleave(n_ids)[present]
    # Renumber so that segments are 0..S-1 with no gaps (absent (image, id) pairs dropped).
    renumber = torch.cumsum(present.long(), 0) - 1
    return renumber[segment], segment_ids, segment_images


def segment_mean(features: torch.Tensor, segment: torch.Tensor, n_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(S x C means in float32, S pixel counts) of a B x C x H x W map over a per-pixel segment index."""
    channels = features.shape[1]
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels)
    sums = torch.zeros(n_segments, channels, dtype=torch.float32, device=features.device)
    sums.index_add_(0, segment, flat.float())
    counts = torch.bincount(segment, minlength=n_segments)
    return sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype), counts


def instance_average_pool(features: torch.Tensor, instance_map: torch.Tensor) -> torch.Tensor:
    """Replace every pixel's feature by the mean feature of its instance, per image and channel.

    A segment mean over (image, instance id) pairs in one index_add: no loop over instances,
    channels or the batch, so the cost does not grow with the number of objects.
    features: B x C x H x W float; instance_map: B x 1 x H x W integer ids (any range).
    """
    batch, channels, height, width = features.shape
    segment, segment_ids, _ = instance_segments(instance_map)
    means, _ = segment_mean(features, segment, segment_ids.numel())
    pooled = means.to(features.dtype)[segment]
    return pooled.reshape(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()


class Encoder(nn.Module):
    """E: an encoder-decoder whose output is averaged inside each instance."""

    def __init__(
        self, input_nc: int, output_nc: int, ngf: int = 32, n_downsampling: int = 4, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.output_nc = output_nc
        # The global generator's layers without residual blocks: same modules, same `model.K` keys.
        layers = global_generator_layers(input_nc, output_nc, ngf, n_downsampling, 0, norm_layer, use_dropout=False)
        self.model = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        """Per-instance mean features of `input`, broadcast over each instance of `inst`."""
        return instance_average_pool(self.model(input), inst)
