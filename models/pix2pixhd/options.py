"""pix2pixHD's own flags (the 2018 reference's names, defaults and help groups), what follows from them, their checks
and their --continue_train rules; the flags every method shares are in options/. vid2vid takes the instance-feature
and test-time style flags from here too (add_feature_flags, add_test_flags, derive, validate_features)."""

import argparse

from util.cli import help_group
from util.errors import OptionsError

# Its values of the shared flags: the reference's generator and normalisation.
DEFAULTS: dict = {'netG': 'global', 'norm': 'instance'}
GENERATORS = ('global', 'local')
MUST, MAY = 'must match', 'may change'
MUST_MATCH_NOTE = 'the saved networks depend on it'
# --continue_train's rule of each training flag add_flags adds that is not an architecture flag (the architecture's
# must match; options/train_options.py has the shared flags' rules and the kinds).
RESUME_POLICY = {
    'num_D': (MUST, MUST_MATCH_NOTE),
    'load_features': (MUST, 'it decides whether the encoder E is trained and saved'),
    'niter_fix_global': (MUST, 'the saved optimiser of G covers the parameters it fixed'),
    'n_clusters': (MAY, 'only used by encode_features.py'),
    'lambda_feat': (MAY, 'the loss weights change from the next iteration'),
    'no_ganFeat_loss': (MAY, 'the feature matching loss changes from the next iteration'),
    'no_vgg_loss': (MAY, 'the VGG loss changes from the next iteration'),
    'no_lsgan': (MAY, 'the GAN loss changes from the next iteration'),
    'adam_impl': (MAY, 'the same update (up to float rounding) from the next step, its moments kept'),
    'netG_init': (MAY, 'only used when G is built from scratch: the resumed weights are kept'),
}


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Add pix2pixHD's flags to the shared help groups: G's and E's shape, instance features, its losses (training) and
    test-time styles; let the shared --netG take its two generators."""
    for action in parser._actions:
        if '--netG' in action.option_strings:
            action.choices = [*GENERATORS, *(name for name in action.choices or () if name not in GENERATORS)]
    add = help_group(parser, 'generator').add_argument
    add('--n_downsample_global', type=int, default=4, help='number of downsampling layers in the global generator')
    add('--n_blocks_global', type=int, default=9, help='number of residual blocks in the global generator')
    add('--n_blocks_local', type=int, default=3, help='number of residual blocks in each local enhancer')
    add('--n_local_enhancers', type=int, default=1, help='number of local enhancers (with --netG local)')
    add('--use_dropout', action='store_true', help='use dropout in the generator\'s residual blocks')

    add_feature_flags(parser, nef=16, n_downsample_E=4)
    help_group(parser, 'instance features').add_argument(
        '--load_features', action='store_true', help='read precomputed feature maps from <dataroot>/<phase>_feat instead of training E'
    )
    if is_train:
        add_training_flags(parser)
    else:
        add_test_flags(parser)


def add_feature_flags(parser: argparse.ArgumentParser, nef: int, n_downsample_E: int) -> None:
    """The instance-feature flags (E's shape and what its output is averaged over; encode_features.py's clusters), with
    the method's defaults of E's width and depth: pix2pixHD's, and vid2vid's (models/vid2vid/options.py)."""
    add = help_group(parser, 'instance features').add_argument
    add('--instance_feat', action='store_true', help='add encoded instance features as input (trains the encoder E)')
    add('--label_feat', action='store_true', help='add encoded label features as input (the label map plays the instance map\'s role)')
    add('--feat_num', type=int, default=3, help='length of the encoded feature vector')
    add('--n_downsample_E', type=int, default=n_downsample_E, help='number of downsampling layers in the encoder')
    add('--nef', type=int, default=nef, help='number of encoder filters in the first conv layer')
    add('--n_clusters', type=int, default=10, help='number of K-means clusters per class (encode_features.py)')


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """G's initialisation, --niter_fix_global, the multiscale D and the losses."""
    help_group(parser, 'generator').add_argument(
        '--netG_init',
        type=str,
        default='normal',
        choices=['normal', 'delta'],
        help="G from scratch: normal draws every conv weight from N(0, 0.02) (the reference); delta keeps only "
        "the centre tap's draw of each Conv2d kernel, times sqrt(kh*kw), and zeroes the other taps (transposed convs keep "
        'their draws), so that no spatial noise is left for a short run to train away (measured with --n_downsample_global 0: '
        'the quickstart, docs/QUICKSTART.md, "The coloured fringes")',
    )
    help_group(parser, 'training schedule').add_argument(
        '--niter_fix_global', type=int, default=0, help='number of epochs that only the outermost local enhancer trains (--netG local)'
    )
    add = help_group(parser, 'discriminator and losses').add_argument
    add('--num_D', type=int, default=2, help='number of discriminators (image scales)')
    add('--lambda_feat', type=float, default=10.0, help='weight of the feature matching and VGG losses')
    add('--no_ganFeat_loss', action='store_true', help='do not use the discriminator feature matching loss')
    add('--no_vgg_loss', action='store_true', help='do not use the VGG perceptual loss')
    add('--no_lsgan', action='store_true', help='vanilla GAN loss (BCE) instead of least squares')
    help_group(parser, 'training schedule').add_argument(
        '--adam_impl',
        default='fused',
        choices=['fused', 'foreach', 'for_loop'],
        help="Adam's kernel, the same update up to float rounding: fused (one pass over the weights per step), foreach "
        "(a multi-tensor kernel per operation) or for_loop (the reference's, per tensor); measure with scripts/benchmark.py",
    )


