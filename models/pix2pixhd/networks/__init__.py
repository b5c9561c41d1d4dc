"""Builders for the pix2pixHD networks (split by role as in NVIDIA's SPADE code)."""

import torch.nn as nn

from ...common.normalization import centre_tap_init, get_norm_layer, weights_init
from .discriminator import MultiscaleDiscriminator, NLayerDiscriminator
from .encoder import Encoder, instance_average_pool, instance_segments, segment_mean
from .generator import GlobalGenerator, LocalEnhancer, ResnetBlock

__all__ = [
    'Encoder',
    'GlobalGenerator',
    'LocalEnhancer',
    'MultiscaleDiscriminator',
    'NLayerDiscriminator',
    'ResnetBlock',
    'count_parameters',
    'define_D',
    'define_E',
    'define_G',
    'instance_average_pool',
    'instance_segments',
    'segment_mean',
]


def define_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str,
    n_downsample_global: int = 3,
    n_blocks_global: int = 9,
    n_local_enhancers: int = 1,
    n_blocks_local: int = 3,
    norm: str = 'instance',
    use_dropout: bool = False,
    init: str = 'normal',
) -> nn.Module:
    """GlobalGenerator (`global`) or LocalEnhancer (`local`), initialised as the reference (or centre_tap_init: 'delta')."""
    norm_layer = get_norm_layer(norm)
    net: nn.Module
    if netG == 'global':
        net = GlobalGenerator(input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, norm_layer, use_dropout)
    elif netG == 'local':
        net = LocalEnhancer(
            input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, n_local_enhancers, n_blocks_local, norm_layer, use_dropout
        )
    else:
        raise ValueError(f"generator [{netG}] is not implemented; use --netG global or --netG local")
    net.apply(weights_init)
    if init == 'delta':
        net.apply(centre_tap_init)
    elif init != 'normal':
        raise ValueError(f"generator initialisation [{init}] is not implemented; use --netG_init normal or --netG_init delta")
    return net


def define_D(input_nc: int, ndf: int, n_layers_D: int, norm: str = 'instance', num_D: int = 1, getIntermFeat: bool = False) -> nn.Module:
    """MultiscaleDiscriminator, initialised as the reference."""
    net = MultiscaleDiscriminator(input_nc, ndf, n_layers_D, get_norm_layer(norm), num_D, getIntermFeat)
    net.apply(weights_init)
    return net


def define_E(input_nc: int, feat_num: int, nef: int, n_downsample_E: int, norm: str = 'instance') -> nn.Module:
    """Encoder for instance-wise features, initialised as the reference."""
    net = Encoder(input_nc, feat_num, nef, n_downsample_E, get_norm_layer(norm))
    net.apply(weights_init)
    return net


def count_parameters(net: nn.Module) -> int:
    """Total number of parameters (trainable or not)."""
    return sum(parameter.numel() for parameter in net.parameters())
