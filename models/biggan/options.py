"""BigGAN's flags (the authors' names and defaults, utils.prepare_parser of ajbrock/BigGAN-PyTorch), its values of the
shared flags, its --continue_train rules and the architecture value its networks are built from.

Flags added here (group 'biggan model'): the networks' (--resolution, --n_classes, --G_ch, --D_ch, --dim_z, --hier,
--G_shared, --shared_dim, --G_attn, --D_attn, --D_thin, SN and BN settings, --G_init, --D_init, --ema), the data's
(--dataset folder | synthetic, --synthetic_samples), sampling's (--z_var, --truncation, --use_ema, --G_eval_mode,
--accumulate_stats, --num_standing_accumulations and their --batch_size at test time) and training's
(--batch_size, --G_batch_size, --num_D_steps, --num_D_accumulations, --num_G_accumulations, --G_lr, --D_lr, Adam's
betas and eps, --G_ortho, --D_ortho, --ema_decay, --ema_start).

The authors' --dataset (C10, I128_hdf5, ...) fixed the resolution and class count; here --resolution and --n_classes
say them and --dataset says where the images come from (docs/BIGGAN.md maps their settings to these flags). The
shared --batchSize is derived: one loader batch feeds every D step and accumulation (batch_size x num_D_steps x
num_D_accumulations), as the authors' loader does.
"""

import argparse
import dataclasses

from util.errors import OptionsError

from ..common.method import ArchitectureRecord, arch_field
from .networks import RESOLUTIONS, attention_resolutions, g_table

INITS = ('ortho', 'N02', 'glorot', 'xavier')
# The authors' activation names: all are ReLU (in place or not, the values are the same).
NONLINEARITIES = ('relu', 'inplace_relu', 'ir')

# The shared flags' values for BigGAN: the authors' 100 epochs at a constant lr (no decay), and class-labelled data
# without label maps.
DEFAULTS: dict = {'niter': 100, 'niter_decay': 0, 'label_nc': 0, 'no_instance': True, 'no_flip': True}

