"""vid2vid's flags (its authors' names and defaults), its values of the shared flags, and the architecture value its
networks are built from.

Flags added here (groups 'vid2vid model' and 'vid2vid training'): --n_frames_G, --n_downsample_G, --n_blocks,
--n_blocks_local, --n_scales_spatial, --use_instance, --fg, --fg_labels, --no_flow, --no_first_img, --use_single_G,
--single_G_dir; pix2pixHD's instance-feature flags (--instance_feat, --label_feat, --feat_num, --nef, --n_downsample_E,
--n_clusters) and test-time styles (--n_styles, --feat_choice, --cluster_path, --use_encoded_image, --allow_pickle);
training: --num_D, --n_frames_D, --n_scales_temporal, --lambda_feat, --lambda_T, --lambda_F, --no_vgg,
--no_ganFeat, --gan_mode, --TTUR, --sparse_D, --max_frames_per_gpu, --max_frames_backpropagate, --max_t_step,
--n_frames_total, --niter_step, --niter_fix_global, --flow_weights.
Shared flags read: --label_nc, --input_nc, --output_nc, --ngf, --norm, --netG (composite), --ndf, --n_layers_D, --lr,
--beta1, --niter, --niter_decay, --vgg_weights.
"""

import argparse
import dataclasses

from util.cli import help_group
from util.errors import OptionsError

from ..common.method import ArchitectureRecord, arch_field
from ..pix2pixhd.options import add_feature_flags as add_pix2pixhd_feature_flags
from ..pix2pixhd.options import add_test_flags as add_style_flags
from ..pix2pixhd.options import derive as derive_features
from ..pix2pixhd.options import validate_features

# The authors' values of the shared flags (their base/train options): composite G of 128 filters with BatchNorm,
# 512-wide frames (scaleWidth), 10 + 10 epochs, an epoch checkpoint every epoch, no instance maps.
DEFAULTS: dict = {
    'netG': 'composite',
    'ngf': 128,
    'norm': 'batch',
    'loadSize': 512,
    'fineSize': 512,
    'resize_or_crop': 'scale_width',
    'niter': 10,
    'niter_decay': 10,
    'save_epoch_freq': 1,
    'lr': 0.0002,
    'beta1': 0.5,
}