def add_test_flags(parser: argparse.ArgumentParser) -> None:
    """Test time: where styles come from (cluster centres, a real photo, chosen clusters) and how many per input."""
    add = help_group(parser, 'test time').add_argument
    add(
        '--cluster_path',
        type=str,
        default='features_clustered_010.npy',
        help='cluster file of the encoded features (a path, or a name in <checkpoints_dir>/<name>/; '
        'read as the .npz encode_features.py writes)',
    )
    add(
        '--use_encoded_image',
        action='store_true',
        help='encode the real test photo for the feature map instead of drawing cluster centres',
    )
    add(
        '--allow_pickle',
        action='store_true',
        help="allow a pickled cluster file (the reference's .npy); unpickling can run code, so only for files you trust",
    )
    add(
        '--n_styles',
        type=int,
        default=1,
        help='synthesize this many style variants per input (new cluster draws each), shown side by side',
    )
    add(
        '--feat_choice',
        type=str,
        default='',
        help='cluster index per class or instance id, e.g. 26:3,24001:0 (class 26 -> cluster 3; '
        'instance 24001 -> cluster 0), or a JSON file {"26": 3}',
    )


def derive(opt: argparse.Namespace) -> None:
    """Values that follow from the instance-feature flags (pix2pixHD's, and vid2vid's): whether G takes encoded features,
    whether test time reads photos for E, and how many styles a test draws."""
    opt.use_features = opt.instance_feat or opt.label_feat
    if not opt.isTrain:
        # The feature scripts read photos to encode them (options/test_options.py's FeatureOptions): E encodes them.
        opt.use_encoded_image = opt.use_encoded_image or opt.reads_photos
        opt.reads_photos = opt.use_encoded_image
        opt.n_variants = opt.n_styles


def validate(opt: argparse.Namespace) -> None:
    """Combinations of pix2pixHD's flags that cannot work, each refused with the fix."""
    if opt.netG == 'local' and opt.n_local_enhancers < 1:
        raise OptionsError("--netG local needs --n_local_enhancers >= 1")
    if opt.instance_feat and opt.no_instance:
        raise OptionsError("--instance_feat needs instance maps: remove --no_instance")
    validate_features(opt)
    if opt.isTrain and opt.niter_fix_global > 0 and opt.netG != 'local':
        raise OptionsError(
            f"--niter_fix_global {opt.niter_fix_global}: --netG {opt.netG} has no global generator inside a local "
            f"enhancer to fix; use --netG local or --niter_fix_global 0"
        )


def validate_features(opt: argparse.Namespace) -> None:
    """The instance-feature flags' refusals that pix2pixHD and vid2vid share: a label map to pool over, test-time styles
    only for a model with features."""
    if opt.label_feat and opt.label_nc == 0:
        raise OptionsError("--label_feat needs a label map: it cannot be used with --label_nc 0")
    if opt.isTrain:
        return
    if opt.n_styles < 1:
        raise OptionsError(f"--n_styles {opt.n_styles} must be >= 1")
    if (opt.n_styles > 1 or opt.feat_choice) and not opt.use_features:
        raise OptionsError("--n_styles/--feat_choice pick encoded-feature styles: the model needs --instance_feat or --label_feat")


def size_base(opt: argparse.Namespace) -> int:
    """The factor every side must be divisible by for the generator (and encoder) to keep its size."""
    base = 2**opt.n_downsample_global
    if opt.netG == 'local':
        base *= 2**opt.n_local_enhancers
    if opt.instance_feat or opt.label_feat:
        base = max(base, 2**opt.n_downsample_E)
    return base