RESUME_POLICY = {
    **{
        flag: ('may change', 'takes effect from the next iteration')
        for flag in (
            'num_D_steps',
            'num_D_accumulations',
            'num_G_accumulations',
            'G_batch_size',
            'G_ortho',
            'D_ortho',
            'ema_decay',
            'ema_start',
            'z_var',
        )
    },
    **{
        flag: ('may change', "the optimiser's setting changes from the next step")
        for flag in ('G_lr', 'D_lr', 'G_B1', 'G_B2', 'D_B1', 'D_B2', 'adam_eps')
    },
    'batch_size': ('may change', 'each D step takes this many real images from the next iteration'),
    'dataset': ('may change', 'the images come from the new source from the next epoch'),
    'synthetic_samples': ('may change', 'an epoch draws this many images from now on'),
    'truncation': ('may change', 'only used at test time'),
    **{flag: ('may change', 'every choice is ReLU or SN: nothing changes') for flag in ('G_nl', 'D_nl', 'G_param', 'D_param')},
    'use_ema': ('may change', 'only used at test time'),
    'G_eval_mode': ('may change', 'only used at test time'),
}


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """Everything that fixes BigGAN's G, D and G_ema (shapes, SN and BN settings, whether G has an EMA copy)."""

    model_name = 'biggan'

    resolution: int = arch_field()
    n_classes: int = arch_field()
    G_ch: int = arch_field()
    D_ch: int = arch_field()
    dim_z: int = arch_field()
    hier: bool = arch_field()
    G_shared: bool = arch_field()
    shared_dim: int = arch_field()
    G_attn: str = arch_field()
    D_attn: str = arch_field()
    D_wide: bool = arch_field()
    num_G_SVs: int = arch_field()
    num_G_SV_itrs: int = arch_field()
    num_D_SVs: int = arch_field()
    num_D_SV_itrs: int = arch_field()
    SN_eps: float = arch_field()
    BN_eps: float = arch_field()
    G_init: str = arch_field()
    D_init: str = arch_field()
    ema: bool = arch_field()

    def generator_kwargs(self) -> dict:
        """The keyword arguments of networks.Generator."""
        names = ('G_ch', 'dim_z', 'resolution', 'G_attn', 'n_classes', 'num_G_SVs', 'num_G_SV_itrs', 'G_shared', 'shared_dim', 'hier',
                 'BN_eps', 'SN_eps', 'G_init')  # fmt: skip
        return {name: getattr(self, name) for name in names}

    def discriminator_kwargs(self) -> dict:
        """The keyword arguments of networks.Discriminator."""
        names = ('D_ch', 'D_wide', 'resolution', 'D_attn', 'n_classes', 'num_D_SVs', 'num_D_SV_itrs', 'SN_eps', 'D_init')
        return {name: getattr(self, name) for name in names}


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """BigGAN's flags in the help group 'biggan model' (the networks' and sampling's at test time too)."""
    add = parser.add_argument_group('biggan model').add_argument
    add('--resolution', type=int, default=128, help=f'image size, one of the architecture tables: {", ".join(map(str, RESOLUTIONS))}')
    add('--n_classes', type=int, default=0, help='number of classes (0: as many as the data has: class folders, or the synthetic set\'s)')
    add('--G_ch', type=int, default=64, help='channel multiplier of G')
    add('--D_ch', type=int, default=64, help='channel multiplier of D')
    add('--dim_z', type=int, default=128, help='noise dimensionality (with --hier rounded down to a multiple of the blocks + 1)')
    add('--z_var', type=float, default=1.0, help='noise scale: z ~ N(0, z_var) as the authors sample it (z_var acts as the std)')
    add('--hier', action='store_true', help='hierarchical z: one chunk to the first linear layer, one to each block')
    add('--G_shared', action='store_true', help='a shared class embedding feeds every ccbn (else one embedding per ccbn)')
    add('--shared_dim', type=int, default=0, help="G's shared embedding dimensionality (0: dim_z)")
    add('--G_attn', type=str, default='64', help="resolutions of G's attention blocks joined by '_' (0: none)")
    add('--D_attn', type=str, default='64', help="resolutions of D's attention blocks joined by '_' (0: none)")
    add('--D_thin', action='store_false', dest='D_wide', help="the SN-GAN channel pattern in D's blocks (default: BigGAN's wide one)")
    add(
        '--G_param',
        type=str,
        default='SN',
        choices=['SN'],
        help="G's parameterisation: spectral norm (the only choice; accepted for the authors' scripts)",
    )
    add(
        '--D_param',
        type=str,
        default='SN',
        choices=['SN'],
        help="D's parameterisation: spectral norm (the only choice; accepted for the authors' scripts)",
    )
    add('--num_G_SVs', type=int, default=1, help='singular values tracked per SN layer of G')
    add('--num_D_SVs', type=int, default=1, help='singular values tracked per SN layer of D')
    add('--num_G_SV_itrs', type=int, default=1, help='power iterations per forward in G')
    add('--num_D_SV_itrs', type=int, default=1, help='power iterations per forward in D')
    add('--SN_eps', type=float, default=1e-8, help="spectral norm's epsilon")
    add('--BN_eps', type=float, default=1e-5, help="batch norm's epsilon")
    add(
        '--G_nl',
        type=str,
        default='relu',
        choices=NONLINEARITIES,
        help="G's activation: every choice of the authors' is ReLU (accepted for their scripts)",
    )
    add(
        '--D_nl',
        type=str,
        default='relu',
        choices=NONLINEARITIES,
        help="D's activation: every choice of the authors' is ReLU (accepted for their scripts)",
    )
    add('--G_init', type=str, default='ortho', choices=INITS, help="G's weight initialisation")
    add('--D_init', type=str, default='ortho', choices=INITS, help="D's weight initialisation")
    add('--ema', action='store_true', help='keep an exponential moving average of G (weights and buffers), G_ema')
    add('--dataset', type=str, default='folder', choices=['folder', 'synthetic'],
        help='folder: --dataroot holds one folder of images per class (ImageFolder); synthetic: shapes drawn per class')  # fmt: skip
    add('--synthetic_samples', type=int, default=5000, help='--dataset synthetic: images per epoch')
    add('--G_eval_mode', action='store_true',
        help='test time: G in eval mode (its stored BN statistics); default, as the authors sample: batch statistics')  # fmt: skip
    add('--use_ema', action='store_true', help='test time: sample with G_ema (needs an experiment trained with --ema)')
    add('--truncation', type=float, default=0.0,
        help='test time: z = truncation x N(0,1) with |values| > 2 resampled (the TF-hub module\'s truncated normal); '
             '0: no truncation, N(0, z_var)')  # fmt: skip
    if not is_train:
        add('--accumulate_stats', action='store_true',
            help="test time: standing statistics: before sampling, G runs in training mode over random noise and classes "
                 "(--num_standing_accumulations batches of --batch_size) to re-estimate its stored BN statistics, then samples "
                 "in eval mode (the authors' sample.py)")  # fmt: skip
        add('--num_standing_accumulations', type=int, default=16, help='test time: forwards of --accumulate_stats')
        add('--batch_size', type=int, default=64, help="test time: the batch of each --accumulate_stats forward (the authors' G batch)")
        return
    add = parser.add_argument_group('biggan training').add_argument
    add('--batch_size', type=int, default=64, help='images per D step (and G step unless --G_batch_size)')
    add('--G_batch_size', type=int, default=0, help="batch of G's step (0 or less than --batch_size: --batch_size)")
    add('--num_D_steps', type=int, default=2, help='D steps per G step')
    add('--num_D_accumulations', type=int, default=1, help='batches whose gradients add up in each D step')
    add('--num_G_accumulations', type=int, default=1, help="batches whose gradients add up in G's step")
    add('--G_lr', type=float, default=5e-5, help="G's Adam learning rate")
    add('--D_lr', type=float, default=2e-4, help="D's Adam learning rate")
    add('--G_B1', type=float, default=0.0, help="G's Adam beta1")
    add('--D_B1', type=float, default=0.0, help="D's Adam beta1")
    add('--G_B2', type=float, default=0.999, help="G's Adam beta2")
    add('--D_B2', type=float, default=0.999, help="D's Adam beta2")
    add('--adam_eps', type=float, default=1e-8, help="Adam's epsilon")
    add('--G_ortho', type=float, default=0.0, help='strength of the modified orthogonal regularisation of G (the paper: 1e-4)')
    add('--D_ortho', type=float, default=0.0, help='strength of the modified orthogonal regularisation of D')
    add('--ema_decay', type=float, default=0.9999, help='decay of G_ema')
    add('--ema_start', type=int, default=0, help='iterations before which G_ema copies G')


