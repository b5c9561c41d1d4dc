"""BigGAN's building blocks as its authors' code defines them (ajbrock/BigGAN-PyTorch, layers.py), written anew:
spectral norm with its power-iteration state (buffers u<i>, sv<i>), the SN convolution / linear / embedding, the
SA-GAN attention block, class-conditional batch norm (ccbn) and the plain bn of G's output, and G's and D's
residual blocks. Parameter and buffer names are the authors', so their checkpoints load with strict=True."""

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from util.distributed import all_reduce_sum


def _remove_components(x: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """x minus its projections on each (row) vector of `basis`, one after the other (Gram-Schmidt)."""
    for y in basis:
        x = x - (x @ y.t()) / (y @ y.t()) * y
    return x


class SpectralNorm:
    """Mixin of a layer with a `weight`: the weight divided by its largest singular value, estimated by one power
    iteration per forward from the stored vectors u<i> (num_svs of them, each 1 x out). In train mode the new u and
    the estimate (sv<i>, kept for logging) are written back; in eval mode they are read only."""

    weight: torch.Tensor
    training: bool
    register_buffer: Callable

    def init_spectral_norm(self, num_svs: int, num_itrs: int, num_outputs: int, eps: float) -> None:
        """Register u0.. (drawn from the global RNG, as the authors' construction does) and sv0.. (ones)."""
        self.num_svs, self.num_itrs, self.sn_eps = num_svs, num_itrs, eps
        for i in range(num_svs):
            self.register_buffer(f'u{i}', torch.randn(1, num_outputs))
            self.register_buffer(f'sv{i}', torch.ones(1))

    def normalized_weight(self) -> torch.Tensor:
        """weight / sigma, sigma = v W^T u^T of this forward's power iteration (the gradient flows through W only)."""
        # In float32 whatever --amp says: the estimate and the buffers it updates keep their precision.
        with torch.autocast(self.weight.device.type, enabled=False):
            w_mat = self.weight.float().view(self.weight.shape[0], -1)
            svs: list[torch.Tensor] = []
            for _ in range(self.num_itrs):
                us: list[torch.Tensor] = []
                vs: list[torch.Tensor] = []
                svs = []
                for i in range(self.num_svs):
                    stored = getattr(self, f'u{i}')
                    with torch.no_grad():
                        v = F.normalize(_remove_components(stored @ w_mat, vs), eps=self.sn_eps)
                        u = F.normalize(_remove_components(v @ w_mat.t(), us), eps=self.sn_eps)
                        vs.append(v)
                        us.append(u)
                        if self.training:
                            stored.copy_(u)
                    svs.append((v @ w_mat.t() @ u.t()).squeeze())
            if self.training:
                with torch.no_grad():
                    for i, sv in enumerate(svs):
                        getattr(self, f'sv{i}').copy_(sv.detach())
        return self.weight / svs[0].to(self.weight.dtype)


class SNConv2d(nn.Conv2d, SpectralNorm):
    """A 2-d convolution with a spectrally normalised weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1, bias: bool = True,
                 num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-8) -> None:  # fmt: skip
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.init_spectral_norm(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv2d with weight / sigma."""
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


class SNLinear(nn.Linear, SpectralNorm):
    """A linear layer with a spectrally normalised weight."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-8
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias)
        self.init_spectral_norm(num_svs, num_itrs, out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """linear with weight / sigma."""
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(nn.Embedding, SpectralNorm):
    """An embedding with a spectrally normalised table (u has one entry per class, as the authors')."""

    def __init__(self, num_embeddings: int, embedding_dim: int, num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-8) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self.init_spectral_norm(num_svs, num_itrs, num_embeddings, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of table / sigma."""
        return F.embedding(x, self.normalized_weight())


class Attention(nn.Module):
    """SA-GAN's self-attention: theta, phi (ch/8), g (ch/2) and o 1x1 SN convs without bias, phi and g max-pooled 2x2,
    output gamma * o + x with gamma 0 at first (the block starts as the identity)."""

    def __init__(self, ch: int, conv: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.ch = ch
        self.theta = conv(ch, ch // 8, kernel_size=1, padding=0, bias=False)
        self.phi = conv(ch, ch // 8, kernel_size=1, padding=0, bias=False)
        self.g = conv(ch, ch // 2, kernel_size=1, padding=0, bias=False)
        self.o = conv(ch // 2, ch, kernel_size=1, padding=0, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x plus gamma times the attended features."""
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2)  # B x ch/8 x HW
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # B x ch/8 x HW/4
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # B x ch/2 x HW/4
        attention = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # B x HW x HW/4
        attended = (g @ attention.transpose(1, 2)).view(batch, self.ch // 2, height, width)
        return self.gamma * self.o(attended) + x


class _AllReduceSum(torch.autograd.Function):
    """The sum over torchrun's processes; its gradient is the sum of every process's gradient (each loss depends on it)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Every process's `values` summed."""
        return all_reduce_sum(values.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Every process's gradient summed."""
        return all_reduce_sum(grad.clone())


def _all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of `values` over the processes of torchrun's group (autograd flows through), itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    return _AllReduceSum.apply(values) / dist.get_world_size()


class StoredStatsNorm(nn.Module):
    """Batch normalisation on buffers named as the authors' (stored_mean, stored_var: momentum 0.1, unbiased variance).

    One process: F.batch_norm, as the authors. `cross_replica` (set by the trainer under torchrun on GPUs): the batch
    statistics are those of every process's batch together, SyncBatchNorm's rule, computed here so that the module
    and its state_dict keys stay the authors' (torch's SyncBatchNorm conversion only replaces _BatchNorm modules)."""

    stored_mean: torch.Tensor
    stored_var: torch.Tensor

    def register_stats(self, channels: int, eps: float) -> None:
        """The buffers stored_mean (0) and stored_var (1), after the module's own parameters and submodules."""
        self.eps = eps
        self.cross_replica = False
        self.register_buffer('stored_mean', torch.zeros(channels))
        self.register_buffer('stored_var', torch.ones(channels))

    def normalize(self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x normalised per channel (batch statistics in train mode, the stored ones in eval mode)."""
        if not (self.cross_replica and self.training):
            return F.batch_norm(x, self.stored_mean, self.stored_var, weight, bias, self.training, 0.1, self.eps)
        count = x.numel() // x.shape[1]
        moments = _all_reduce_mean(torch.stack([x.float().mean((0, 2, 3)), x.float().pow(2).mean((0, 2, 3))]))
        mean, var = moments[0], (moments[1] - moments[0] ** 2).clamp_min(0)
        with torch.no_grad():
            total = count * (dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1)
            self.stored_mean.mul_(0.9).add_(0.1 * mean)
            self.stored_var.mul_(0.9).add_(0.1 * var * total / max(total - 1, 1))
        out = (x - mean.view(1, -1, 1, 1).to(x.dtype)) * torch.rsqrt(var + self.eps).view(1, -1, 1, 1).to(x.dtype)
        if weight is not None and bias is not None:
            out = out * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
        return out


class CCBN(StoredStatsNorm):
    """Class-conditional batch norm: normalise without affine, then * (1 + gain(y)) + bias(y), gain and bias linear
    maps (SN, no bias) of the conditioning vector, or embeddings of the class ids without a shared embedding."""

    def __init__(self, channels: int, input_size: int, which_linear: Callable[[int, int], nn.Module], eps: float = 1e-5) -> None:
        super().__init__()
        self.gain: nn.Module = which_linear(input_size, channels)
        self.bias: nn.Module = which_linear(input_size, channels)
        self.register_stats(channels, eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The normalised x, scaled and shifted per sample."""
        gain = (1 + self.gain(y)).view(y.shape[0], -1, 1, 1)
        bias = self.bias(y).view(y.shape[0], -1, 1, 1)
        return self.normalize(x) * gain + bias


class BN(StoredStatsNorm):
    """The plain batch norm before G's output convolution: learnt per-channel gain (1) and bias (0)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_stats(channels, eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised x * gain + bias."""
        return self.normalize(x, self.gain, self.bias)


class GBlock(nn.Module):
    """G's residual block: ccbn, ReLU, nearest x2 upsampling (of h and x), 3x3 conv, ccbn, ReLU, 3x3 conv, plus the
    shortcut (a 1x1 conv of the upsampled x when the channels change or it upsamples)."""

    def __init__(self, in_channels: int, out_channels: int, conv: Callable[..., nn.Module], bn: Callable[[int], nn.Module],
                 activation: Callable[[torch.Tensor], torch.Tensor], upsample: bool) -> None:  # fmt: skip
        super().__init__()
        # Construction order = the authors' (conv1, conv2, conv_sc, bn1, bn2): the global RNG's draws, and the keys.
        self.conv1 = conv(in_channels, out_channels)
        self.conv2 = conv(out_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or upsample
        if self.learnable_sc:
            self.conv_sc = conv(in_channels, out_channels, kernel_size=1, padding=0)
        self.bn1 = bn(in_channels)
        self.bn2 = bn(out_channels)
        self.activation = activation
        self.upsample = upsample

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The block's output at twice the size (when it upsamples)."""
        h = self.activation(self.bn1(x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2)
            x = F.interpolate(x, scale_factor=2)
        h = self.conv2(self.activation(self.bn2(self.conv1(h), y)))
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x


class DBlock(nn.Module):
    """D's residual block: [ReLU], 3x3 conv, ReLU, 3x3 conv, [2x2 average pool], plus the shortcut (1x1 conv when the
    channels change or it downsamples: pool then conv in the first block, conv then pool in the preactivated ones)."""

    def __init__(self, in_channels: int, out_channels: int, conv: Callable[..., nn.Module],
                 activation: Callable[[torch.Tensor], torch.Tensor], preactivation: bool, downsample: bool,
                 wide: bool = True) -> None:  # fmt: skip
        super().__init__()
        # Wide (BigGAN, SA-GAN): the hidden width is the output's; thin (SN-GAN, --D_thin): the input's.
        hidden = out_channels if wide else in_channels
        self.conv1 = conv(in_channels, hidden)
        self.conv2 = conv(hidden, out_channels)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = conv(in_channels, out_channels, kernel_size=1, padding=0)
        self.activation = activation
        self.preactivation = preactivation
        self.downsample = downsample

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The residual path (the authors' order of conv and pooling)."""
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            if self.downsample:
                x = F.avg_pool2d(x, 2)
        else:
            if self.downsample:
                x = F.avg_pool2d(x, 2)
            if self.learnable_sc:
                x = self.conv_sc(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (at half the size when it downsamples)."""
        h = self.activation(x) if self.preactivation else x
        h = self.conv2(self.activation(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)