MUST, MAY = 'must match', 'may change'
RESUME_POLICY = {
    'n_frames_D': (MUST, 'the temporal discriminators\' input channels depend on it'),
    'n_scales_temporal': (MUST, 'the saved temporal discriminators are one per scale'),
    'num_D': (MUST, 'the saved discriminators depend on it'),
    'no_ganFeat': (MUST, 'the discriminators\' layer names depend on it'),
    'TTUR': (MUST, 'the saved optimisers were made with its learning rates and betas'),
    'lambda_feat': (MAY, 'the loss weights change from the next iteration'),
    'lambda_T': (MAY, 'the loss weights change from the next iteration'),
    'lambda_F': (MAY, 'the loss weights change from the next iteration'),
    'no_vgg': (MAY, 'the VGG loss changes from the next iteration'),
    'gan_mode': (MAY, 'least squares is the only mode'),
    'max_frames_per_gpu': (MAY, 'frames generated per backward change from the next sequence'),
    'max_frames_backpropagate': (MAY, 'how far gradients reach back through G\'s frames changes from the next sequence'),
    'max_t_step': (MAY, 'the spacing of the frames of a clip is drawn anew from the next sequence'),
    'sparse_D': (MAY, 'the temporal discriminators (the same networks) see the new choice of runs from the next sequence'),
    'niter_fix_global': (
        MAY,
        'G\'s optimiser holds every scale either way; the coarser scales train once the new count of epochs has passed',
    ),
    'n_frames_total': (MAY, 'the sequence length changes from the next sequence'),
    'niter_step': (MAY, 'the sequence length doubles on the new schedule'),
    'flow_weights': (MAY, 'the reference flow comes from the new network'),
    'use_single_G': (MAY, 'only used at test time'),
    'single_G_dir': (MAY, 'only used at test time'),
    'n_clusters': (MAY, 'only used by encode_features.py'),
    'no_first_img': (MUST, 'G was trained to start from its own first frames or from given ones'),
}


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Add vid2vid's flags; the shared --netG takes its one generator family (composite)."""
    for action in parser._actions:
        if '--netG' in action.option_strings:
            action.choices = ['composite']
    add = help_group(parser, 'generator').add_argument
    add('--n_frames_G', type=int, default=3, help='vid2vid: frames fed to G (n_frames_G - 1 previous frames)')
    add('--n_downsample_G', type=int, default=3, help='vid2vid: downsampling layers of the coarsest generator')
    add('--n_blocks', type=int, default=9, help='vid2vid: residual blocks of the coarsest generator')
    add('--n_blocks_local', type=int, default=3, help='vid2vid: residual blocks of each finer spatial scale')
    add('--n_scales_spatial', type=int, default=1, help='vid2vid: spatial scales of the coarse-to-fine generator')
    add('--use_instance', action='store_true', help='vid2vid: add the instance maps\' edges as input')
    add('--fg', action='store_true', help='vid2vid: synthesize the foreground classes (--fg_labels) with a separate branch')
    add('--fg_labels', type=str, default='26', help='vid2vid: label ids of the foreground classes, comma-separated')
    add('--no_flow', action='store_true', help='vid2vid: no flow / occlusion heads (every frame hallucinated)')
    add('--no_first_img', action='store_true', help='vid2vid: G also makes the first frames (from black previous frames)')
    add('--use_single_G', action='store_true', help='vid2vid test time: the first frames from a single-image pix2pixHD generator')
    add('--single_G_dir', type=str, default='', help='vid2vid: the experiment folder of that pix2pixHD (its latest checkpoint)')
    add_feature_flags(parser, is_train)
    if not is_train:
        return
    add = help_group(parser, 'discriminator and losses').add_argument
    add('--num_D', type=int, default=2, help='vid2vid: image scales of each discriminator')
    add('--n_frames_D', type=int, default=3, help='vid2vid: frames fed to each temporal discriminator')
    add('--n_scales_temporal', type=int, default=2, help='vid2vid: temporal discriminators (frame rates 1, 1/n_frames_D, ...)')
    add('--lambda_feat', type=float, default=10.0, help='vid2vid: weight of the feature matching and VGG losses')
    add('--lambda_T', type=float, default=10.0, help='vid2vid: weight of the warp losses')
    add('--lambda_F', type=float, default=10.0, help='vid2vid: weight of the flow loss')
    add('--no_vgg', action='store_true', help='vid2vid: no VGG loss')
    add('--no_ganFeat', action='store_true', help='vid2vid: no discriminator feature matching')
    add('--gan_mode', type=str, default='ls', choices=['ls'], help='vid2vid: least squares (the authors\' code uses it for every mode)')
    add('--TTUR', action='store_true', help='vid2vid: two time-scale updates (G lr/2, D lr*2, betas 0, 0.9)')
    add('--sparse_D', action='store_true', help='vid2vid: sparse temporal discriminators (fewer runs of frames, to save memory)')
    add = help_group(parser, 'training schedule').add_argument
    add('--max_frames_per_gpu', type=int, default=1, help='vid2vid: frames generated per forward/backward')
    add(
        '--max_frames_backpropagate',
        type=int,
        default=1,
        help='vid2vid: frames a loss backpropagates through (grows with the clip, within one forward of --max_frames_per_gpu)',
    )
    add('--max_t_step', type=int, default=1, help='vid2vid: max spacing of a training clip\'s frames (> 1: frames skipped at random)')
    add('--n_frames_total', type=int, default=30, help='vid2vid: frames of a training sequence at first (doubles every --niter_step)')
    add('--niter_step', type=int, default=5, help='vid2vid: epochs between doublings of the sequence length')
    add(
        '--niter_fix_global',
        type=int,
        default=0,
        help='vid2vid: epochs that only the finest spatial scale trains (--n_scales_spatial > 1); then every scale',
    )
    add(
        '--flow_weights',
        type=str,
        default='',
        help='vid2vid: torchvision RAFT (large) state_dict for the reference flow where the data has no flow files',
    )


