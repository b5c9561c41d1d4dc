"""BigGAN's generator and discriminator (Brock et al. 2018) as its authors' code builds them (BigGAN.py of
ajbrock/BigGAN-PyTorch), written anew: the architecture tables of resolutions 32-512, hierarchical z, the shared
class embedding, attention blocks, the projection discriminator and the ortho / N02 / xavier initialisations.
Module order, and so the state_dict keys and the global RNG's draws at construction, are the authors'."""

import dataclasses
import functools
import typing

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

from util.errors import ModelError

from .layers import BN, CCBN, Attention, DBlock, GBlock, SNConv2d, SNEmbedding, SNLinear

# Width multipliers of each block's input and output (times G_ch / D_ch), per resolution: the authors' tables.
G_WIDTHS = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
# D: output widths; a block's input is the previous output (3 for the first), the last block keeps the size.
D_WIDTHS = {
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
    512: [1, 1, 2, 4, 8, 8, 16, 16],
}
RESOLUTIONS = tuple(sorted(G_WIDTHS))
BOTTOM_WIDTH = 4  # G's first feature map is 4 x 4


@dataclasses.dataclass(frozen=True)
class StageTable:
    """One network's stages: input and output channels, up/downsampling and the resolution attention keys on."""

    in_channels: list[int]
    out_channels: list[int]
    resample: list[bool]
    resolution: list[int]


def g_table(ch: int, resolution: int) -> StageTable:
    """G's stages at `resolution`: every block upsamples x2 from 4 x 4; block i attends at 8 * 2^i."""
    if resolution not in G_WIDTHS:
        raise ModelError(f"BigGAN resolution {resolution}: the architecture tables have {', '.join(map(str, RESOLUTIONS))}")
    ins, outs = G_WIDTHS[resolution]
    return StageTable([ch * k for k in ins], [ch * k for k in outs], [True] * len(outs), [8 * 2**i for i in range(len(outs))])


