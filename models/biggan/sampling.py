"""What BigGAN does around its networks: the noise and class draws (the authors' z ~ N(0, z_var), where z_var acts as
the standard deviation, and the TF-hub truncated normal of the truncation trick), the modified orthogonal
regularisation added to gradients, and the exponential moving average of G."""

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

# The TF-hub module's truncated normal: N(0, 1) restricted to [-2, 2], then scaled by the truncation.
TRUNCATION_BOUND = 2.0


def sample_noise(batch: int, dim_z: int, n_classes: int, z_var: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, y) as the authors' z_.sample_() then y_.sample_(): normal_(0, z_var), then uniform class ids, in that order
    from the global RNG (so a seed gives their draws)."""
    z = torch.empty(batch, dim_z, device=device).normal_(0, z_var)
    y = torch.empty(batch, dtype=torch.long, device=device).random_(0, n_classes)
    return z, y


def truncated_noise(shape: tuple[int, ...], truncation: float, draw: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """truncation x N(0, 1) draws with every value whose magnitude exceeds TRUNCATION_BOUND drawn again (the same
    distribution as the TF-hub module's truncnorm(-2, 2) x truncation). `draw(n)`: n standard normal values (default
    torch.randn); rejected values are replaced, in order, by later draws until none is left."""
    draw = draw or (lambda n: torch.randn(n))
    values = draw(int(torch.Size(shape).numel())).clone()
    rejected = values.abs() > TRUNCATION_BOUND
    while bool(rejected.any()):
        values[rejected] = draw(int(rejected.sum()))
        rejected = values.abs() > TRUNCATION_BOUND
    return (values * truncation).view(shape)


def orthogonal_regularisation(params: Iterable[nn.Parameter], strength: float, blacklist: Iterable[nn.Parameter] = ()) -> None:
    """The authors' modified ortho reg, added to the gradients: for each weight W (viewed out x rest, at least 2-d, not in
    `blacklist`) grad += strength x 2 ((W W^T) * (1 - I)) W: only the off-diagonal correlations are penalised."""
    skip = {id(param) for param in blacklist}
    with torch.no_grad():
        for param in params:
            if param.ndim < 2 or id(param) in skip or param.grad is None:
                continue
            with torch.autocast(param.device.type, enabled=False):  # float32 whatever --amp says
                w = param.view(param.shape[0], -1)
                off_diagonal = (w @ w.t()) * (1.0 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))
                param.grad += strength * 2 * (off_diagonal @ w).view(param.shape)


def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- target * decay + source * (1 - decay) for every entry of the state_dict (weights and buffers: u0, sv0,
    stored_mean, stored_var, as the authors' ema walks state_dict())."""
    sources = source.state_dict()
    with torch.no_grad():
        for key, value in target.state_dict().items():
            value.copy_(value * decay + sources[key] * (1 - decay))


def ema_decay(itr: int, decay: float, start: int) -> float:
    """The decay of iteration `itr` (counted from 1): 0 before --ema_start (G_ema copies G), else --ema_decay."""
    return 0.0 if itr and itr < start else decay