def fg_label_ids(text: str) -> tuple[int, ...]:
    """--fg_labels '26,27' -> (26, 27); OptionsError naming the flag otherwise."""
    try:
        ids = tuple(int(part) for part in text.split(',') if part.strip())
    except ValueError:
        raise OptionsError(f"--fg_labels {text!r}: give label ids separated by commas, e.g. 24,25,26") from None
    if not ids:
        raise OptionsError("--fg_labels is empty: give the foreground label ids, e.g. 26")
    return ids


def validate(opt: argparse.Namespace) -> None:
    """Refuse what the authors' code would fail on later, in one line each."""
    if opt.n_frames_G < 2:
        raise OptionsError(f"--n_frames_G {opt.n_frames_G}: vid2vid needs at least 2 (the current and one previous frame)")
    if opt.use_single_G and not opt.single_G_dir:
        raise OptionsError("--use_single_G: pass --single_G_dir, the checkpoints folder of a pix2pixHD trained on the same label maps")
    if opt.n_scales_spatial < 1:
        raise OptionsError(f"--n_scales_spatial {opt.n_scales_spatial} must be >= 1")
    validate_features(opt)
    if opt.fg:
        bad = [label for label in fg_label_ids(opt.fg_labels) if not 0 <= label < max(opt.label_nc, 1)]
        if opt.label_nc == 0 or bad:
            raise OptionsError(f"--fg_labels {opt.fg_labels}: foreground ids must be label ids below --label_nc {opt.label_nc}")
    if opt.isTrain:
        if opt.n_frames_D < 2:
            raise OptionsError(f"--n_frames_D {opt.n_frames_D}: a temporal discriminator compares at least 2 frames")
        for flag in ('max_frames_per_gpu', 'n_frames_total', 'niter_step', 'max_frames_backpropagate', 'max_t_step'):
            if getattr(opt, flag) < 1:
                raise OptionsError(f"--{flag} {getattr(opt, flag)} must be >= 1")
        if opt.max_frames_backpropagate > opt.max_frames_per_gpu:
            raise OptionsError(
                f"--max_frames_backpropagate {opt.max_frames_backpropagate}: gradients reach back only within one forward of "
                f"--max_frames_per_gpu {opt.max_frames_per_gpu} frames; pass --max_frames_per_gpu {opt.max_frames_backpropagate} "
                f"or a smaller --max_frames_backpropagate"
            )
        if opt.world_size > 1 and opt.max_frames_backpropagate > 1 and opt.n_scales_spatial > 1 and opt.no_first_img:
            raise OptionsError(
                f"--max_frames_backpropagate {opt.max_frames_backpropagate} with --n_scales_spatial {opt.n_scales_spatial} and "
                f"--no_first_img under torchrun: a clip's first forward makes its frames from the hallucination branch alone, "
                f"so the coarser scales' flow heads get no gradient there, which DDP does not allow; train in one process "
                f"or pass --max_frames_backpropagate 1"
            )
        if opt.niter_fix_global < 0:
            raise OptionsError(f"--niter_fix_global {opt.niter_fix_global} must be >= 0 (0: every spatial scale trains from the start)")
        if opt.niter_fix_global > 0 and opt.n_scales_spatial == 1:
            raise OptionsError(
                f"--niter_fix_global {opt.niter_fix_global}: --n_scales_spatial 1 has no coarser scale to fix; pass "
                f"--n_scales_spatial 2 (or more) or --niter_fix_global 0"
            )


def derive(opt: argparse.Namespace) -> None:
    """The shared --no_instance follows vid2vid's --use_instance (the data then reads instance maps or not); the
    single-image pix2pixHD of --use_single_G and --instance_feat's encoder may read them too. The instance features'
    values (use_features, the styles a test draws) as pix2pixHD's."""
    opt.no_instance = not opt.use_instance and not opt.use_single_G and not opt.instance_feat
    derive_features(opt)