def d_table(ch: int, resolution: int) -> StageTable:
    """D's stages at `resolution`: the authors' table, quirks included (at 32 all four blocks are keyed 16 for attention)."""
    if resolution not in D_WIDTHS:
        raise ModelError(f"BigGAN resolution {resolution}: the architecture tables have {', '.join(map(str, RESOLUTIONS))}")
    outs = [ch * k for k in D_WIDTHS[resolution]]
    if resolution == 32:
        return StageTable([3] + outs[:-1], outs, [True, True, False, False], [16] * 4)
    n = len(outs)
    downsample = [True] * (n - 1) + [False]
    return StageTable([3] + outs[:-1], outs, downsample, [resolution // 2 ** (i + 1) for i in range(n - 1)] + [4])


def attention_resolutions(spec: str) -> set[int]:
    """'16_32' -> {16, 32}: the resolutions that get an attention block ('0': none)."""
    try:
        return {int(item) for item in spec.split('_')}
    except ValueError:
        raise ModelError(f"attention {spec!r}: resolutions joined by '_', e.g. 64 or 32_64 (0 for none)") from None


def init_weights(net: nn.Module, style: str) -> None:
    """Every Conv2d / Linear / Embedding weight, in module order: orthogonal, N(0, 0.02) or Glorot uniform; biases keep
    PyTorch's default."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            if style == 'ortho':
                init.orthogonal_(module.weight)
            elif style == 'N02':
                init.normal_(module.weight, 0, 0.02)
            elif style in ('glorot', 'xavier'):
                init.xavier_uniform_(module.weight)
            else:
                raise ModelError(f"init {style!r}: use ortho, N02, glorot or xavier")


class Generator(nn.Module):
    """BigGAN's G: z (split into chunks with hier) and a class embedding in, an image in [-1, 1] out."""

    def __init__(self, G_ch: int = 64, dim_z: int = 128, resolution: int = 128, G_attn: str = '64', n_classes: int = 1000,
                 num_G_SVs: int = 1, num_G_SV_itrs: int = 1, G_shared: bool = True, shared_dim: int = 0, hier: bool = False,
                 BN_eps: float = 1e-5, SN_eps: float = 1e-8, G_init: str = 'ortho', skip_init: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.table = g_table(G_ch, resolution)
        self.n_classes = n_classes
        self.G_shared = G_shared
        self.shared_dim = shared_dim if shared_dim > 0 else dim_z
        self.hier = hier
        n_blocks = len(self.table.out_channels)
        # Hierarchical z: one chunk for the linear layer and one per block (dim_z rounded down to a multiple).
        self.num_slots = n_blocks + 1 if hier else 1
        self.z_chunk_size = dim_z // self.num_slots if hier else 0
        self.dim_z = self.z_chunk_size * self.num_slots if hier else dim_z
        conv = functools.partial(SNConv2d, kernel_size=3, padding=1, num_svs=num_G_SVs, num_itrs=num_G_SV_itrs, eps=SN_eps)
        linear = functools.partial(SNLinear, num_svs=num_G_SVs, num_itrs=num_G_SV_itrs, eps=SN_eps)
        # ccbn's gain and bias: SN linear maps of [shared(y), z chunk], or embeddings of the ids without G_shared.
        bn_linear = functools.partial(linear, bias=False) if G_shared else nn.Embedding
        bn_input = self.shared_dim + self.z_chunk_size if G_shared else n_classes
        which_bn = functools.partial(CCBN, input_size=bn_input, which_linear=bn_linear, eps=BN_eps)
        activation = nn.ReLU(inplace=False)
        # Not spectrally normalised, as the authors (SN on G's embedding "seems to randomly cripple G").
        self.shared: nn.Module = nn.Embedding(n_classes, self.shared_dim) if G_shared else nn.Identity()
        self.linear = linear(self.dim_z // self.num_slots, self.table.in_channels[0] * BOTTOM_WIDTH**2)
        attend = attention_resolutions(G_attn)
        blocks = []
        for i in range(n_blocks):
            stage: list[nn.Module] = [
                GBlock(self.table.in_channels[i], self.table.out_channels[i], conv, which_bn, activation, self.table.resample[i])
            ]
            if self.table.resolution[i] in attend:
                stage.append(Attention(self.table.out_channels[i], conv))
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(BN(self.table.out_channels[-1], eps=BN_eps), activation, conv(self.table.out_channels[-1], 3))
        if not skip_init:
            init_weights(self, G_init)

    def embed(self, classes: torch.Tensor) -> torch.Tensor:
        """What forward() takes as y: the shared embedding of the class ids (the ids themselves without G_shared)."""
        return self.shared(classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images for noise z (B x dim_z) and conditioning y = embed(class ids) (mixing embeddings interpolates classes)."""
        if self.hier:
            chunks = torch.split(z, self.z_chunk_size, 1)
            z = chunks[0]
            ys = [torch.cat([y, chunk], 1) for chunk in chunks[1:]]
        else:
            ys = [y] * len(self.blocks)
        h = self.linear(z).view(z.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for stage, y_stage in zip(self.blocks, ys):
            for block in typing.cast(nn.ModuleList, stage):
                h = block(h, y_stage)
        return torch.tanh(self.output_layer(h))


class Discriminator(nn.Module):
    """BigGAN's D: residual blocks, ReLU, sum pooling, a linear output plus the projection of the class embedding."""

    def __init__(self, D_ch: int = 64, D_wide: bool = True, resolution: int = 128, D_attn: str = '64', n_classes: int = 1000,
                 num_D_SVs: int = 1, num_D_SV_itrs: int = 1, SN_eps: float = 1e-8, D_init: str = 'ortho',
                 output_dim: int = 1, skip_init: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.table = d_table(D_ch, resolution)
        conv = functools.partial(SNConv2d, kernel_size=3, padding=1, num_svs=num_D_SVs, num_itrs=num_D_SV_itrs, eps=SN_eps)
        self.activation = nn.ReLU(inplace=False)
        attend = attention_resolutions(D_attn)
        blocks = []
        for i, (ins, outs) in enumerate(zip(self.table.in_channels, self.table.out_channels)):
            stage: list[nn.Module] = [DBlock(ins, outs, conv, self.activation, i > 0, self.table.resample[i], D_wide)]
            if self.table.resolution[i] in attend:
                stage.append(Attention(outs, conv))
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.linear = SNLinear(self.table.out_channels[-1], output_dim, num_svs=num_D_SVs, num_itrs=num_D_SV_itrs, eps=SN_eps)
        self.embed = SNEmbedding(n_classes, self.table.out_channels[-1], num_svs=num_D_SVs, num_itrs=num_D_SV_itrs, eps=SN_eps)
        if not skip_init:
            init_weights(self, D_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """B x output_dim scores of images x for class ids y."""
        h = x
        for stage in self.blocks:
            for block in typing.cast(nn.ModuleList, stage):
                h = block(h)
        h = torch.sum(self.activation(h), [2, 3])
        return self.linear(h) + torch.sum(self.embed(y) * h, 1, keepdim=True)


def hinge_d_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean relu(1 - D(real)), mean relu(1 + D(fake))): the hinge loss of D, its two terms."""
    return torch.mean(F.relu(1.0 - d_real)), torch.mean(F.relu(1.0 + d_fake))


def hinge_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """-mean D(G(z)): G's side of the hinge loss."""
    return -torch.mean(d_fake)
