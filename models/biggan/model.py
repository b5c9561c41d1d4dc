"""BigGAN's model: G, D (training) and G_ema (with --ema) built from the Architecture, and sampling (class ids and
noise in, images out)."""

import argparse

import torch
import torch.nn as nn

from util.distributed import bare

from .networks import Discriminator, Generator
from .options import Architecture
from .sampling import sample_noise, truncated_noise


class ConditionalSampler(nn.Module):
    """G as one module of (z, class ids): the shared embedding, then G (what synthesizer() returns)."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1]."""
        return self.generator(z, self.generator.embed(classes))


class BigGANModel(nn.Module):
    """netG (the networks the authors call G), netD (training only) and netG_ema (with --ema); at test time netG is
    G_ema with --use_ema. BigGAN has no label map: the 'label' of a batch is its class ids."""

    loss_names = ('G_loss', 'D_loss_real', 'D_loss_fake')

    def __init__(self, arch: Architecture, is_train: bool, use_ema: bool = False, z_var: float = 1.0, truncation: float = 0.0,
                 eval_mode: bool = False, standing_stats: tuple[int, int] | None = None) -> None:  # fmt: skip
        super().__init__()
        # (forwards, batch) of --accumulate_stats, done by the first generate(): the weights are loaded after __init__.
        self.pending_standing_stats = None if is_train else standing_stats
        self.arch = arch
        self.is_train = is_train
        self.use_ema = use_ema and not is_train
        self.z_var = z_var
        self.truncation = truncation
        # The authors' construction order (G, D, G_ema): the global RNG's draws at a seed are theirs.
        self.netG = Generator(**arch.generator_kwargs())
        if is_train:
            self.netD = Discriminator(**arch.discriminator_kwargs())
            if arch.ema:
                # Its own draws count (default init, u0), then it starts as a copy of G, as the authors' ema does.
                self.netG_ema = Generator(**arch.generator_kwargs(), skip_init=True)
                self.netG_ema.load_state_dict(self.netG.state_dict())
                self.netG_ema.requires_grad_(False)
        elif eval_mode:
            # --G_eval_mode: the stored BN statistics; else G samples with batch statistics, as the authors' default
            # (its u0 and stored statistics then move in memory, never saved at test time).
            self.netG.eval()

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'BigGANModel':
        """The model the options describe."""
        standing = (opt.num_standing_accumulations, opt.batch_size) if getattr(opt, 'accumulate_stats', False) else None
        return cls(Architecture.from_options(opt), opt.isTrain, opt.use_ema, opt.z_var, opt.truncation, opt.G_eval_mode, standing)

    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return next(bare(self.netG).parameters()).device

    def networks_by_name(self) -> dict[str, nn.Module]:
        """{checkpoint name: network}: G, D and G_ema when training; the one G test time samples with."""
        if not self.is_train:
            return {'G_ema' if self.use_ema else 'G': bare(self.netG)}
        nets = {'G': bare(self.netG), 'D': bare(self.netD)}
        if self.arch.ema:
            nets['G_ema'] = self.netG_ema
        return nets

    def noise(self, batch: int, truncation: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """batch x dim_z noise: N(0, z_var), or the truncated normal scaled by `truncation` (default --truncation) when > 0."""
        truncation = self.truncation if truncation is None else truncation
        dim_z = bare(self.netG).dim_z
        if truncation > 0:
            draws = truncated_noise((batch, dim_z), truncation, lambda n: torch.randn(n, generator=generator))
            return draws.to(self.device)
        return (torch.randn(batch, dim_z, generator=generator) * self.z_var).to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Images of noise z for G's conditioning vectors (embed(class ids), or a mix of two classes' embeddings)."""
        if self.pending_standing_stats is not None:
            forwards, batch = self.pending_standing_stats
            self.pending_standing_stats = None
            self.accumulate_standing_stats(forwards, batch)
        return bare(self.netG)(z.to(self.device), condition.to(self.device))

    @torch.no_grad()
    def accumulate_standing_stats(self, forwards: int, batch: int) -> None:
        """The authors' standing statistics: `forwards` training-mode passes of G over N(0, z_var) noise and uniform
        classes move its stored BN statistics (momentum 0.1, no reset: their default bn) to those of the G sampled
        from, G_ema's own rather than G's; G then stays in eval mode. Its u vectors move too, as in their code."""
        generator = bare(self.netG)
        generator.train()
        for _ in range(forwards):
            z, classes = sample_noise(batch, generator.dim_z, self.arch.n_classes, self.z_var, self.device)
            generator(z, generator.embed(classes))
        generator.eval()

    @torch.no_grad()
    def embed(self, classes: torch.Tensor) -> torch.Tensor:
        """G's conditioning vectors of class ids."""
        return bare(self.netG).embed(classes.to(self.device).long())

    @torch.no_grad()
    def inference(self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None) -> torch.Tensor:
        """Images of the class ids `label` (B), from noise `inst` (B x dim_z) or drawn as --z_var / --truncation say."""
        z = inst if inst is not None else self.noise(label.shape[0])
        return self.generate(z, self.embed(label.view(-1)))

    def synthesizer(self) -> nn.Module:
        """G with its class embedding, a module of (z, class ids)."""
        return ConditionalSampler(bare(self.netG))
