"""Discriminators (docs/overview.md, "Networks"): the PatchGAN NLayerDiscriminator and its multi-scale stack."""

from collections.abc import Callable

import torch
import torch.nn as nn

from .generator import downsample_pyramid_pool

# Activations after a norm layer are not in place: InstanceNorm2d returns a view, and an in-place op on
# a view makes autograd copy and zero-fill the whole tensor in its backward (CopySlices, AsStrided).
# The values are the same, and activations have no parameters: state_dict keys are unchanged.


def nlayer_brackets(input_nc: int, ndf: int, n_layers: int, norm_layer: Callable[[int], nn.Module]) -> list:
    """The reference's brackets of layers; each is one feature-matching output."""
    kernel, padding = 4, 2
    brackets = [[nn.Conv2d(input_nc, ndf, kernel_size=kernel, stride=2, padding=padding), nn.LeakyReLU(0.2, True)]]
    nf = ndf
    for _ in range(1, n_layers):
        nf_prev, nf = nf, min(nf * 2, 512)
        brackets.append([nn.Conv2d(nf_prev, nf, kernel_size=kernel, stride=2, padding=padding), norm_layer(nf), nn.LeakyReLU(0.2)])
    nf_prev, nf = nf, min(nf * 2, 512)
    brackets.append([nn.Conv2d(nf_prev, nf, kernel_size=kernel, stride=1, padding=padding), norm_layer(nf), nn.LeakyReLU(0.2)])
    brackets.append([nn.Conv2d(nf, 1, kernel_size=kernel, stride=1, padding=padding)])
    return brackets


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator; returns every bracket's output when getIntermFeat (for feature matching).

    The last output is always a raw score (logit). The reference appends a Sigmoid under --no_lsgan but,
    with intermediate features, never runs it (a bug); here GANLoss applies the sigmoid inside
    BCEWithLogits instead, which is the same loss, numerically stable and safe under autocast. A Sigmoid
    has no parameters, so the state_dict keys are the reference's either way.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        getIntermFeat: bool = False,
    ) -> None:
        super().__init__()
        self.getIntermFeat = getIntermFeat
        self.n_layers = n_layers
        brackets = nlayer_brackets(input_nc, ndf, n_layers, norm_layer)
        if getIntermFeat:
            for n, bracket in enumerate(brackets):
                setattr(self, f'model{n}', nn.Sequential(*bracket))
        else:
            self.model = nn.Sequential(*[layer for bracket in brackets for layer in bracket])

    def forward(self, input: torch.Tensor) -> list:
        """List of outputs: every bracket's with getIntermFeat, else just the final score map."""
        if self.getIntermFeat:
            outputs = [input]
            for n in range(self.n_layers + 2):
                outputs.append(getattr(self, f'model{n}')(outputs[-1]))
            return outputs[1:]
        return [self.model(input)]


class MultiscaleDiscriminator(nn.Module):
    """num_D discriminators; scale num_D-1 sees full resolution, each lower scale a 2x smaller input."""

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        num_D: int = 3,
        getIntermFeat: bool = False,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        """`widths`: the first layer's filters of each scale (index = scale name); None: ndf at every scale."""
        super().__init__()
        self.num_D = num_D
        self.n_layers = n_layers
        self.getIntermFeat = getIntermFeat
        for i in range(num_D):
            net = NLayerDiscriminator(input_nc, ndf if widths is None else widths[i], n_layers, norm_layer, getIntermFeat)
            # Registered flat (scale{i}_layer{j} / layer{i}) to keep the reference's state_dict keys.
            if getIntermFeat:
                for j in range(n_layers + 2):
                    setattr(self, f'scale{i}_layer{j}', getattr(net, f'model{j}'))
            else:
                setattr(self, f'layer{i}', net.model)
        self.downsample = downsample_pyramid_pool()

    def single_forward(self, scale: int, input: torch.Tensor) -> list:
        """Outputs of the discriminator at `scale` on `input`."""
        if self.getIntermFeat:
            outputs = [input]
            for j in range(self.n_layers + 2):
                outputs.append(getattr(self, f'scale{scale}_layer{j}')(outputs[-1]))
            return outputs[1:]
        return [getattr(self, f'layer{scale}')(input)]

    def forward(self, input: torch.Tensor) -> list:
        """One list of outputs per scale, full resolution first."""
        results = []
        downsampled = input
        for i in range(self.num_D):
            results.append(self.single_forward(self.num_D - 1 - i, downsampled))
            if i != self.num_D - 1:
                downsampled = self.downsample(downsampled)
        return results
