"""BigGAN's iteration as its authors' GAN_training_function runs it (train_fns.py of ajbrock/BigGAN-PyTorch): with D's
parameters trainable and G's frozen, --num_D_steps D steps (each over --num_D_accumulations chunks of --batch_size real
images, G's fakes made without gradients but in train mode), the hinge loss; then G's step (--num_G_accumulations),
the modified orthogonal regularisation added to G's gradients, Adam, and the EMA update of G_ema."""

import argparse
from collections.abc import Callable

import torch

from util.distributed import bare, from_rank0, world_size

from ..common.trainer_base import TrainerBase
from .layers import StoredStatsNorm
from .model import BigGANModel
from .networks import hinge_d_loss, hinge_g_loss
from .sampling import ema_decay, ema_update, orthogonal_regularisation, sample_noise

# (batch) -> (z, class ids): the noise and classes of one G forward.
NoiseSampler = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


class BigGANTrainer(TrainerBase):
    """Two Adams (G: --G_lr, D: --D_lr, betas --G_B1/--G_B2, --D_B1/--D_B2, eps --adam_eps) and the authors' iteration.

    `sample_noise` draws the (z, y) of each G forward; a test replaces it to feed saved draws."""

    def __init__(self, opt: argparse.Namespace, model: BigGANModel) -> None:
        super().__init__(model, opt, lr=opt.G_lr)
        self.flags = opt  # the options, never None here (TrainerBase's opt may be)
        self.lr = self.current_lr = opt.G_lr
        G, D = bare(model.netG), bare(model.netD)
        self.optimizer_G = torch.optim.Adam(G.parameters(), lr=opt.G_lr, betas=(opt.G_B1, opt.G_B2), eps=opt.adam_eps, weight_decay=0)
        self.optimizer_D = torch.optim.Adam(D.parameters(), lr=opt.D_lr, betas=(opt.D_B1, opt.D_B2), eps=opt.adam_eps, weight_decay=0)
        self.itr = 0  # iterations done (the authors' state_dict['itr']): the EMA's start counts them
        self.sample_noise: NoiseSampler = self.draw_noise
        self.noise_generator: torch.Generator | None = None
        if world_size() > 1:
            # Cross-replica batch norm (SyncBatchNorm's rule, the authors' --cross_replica) on the buffers they name:
            # G's statistics are those of the whole batch of every process.
            for module in G.modules():
                if isinstance(module, StoredStatsNorm):
                    module.cross_replica = True
            # Every rank is seeded alike (train.py): each draws its noise from its own stream, else all ranks' fakes
            # would be the same. Seeded per iteration from (seed, iteration, rank): resumable from the iteration count.
            self.noise_generator = torch.Generator(self.device)
            self.noise_seed = opt.seed if opt.seed is not None else from_rank0(int(torch.randint(2**31 - 1, ()).item()))

    def draw_noise(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, class ids) of one G forward: the authors' draws from the global RNG in one process; under torchrun from
        this rank's stream."""
        G, opt = bare(self.model.netG), self.flags
        if self.noise_generator is None:
            return sample_noise(batch, G.dim_z, G.n_classes, opt.z_var, self.device)
        z = torch.empty(batch, G.dim_z, device=self.device).normal_(0, opt.z_var, generator=self.noise_generator)
        y = torch.empty(batch, dtype=torch.long, device=self.device).random_(0, G.n_classes, generator=self.noise_generator)
        return z, y

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{name in the training state: optimiser}."""
        return {'optimizer_G': self.optimizer_G, 'optimizer_D': self.optimizer_D}

    def lr_after(self, epoch: int) -> float:
        """The authors' lrs do not change."""
        return self.lr

    def _set_lr(self, lr: float) -> None:
        # G and D have their own lrs (--G_lr, --D_lr), constant: set from the options, not from one shared value.
        opt = self.opt
        if opt is not None:
            for optimizer, value, betas in (
                (self.optimizer_G, opt.G_lr, (opt.G_B1, opt.G_B2)),
                (self.optimizer_D, opt.D_lr, (opt.D_B1, opt.D_B2)),
            ):
                for group in optimizer.param_groups:
                    group.update(lr=value, betas=betas, eps=opt.adam_eps)
        self.current_lr = self.lr

    def training_state(self, epoch: int = 0, epoch_iter: int = 0) -> dict:
        """The shared training state plus the iteration count (the EMA's start depends on it)."""
        return {**super().training_state(epoch, epoch_iter), 'itr': self.itr}

    def restore_training_state(self, state: dict, changed: dict | None = None) -> None:
        """Inverse of training_state(); the optimisers take today's --G_lr/--D_lr, betas and eps."""
        super().restore_training_state(state, changed)
        self.itr = int(state.get('itr', 0))

    def _D_forward(self, z: torch.Tensor, y: torch.Tensor, x: torch.Tensor, y_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D(fake), D(real)) of one D forward on the fakes and the real chunk concatenated (the authors' G_D)."""
        with torch.no_grad():  # G in train mode: its BN statistics and u vectors move, as the authors'
            fake = self.model.netG(z, bare(self.model.netG).embed(y))
        scores = self.model.netD(torch.cat([fake.to(x.dtype), x], 0), torch.cat([y, y_real], 0))
        return scores[: fake.shape[0]], scores[fake.shape[0] :]

    def iterate(self, data: dict) -> tuple[dict, torch.Tensor]:
        """One iteration on a loader batch of batch_size x num_D_steps x num_D_accumulations images: the D steps, then G's."""
        opt, model = self.flags, self.model
        G, D = bare(model.netG), bare(model.netD)
        batch = opt.batch_size
        x = torch.split(data['image'].to(self.device), batch)
        y = torch.split(data['label'].to(self.device).long().view(-1), batch)
        self.itr += 1
        if self.noise_generator is not None:
            self.noise_generator.manual_seed(self.noise_seed + (self.itr * world_size() + opt.rank) * 7919)
        G.requires_grad_(False)  # the authors' toggle_grads: G frozen while D trains, and the other way round
        D.requires_grad_(True)
        chunk = 0
        for _ in range(opt.num_D_steps):
            self.optimizer_D.zero_grad(set_to_none=True)
            for _ in range(opt.num_D_accumulations):
                z, y_fake = self.sample_noise(max(opt.G_batch_size, batch))
                d_fake, d_real = self._D_forward(z[:batch], y_fake[:batch], x[chunk], y[chunk])
                loss_real, loss_fake = hinge_d_loss(d_fake.float(), d_real.float())
                ((loss_real + loss_fake) / opt.num_D_accumulations).backward()
                chunk += 1
            if opt.D_ortho > 0:
                orthogonal_regularisation(D.parameters(), opt.D_ortho)
            self.optimizer_D.step()
        D.requires_grad_(False)
        G.requires_grad_(True)
        self.optimizer_G.zero_grad(set_to_none=True)
        for _ in range(opt.num_G_accumulations):
            z, y_fake = self.sample_noise(max(opt.G_batch_size, batch))
            fake = model.netG(z, G.embed(y_fake))
            with self.no_sync(model.netD):  # D gets no gradients from G's loss
                g_loss = hinge_g_loss(model.netD(fake, y_fake).float()) / opt.num_G_accumulations
            g_loss.backward()
        if opt.G_ortho > 0:
            # Not the shared embedding: "it makes no sense" to orthogonalise it (the authors' blacklist).
            self.regularise_G(opt.G_ortho)
        self.optimizer_G.step()
        D.requires_grad_(True)
        if model.arch.ema:
            ema_update(model.netG_ema, G, ema_decay(self.itr, opt.ema_decay, opt.ema_start))
        return {'G_loss': g_loss, 'D_loss_real': loss_real, 'D_loss_fake': loss_fake}, fake

    def regularise_G(self, strength: float) -> None:
        """G's modified orthogonal regularisation (its shared embedding left out), added to its gradients."""
        G = bare(self.model.netG)
        orthogonal_regularisation(G.parameters(), strength, blacklist=G.shared.parameters())