def derive(opt: argparse.Namespace) -> None:
    """The loader's batch (training) and the class count of the data when --n_classes is 0."""
    if opt.n_classes == 0 and getattr(opt, 'dataset', 'folder') == 'synthetic':
        from data.class_dataset import SYNTHETIC_CLASSES

        opt.n_classes = SYNTHETIC_CLASSES
    elif opt.n_classes == 0 and opt.isTrain:
        from data.class_dataset import count_class_folders

        opt.n_classes = count_class_folders(opt.dataroot)
    if opt.isTrain:
        if 'batchSize' in opt.explicit:
            raise OptionsError(
                f"--batchSize {opt.batchSize}: --model biggan's batch is --batch_size per D step (a loader batch holds "
                "batch_size x num_D_steps x num_D_accumulations images); pass --batch_size"
            )
        opt.batchSize = opt.batch_size * opt.num_D_steps * opt.num_D_accumulations


def validate(opt: argparse.Namespace) -> None:
    """Refuse, in one line naming the fix, what the authors' code would fail on later."""
    if opt.resolution not in RESOLUTIONS:
        raise OptionsError(f"--resolution {opt.resolution}: BigGAN's architecture tables have {', '.join(map(str, RESOLUTIONS))}")
    if opt.n_classes < 1:
        raise OptionsError(
            f"--n_classes {opt.n_classes}: there must be at least one class; pass --n_classes or a --dataroot with class folders"
        )
    for flag in ('G_attn', 'D_attn'):
        try:
            attention_resolutions(getattr(opt, flag))
        except Exception as error:
            raise OptionsError(f"--{flag} {getattr(opt, flag)!r}: resolutions joined by '_', e.g. 64 or 32_64 (0 for none)") from error
    if opt.hier and not opt.G_shared:
        raise OptionsError("--hier without --G_shared: the z chunks are appended to the shared class embedding; add --G_shared")
    if opt.hier and opt.dim_z < len(g_table(1, opt.resolution).out_channels) + 1:
        raise OptionsError(f"--dim_z {opt.dim_z} with --hier: it needs at least one value per block plus one; pass a larger --dim_z")
    for flag in ('G_ch', 'D_ch', 'dim_z', 'num_G_SVs', 'num_D_SVs', 'num_G_SV_itrs', 'num_D_SV_itrs'):
        if getattr(opt, flag) < 1:
            raise OptionsError(f"--{flag} {getattr(opt, flag)} must be >= 1")
    if opt.truncation < 0:
        raise OptionsError(f"--truncation {opt.truncation} must be >= 0 (0: no truncation)")
    if getattr(opt, 'export_onnx', None):
        raise OptionsError(
            "--export_onnx: BigGAN's generator takes noise and class ids, not a label map; ONNX export is the label-to-image methods'"
        )
    if opt.use_ema and not opt.ema:
        raise OptionsError('--use_ema: this experiment was trained without --ema, so it has no G_ema; drop --use_ema')
    if not opt.isTrain:
        for flag in ('num_standing_accumulations', 'batch_size'):
            if opt.accumulate_stats and getattr(opt, flag) < 1:
                raise OptionsError(f"--{flag} {getattr(opt, flag)} must be >= 1 with --accumulate_stats")
        return
    for flag in ('batch_size', 'num_D_steps', 'num_D_accumulations', 'num_G_accumulations'):
        if getattr(opt, flag) < 1:
            raise OptionsError(f"--{flag} {getattr(opt, flag)} must be >= 1")
    if not 0.0 <= opt.ema_decay <= 1.0:
        raise OptionsError(f"--ema_decay {opt.ema_decay} must be in [0, 1]")
    if opt.synthetic_samples < 1:
        raise OptionsError(f"--synthetic_samples {opt.synthetic_samples} must be >= 1")
    if opt.amp == 'fp16':
        raise OptionsError('--amp fp16: --model biggan trains in float32 or with --amp bf16; pass --amp bf16 or --amp off')
