"""CRN's cascaded refinement network (recursive_generator of the official demo_*p.py), in PyTorch.

State-dict keys follow the TensorFlow scopes: `g_<sp>.conv1.weight` is `g_<sp>_conv1/weights`, `g_<sp>.norm1.weight`
and `.bias` its `LayerNorm/gamma` and `beta`, `g_<sp>.conv100.*` the last module's 1x1 convolution (models/crn/convert.py).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import ModelError

from .architecture import Architecture, module_heights

# tf.contrib.layers.layer_norm's variance epsilon (float32).
LAYER_NORM_EPS = 1e-12


class RefinementModule(nn.Module):
    """Two x (3x3 conv without bias, layer norm over C,H,W with per-channel scale/offset, LeakyReLU 0.2); the last
    module adds the 1x1 convolution (with bias) to the images."""

    def __init__(self, input_nc: int, width: int, output_nc: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_nc, width, 3, padding=1, bias=False)
        # slim.layer_norm: statistics over all of a sample's features, gamma/beta per channel = GroupNorm with one group.
        self.norm1 = nn.GroupNorm(1, width, eps=LAYER_NORM_EPS)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(1, width, eps=LAYER_NORM_EPS)
        self.conv100 = nn.Conv2d(width, output_nc, 1) if output_nc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's features (the images' channels for the last module)."""
        x = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        x = F.leaky_relu(self.norm2(self.conv2(x)), 0.2)
        return self.conv100(x) if self.conv100 is not None else x


class CRNGenerator(nn.Module):
    """Refinement modules from 4x8 up: each sees the previous output upsampled x2 (bilinear, align_corners) and the label
    map area-downsampled to its size. Returns B x n_images x output_nc x H x W in the [-1, 1] scale (not clipped)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.n_images = arch.n_images
        self.output_nc = arch.output_nc
        self.heights = module_heights(len(arch.widths))
        previous = 0
        for index, (height, width) in enumerate(zip(self.heights, arch.widths)):
            last = index == len(arch.widths) - 1
            self.add_module(f'g_{height}', RefinementModule(previous + arch.input_nc, width, arch.output_nc * arch.n_images if last else 0))
            previous = width

    def refinement_modules(self) -> list[RefinementModule]:
        """The modules from 4x8 up."""
        return [getattr(self, f'g_{height}') for height in self.heights]

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        """B x input_nc x H x W encoded labels -> B x n_images x output_nc x H x W."""
        factor = 2 ** (len(self.heights) - 1)
        height, width = label.shape[-2:]
        if height % factor or width % factor:
            raise ModelError(
                f"CRN with {len(self.heights)} refinement modules needs a size divisible by {factor}, got {width}x{height}; "
                f"resize the data (--loadSize/--fineSize) or change --crn_sp"
            )
        # resize_area by exactly 2 = 2x2 means; the official halves the previous level each time.
        labels = [label]
        for _ in self.heights[1:]:
            labels.append(F.avg_pool2d(labels[-1], 2))
        x = None
        for module, level in zip(self.refinement_modules(), reversed(labels)):
            if x is None:
                x = level
            else:
                x = torch.cat((F.interpolate(x, size=level.shape[-2:], mode='bilinear', align_corners=True), level), dim=1)
            x = module(x)
        assert x is not None  # at least one module
        # Image k takes channels k, K + k, 2K + k (the official split of the transposed output).
        return x.view(x.shape[0], self.output_nc, self.n_images, height, width).transpose(1, 2)


def init_weights(module: nn.Module) -> None:
    """slim.conv2d's initialisation: Glorot-uniform weights, zero biases (layer norms start at gamma 1, beta 0)."""
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.GroupNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_networks(arch: Architecture) -> dict[str, nn.Module]:
    """{'G': the generator}, initialised as the official code's TensorFlow variables are."""
    net = CRNGenerator(arch)
    net.apply(init_weights)
    return {'G': net}
