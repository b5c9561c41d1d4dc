"""pix2pix's flags, its defaults that differ from pix2pixHD's, and the architecture value its networks are built from.

Flags added here (group 'pix2pix model', the authors' names and defaults): --gan_mode, --lambda_L1, --netD,
--no_dropout, --eval.

Existing flags read (options/base_options.py, options/train_options.py): --label_nc, --input_nc, --no_instance,
--output_nc, --netG (unet_256 | unet_128 | unet_64 | unet_32), --ngf, --ndf, --n_layers_D (with --netD n_layers), --norm, --lr,
--beta1, --niter, --niter_decay, --pool_size. pix2pixHD's own flags (--use_dropout, --no_lsgan, its generator, feature
and loss flags) are not pix2pix's: given with --model pix2pix they are refused (dropout: --no_dropout; GAN: --gan_mode).

DEFAULTS holds the authors' values where pix2pixHD's differ or must be restated; the registry applies them with
parser.set_defaults. add_flags also makes the U-Nets (unet_32 ... unet_256) the shared --netG's choices.
"""

import argparse
import dataclasses
from typing import Any

import torch.nn as nn

from util.errors import ModelError, OptionsError

from ..common.method import ArchitectureRecord, arch_field
from ..common.normalization import weights_init_zero_bias
from .networks import UNET_FIXED_LEVELS, PatchDiscriminator, UnetGenerator

# The authors' pix2pix defaults (their modify_commandline_options and base/train options): U-Net 256 with
# BatchNorm, no image pool, Adam lr 0.0002 beta1 0.5, 100 epochs at lr then 100 of linear decay to 0, and
# their data pipeline (resize to 286x286, random 256x256 crop).
DEFAULTS: dict = {
    'netG': 'unet_256',
    'norm': 'batch',
    'pool_size': 0,
    'lr': 0.0002,
    'beta1': 0.5,
    'niter': 100,
    'niter_decay': 100,
    'loadSize': 286,
    'fineSize': 256,
    'resize_or_crop': 'resize_and_crop',
}

# --netG name -> U-Net levels: the authors' define_G has unet_128 and unet_256; unet_32 and unet_64 are the same
# U-Net with fewer ngf*8 levels, for inputs whose sides are multiples of 32 or 64 (scripts/table1.py's small scenes).
UNET_DOWNS = {'unet_32': 5, 'unet_64': 6, 'unet_128': 7, 'unet_256': 8}

# --continue_train's rules of pix2pix's other flags (its architecture flags must match).
RESUME_POLICY = {
    'gan_mode': ('may change', 'the GAN loss changes from the next iteration'),
    'lambda_L1': ('may change', 'the L1 weight changes from the next iteration'),
    'eval': ('may change', 'only used at test time'),
}


def size_base(opt: argparse.Namespace) -> int:
    """Both sides must be multiples of 2^levels: the U-Net halves them down to a 1x1 bottleneck."""
    return 2 ** UNET_DOWNS.get(opt.netG, max(UNET_DOWNS.values()))


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Add pix2pix's own flags in the help group 'pix2pix model' (training and test alike); the shared --netG takes
    the U-Nets."""
    for action in parser._actions:
        if '--netG' in action.option_strings:
            action.choices = list(UNET_DOWNS)
    add = parser.add_argument_group('pix2pix model').add_argument
    add(
        '--gan_mode',
        type=str,
        default='vanilla',
        choices=['vanilla', 'lsgan'],
        help='pix2pix GAN loss: vanilla (BCE on logits) or lsgan (MSE)',
    )
    add('--lambda_L1', type=float, default=100.0, help='pix2pix: weight of the L1 loss between the fake and the real image')
    add(
        '--netD',
        type=str,
        default='basic',
        choices=['basic', 'n_layers'],
        help='pix2pix discriminator: basic is the 70x70 PatchGAN (3 layers); n_layers takes --n_layers_D',
    )
    add('--no_dropout', action='store_true', help='pix2pix: no dropout in the U-Net\'s inner decoder levels')
    add(
        '--eval',
        action='store_true',
        help='pix2pix test time: BatchNorm running statistics and no dropout (default, as the authors\' test.py: '
        'batch statistics and dropout on)',
    )


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """Everything that fixes the shapes of pix2pix's G and D, derived once from the options."""

    model_name = 'pix2pix'

    label_nc: int
    input_nc: int
    no_instance: bool
    output_nc: int
    num_downs: int = arch_field('netG')
    ngf: int = arch_field()
    ndf: int = arch_field()
    n_layers_D: int = arch_field('netD', 'n_layers_D')
    norm: str = arch_field()
    use_dropout: bool = arch_field('no_dropout')

    def __post_init__(self) -> None:
        if self.num_downs < UNET_FIXED_LEVELS:
            raise ModelError(
                f"pix2pix U-Net with {self.num_downs} levels: it needs at least {UNET_FIXED_LEVELS}; use --netG unet_128 or unet_256"
            )
        if self.norm not in ('batch', 'instance'):
            raise ModelError(f"pix2pix --norm {self.norm}: use batch or instance")

    @property
    def netG_input_nc(self) -> int:
        """G's input channels: one-hot classes (or --input_nc with --label_nc 0), plus the edge map."""
        return (self.label_nc if self.label_nc != 0 else self.input_nc) + (0 if self.no_instance else 1)

    @property
    def netD_input_nc(self) -> int:
        """D sees G's input and an image, concatenated on channels (a conditional GAN)."""
        return self.netG_input_nc + self.output_nc

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the parsed options describe."""
        if opt.netG not in UNET_DOWNS:
            raise OptionsError(f"--netG {opt.netG}: pix2pix's generator is one of {', '.join(UNET_DOWNS)}; pass --netG unet_256")
        return cls(
            label_nc=opt.label_nc,
            input_nc=opt.input_nc,
            no_instance=opt.no_instance,
            output_nc=opt.output_nc,
            num_downs=UNET_DOWNS[opt.netG],
            ngf=opt.ngf,
            # test.py's options have D's flags only as opt.json gave them (D is not built there): else the defaults.
            ndf=getattr(opt, 'ndf', 64),
            n_layers_D=3 if opt.netD == 'basic' else getattr(opt, 'n_layers_D', 3),
            norm=opt.norm,
            use_dropout=not opt.no_dropout,
        )


def build_networks(arch: Architecture) -> dict[str, nn.Module]:
    """{'G': U-Net, 'D': PatchGAN}, initialised as the authors' init_weights('normal', 0.02)."""
    nets: dict[str, Any] = {
        'G': UnetGenerator(arch.netG_input_nc, arch.output_nc, arch.num_downs, arch.ngf, arch.norm, arch.use_dropout),
        'D': PatchDiscriminator(arch.netD_input_nc, arch.ndf, arch.n_layers_D, arch.norm),
    }
    for net in nets.values():
        net.apply(weights_init_zero_bias)
    return nets
