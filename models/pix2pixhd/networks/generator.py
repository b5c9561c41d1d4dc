"""Generators (docs/overview.md, "Networks"): ResnetBlock, GlobalGenerator and the coarse-to-fine LocalEnhancer."""

from collections.abc import Callable

import torch
import torch.nn as nn

# Activations after a norm layer are not in place: InstanceNorm2d returns a view, and an in-place op on
# a view makes autograd copy and zero-fill the whole tensor in its backward (CopySlices, AsStrided).
# The values are the same, and activations have no parameters: state_dict keys are unchanged.


def downsample_pyramid_pool() -> nn.AvgPool2d:
    """The 2x average pool the reference uses for input pyramids (generator and discriminator)."""
    return nn.AvgPool2d(3, stride=2, padding=(1, 1), count_include_pad=False)


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, ReLU (+ dropout), pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm_layer: Callable[[int], nn.Module], use_dropout: bool = False) -> None:
        super().__init__()
        activation: nn.Module = nn.ReLU()
        if use_dropout:
            # In the ReLU's slot, not a slot of its own: the second conv stays `conv_block.5`, so the keys are
            # the reference's (which parsed --use_dropout but never applied it) and its checkpoints load strictly.
            activation = nn.Sequential(activation, nn.Dropout(0.5))
        layers = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0),
            norm_layer(dim),
            activation,
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0),
            norm_layer(dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual connection around the conv block."""
        return x + self.conv_block(x)


def global_generator_layers(
    input_nc: int, output_nc: int, ngf: int, n_downsampling: int, n_blocks: int, norm_layer: Callable[[int], nn.Module], use_dropout: bool
) -> list:
    """The GlobalGenerator's module list, in the reference order (so `model.K` keys match)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0), norm_layer(ngf), nn.ReLU()]
    for i in range(n_downsampling):
        mult = 2**i
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1), norm_layer(ngf * mult * 2), nn.ReLU()]
    mult = 2**n_downsampling
    layers += [ResnetBlock(ngf * mult, norm_layer, use_dropout) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        mult = 2 ** (n_downsampling - i)
        layers += [
            nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
            norm_layer(ngf * mult // 2),
            nn.ReLU(),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    """G1: conv front-end, n_downsampling stride-2 convs, n_blocks residual blocks, transposed convs back up."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_downsampling: int = 4,
        n_blocks: int = 9,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.model = nn.Sequential(*global_generator_layers(input_nc, output_nc, ngf, n_downsampling, n_blocks, norm_layer, use_dropout))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] from the encoded label map."""
        return self.model(input)


class LocalEnhancer(nn.Module):
    """G2: `n_local_enhancers` enhancers around a global generator that sees the input downsampled."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsample_global: int = 3,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        ngf_global = ngf * (2**n_local_enhancers)
        # The global part drops its last pad/conv/tanh: the outermost enhancer makes the image.
        self.model = nn.Sequential(
            *global_generator_layers(input_nc, output_nc, ngf_global, n_downsample_global, n_blocks_global, norm_layer, use_dropout)[:-3]
        )
        for n in range(1, n_local_enhancers + 1):
            width = ngf * (2 ** (n_local_enhancers - n))
            front = [
                nn.ReflectionPad2d(3),
                nn.Conv2d(input_nc, width, kernel_size=7, padding=0),
                norm_layer(width),
                nn.ReLU(),
                nn.Conv2d(width, width * 2, kernel_size=3, stride=2, padding=1),
                norm_layer(width * 2),
                nn.ReLU(),
            ]
            back: list[nn.Module] = [ResnetBlock(width * 2, norm_layer, use_dropout) for _ in range(n_blocks_local)]
            back += [
                nn.ConvTranspose2d(width * 2, width, kernel_size=3, stride=2, padding=1, output_padding=1),
                norm_layer(width),
                nn.ReLU(),
            ]
            if n == n_local_enhancers:
                back += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
            setattr(self, f'model{n}_1', nn.Sequential(*front))
            setattr(self, f'model{n}_2', nn.Sequential(*back))
        self.downsample = downsample_pyramid_pool()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Coarsest level through the global part, then each enhancer adds its level's detail."""
        pyramid = [input]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        output = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            front = getattr(self, f'model{n}_1')
            back = getattr(self, f'model{n}_2')
            output = back(front(pyramid[self.n_local_enhancers - n]) + output)
        return output