def size_base(opt: argparse.Namespace) -> int:
    """Both sides must be multiples of 2**(n_downsample_G + n_scales_spatial - 1): each scale halves them (and of
    2**n_downsample_E with instance features: E's downsamplings)."""
    base = 2 ** (opt.n_downsample_G + opt.n_scales_spatial - 1)
    return max(base, 2**opt.n_downsample_E) if opt.use_features else base


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """Everything that fixes the shapes of vid2vid's generators (and, when training, its discriminators)."""

    model_name = 'vid2vid'

    label_nc: int
    input_nc: int
    output_nc: int
    use_instance: bool = arch_field()
    ngf: int = arch_field()
    norm: str = arch_field()
    n_frames_G: int = arch_field()
    n_downsample_G: int = arch_field()
    n_blocks: int = arch_field()
    n_blocks_local: int = arch_field()
    n_scales_spatial: int = arch_field()
    fg: bool = arch_field()
    fg_labels: tuple[int, ...] = arch_field()
    no_flow: bool = arch_field()
    # Instance features (add_feature_flags); the defaults are a model without them, as an experiment recorded before
    # these fields reads.
    instance_feat: bool = arch_field(default=False)
    label_feat: bool = arch_field(default=False)
    feat_num: int = arch_field(default=3)
    nef: int = arch_field(default=32)
    n_downsample_E: int = arch_field(default=3)

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the parsed options describe."""
        return cls(
            label_nc=opt.label_nc,
            input_nc=opt.input_nc,
            output_nc=opt.output_nc,
            use_instance=opt.use_instance,
            ngf=opt.ngf,
            norm=opt.norm,
            n_frames_G=opt.n_frames_G,
            n_downsample_G=opt.n_downsample_G,
            n_blocks=opt.n_blocks,
            n_blocks_local=opt.n_blocks_local,
            n_scales_spatial=opt.n_scales_spatial,
            fg=opt.fg,
            fg_labels=fg_label_ids(opt.fg_labels),
            no_flow=opt.no_flow,
            instance_feat=opt.instance_feat,
            label_feat=opt.label_feat,
            feat_num=opt.feat_num,
            nef=opt.nef,
            n_downsample_E=opt.n_downsample_E,
        )

    @property
    def frame_input_nc(self) -> int:
        """Channels of one frame's encoded labels: one-hot classes (or --input_nc with --label_nc 0), plus edges."""
        return (self.label_nc if self.label_nc != 0 else self.input_nc) + (1 if self.use_instance else 0)

    @property
    def use_features(self) -> bool:
        """G takes E's per-instance features (--instance_feat: pooled over the instance maps; --label_feat: over the labels)."""
        return self.instance_feat or self.label_feat

    @property
    def generator_frame_nc(self) -> int:
        """Channels of one frame in G's label input: its encoded labels, then --feat_num feature channels with features."""
        return self.frame_input_nc + (self.feat_num if self.use_features else 0)


@dataclasses.dataclass(frozen=True)
class Discriminators:
    """What fixes the shapes of the image and temporal discriminators (training only)."""

    ndf: int
    n_layers_D: int
    num_D: int
    n_frames_D: int
    n_scales_temporal: int
    get_interm_feat: bool

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Discriminators':
        """The discriminators the parsed training options describe."""
        return cls(opt.ndf, opt.n_layers_D, opt.num_D, opt.n_frames_D, opt.n_scales_temporal, not opt.no_ganFeat)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """vid2vid's loss weights and switches."""

    lambda_feat: float = 10.0
    lambda_T: float = 10.0
    lambda_F: float = 10.0
    use_vgg: bool = True
    no_first_img: bool = False

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'LossSettings':
        """The loss settings of the parsed training options."""
        return cls(opt.lambda_feat, opt.lambda_T, opt.lambda_F, not opt.no_vgg, opt.no_first_img)


# ---------------------------------------------------------------- instance features (pix2pixHD's styles in vid2vid)
def add_feature_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """pix2pixHD's instance-feature flags, with the authors' vid2vid defaults of E's shape (--nef 32, --n_downsample_E 3,
    which their options parse without wiring them), and at test time its style flags (--n_styles, --feat_choice, ...)."""
    add_pix2pixhd_feature_flags(parser, nef=32, n_downsample_E=3)
    if not is_train:
        add_style_flags(parser)
