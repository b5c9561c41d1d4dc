"""pix2pix's networks (Isola et al. 2017, as junyanz's PyTorch code builds them): the U-Net generator and the 70x70 PatchGAN.

Module order follows the authors' code, so state_dict keys are theirs: G `model.model.1.model.N...` (one
`model` Sequential per U-Net level, the inner level at index 1), D `model.N`.
"""

import torch
import torch.nn as nn

from ..common.normalization import get_norm_layer

# The U-Net's levels beyond these five are the ngf*8 ones that carry dropout.
UNET_FIXED_LEVELS = 5


class UnetLevel(nn.Module):
    """One U-Net level: down (stride-2 4x4 conv), the inner levels, up (stride-2 4x4 transposed conv); inner levels return cat(skip, up)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        inner: nn.Module | None,
        norm: str,
        input_nc: int | None = None,
        outermost: bool = False,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        # Convolutions followed by an affine BatchNorm carry no bias (the authors' use_bias rule).
        biased = norm == 'instance'
        down_in = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(down_in, inner_nc, kernel_size=4, stride=2, padding=1, bias=biased)
        up_in = inner_nc if inner is None else inner_nc * 2
        layers: list[nn.Module]
        if outermost:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, inner, nn.ReLU(), up_conv, nn.Tanh()]  # type: ignore[list-item]  # the outermost level always has an inner one
        else:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=biased)
            # The authors' LeakyReLU here is in place, so their skip carries LeakyReLU(x); the parent level's ReLU
            # makes that the same as carrying x (values and gradients), which this out-of-place one does.
            layers = [nn.LeakyReLU(0.2), down_conv]
            if inner is not None:
                layers += [norm_layer(inner_nc), inner]
            layers += [nn.ReLU(), up_conv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The outermost level's image, or cat(input, this level's output) on channels (the skip connection)."""
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` stride-2 levels (unet_256: 8, unet_128: 7): 2^num_downs pixels become 1 at the bottleneck."""

    def __init__(
        self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = 'batch', use_dropout: bool = False
    ) -> None:
        super().__init__()
        level = UnetLevel(ngf * 8, ngf * 8, None, norm)
        for _ in range(num_downs - UNET_FIXED_LEVELS):
            level = UnetLevel(ngf * 8, ngf * 8, level, norm, use_dropout=use_dropout)
        for outer_mult, inner_mult in ((4, 8), (2, 4), (1, 2)):
            level = UnetLevel(ngf * outer_mult, ngf * inner_mult, level, norm)
        self.model = UnetLevel(output_nc, ngf, level, norm, input_nc=input_nc, outermost=True)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] (tanh) of the input's size."""
        return self.model(input)


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs with padding 1, n_layers stride-2 ones then two stride-1 ones; n_layers 3 sees 70x70 patches.

    Returns one logit map (the sigmoid lives in the BCE-with-logits loss, as the authors' 'vanilla' GANLoss).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = 'batch') -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        biased = norm == 'instance'
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        nf = ndf
        for n in range(1, n_layers + 1):
            nf_prev, nf = nf, ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(nf_prev, nf, kernel_size=4, stride=stride, padding=1, bias=biased), norm_layer(nf), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(nf, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Logit map, one score per overlapping patch."""
        return self.model(input)
