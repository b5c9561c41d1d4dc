"""Command-line options shared by training and testing, with the reference's names and defaults."""
import argparse
import importlib.util
import json
import os
import sys
from typing import Any, Optional, Sequence

import torch

from util.distributed import launched_by_torchrun

# Flags that fix the shape of the networks or of their input encoding. At test time (and in the
# feature scripts) they are taken from the experiment's saved opt.json unless given explicitly,
# because a train/test mismatch (e.g. `--netG local --ngf 32`) otherwise loads garbage or crashes.
ARCHITECTURE_FLAGS = (
    'label_nc', 'input_nc', 'output_nc', 'netG', 'ngf', 'n_downsample_global', 'n_blocks_global',
    'n_blocks_local', 'n_local_enhancers', 'norm', 'use_dropout', 'no_instance', 'instance_feat',
    'label_feat', 'feat_num', 'n_downsample_E', 'nef',
)


class OptionsError(ValueError):
    """A user-facing problem with the command-line options."""


def is_plain_name(value: str) -> bool:
    """True for a single path component: not empty, no separators, not '.' or '..'."""
    return bool(value) and value not in ('.', '..') and '/' not in value and '\\' not in value and not os.path.isabs(value)


def _check_name(value: str) -> str:
    """Refuse experiment names that would build a path outside checkpoints_dir/results_dir."""
    if not is_plain_name(value):
        raise argparse.ArgumentTypeError(f"--name {value!r} must be a plain folder name (no '/', '..' or absolute path)")
    return value


def check_writable(folder: str, flag: str) -> None:
    """Create `folder` and prove a file can be written there, before hours of work depend on it."""
    probe = os.path.join(folder, f'.write-test-{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'w') as handle:
            handle.write('ok')
        os.remove(probe)
    except OSError as error:
        raise OptionsError(f"cannot write to {folder} ({error.strerror or error}); fix its permissions or free space, or choose another {flag}") from None


class BaseOptions:
    """Builds the parser, parses, resolves the device and writes opt.txt / opt.json."""

    def __init__(self) -> None:
        self.isTrain = False

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the flags common to train.py and test.py."""
        # experiment
        parser.add_argument('--name', type=_check_name, default='label2city', help='name of the experiment; it decides where to store samples and models')
        parser.add_argument('--gpu_ids', type=str, default='0', help="gpu ids: e.g. 0  0,1,2  0,2; use -1 for CPU")
        parser.add_argument('--checkpoints_dir', type=str, default='./checkpoints', help='models are saved here')
        parser.add_argument('--model', type=str, default='pix2pixHD', choices=['pix2pixHD'], help='which model to use')
        parser.add_argument('--norm', type=str, default='instance', choices=['instance', 'batch'], help='instance normalization or batch normalization')
        parser.add_argument('--use_dropout', action='store_true', help='use dropout in the generator')
        parser.add_argument('--data_type', default=32, type=int, choices=[8, 16, 32], help='supported data type: 16 = half-precision autocast, 32 = float32 (8 was TensorRT-only in the reference)')
        parser.add_argument('--verbose', action='store_true', default=False, help='print the networks')
        parser.add_argument('--fp16', action='store_true', default=False, help='train with automatic mixed precision in float16 (same as --amp fp16)')
        parser.add_argument('--amp', type=str, default='off', choices=['off', 'bf16', 'fp16'], help='automatic mixed precision: off (float32, faithful), bf16 or fp16')
        parser.add_argument('--local_rank', type=int, default=0, help='local rank for distributed training (set by the launcher)')
        parser.add_argument('--seed', type=int, default=None, help='seed python, numpy and torch RNGs for a reproducible run')
        parser.add_argument('--channels_last', action='store_true', help='run the networks in channels-last memory format (faster convolutions on recent GPUs and oneDNN CPUs)')
        parser.add_argument('--compile', action='store_true', help='compile the networks with torch.compile (slow first iterations, faster after)')

        # input/output sizes
        parser.add_argument('--batchSize', type=int, default=1, help='input batch size')
        parser.add_argument('--loadSize', type=int, default=1024, help='scale images to this size')
        parser.add_argument('--fineSize', type=int, default=512, help='then crop to this size')
        parser.add_argument('--label_nc', type=int, default=35, help='# of input label channels; 0 means the input is an RGB image (folders *_A / *_B)')
        parser.add_argument('--input_nc', type=int, default=3, help='# of input image channels (used with --label_nc 0)')
        parser.add_argument('--output_nc', type=int, default=3, help='# of output image channels')

        # loading input
        parser.add_argument('--dataroot', type=str, default='./datasets/cityscapes/')
        parser.add_argument('--resize_or_crop', type=str, default='scale_width', choices=['resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none'], help='scaling and cropping of images at load time')
        parser.add_argument('--serial_batches', action='store_true', help='if true, takes images in order to make batches, otherwise takes them randomly')
        parser.add_argument('--no_flip', action='store_true', help='if specified, do not flip the images for data augmentation')
        parser.add_argument('--nThreads', default=2, type=int, help='# threads for loading data')
        parser.add_argument('--max_dataset_size', type=float, default=float("inf"), help='maximum number of samples allowed per dataset')

        # display
        parser.add_argument('--display_winsize', type=int, default=512, help='display window size')
        parser.add_argument('--tf_log', action='store_true', help='log scalars and images to TensorBoard under checkpoints/<name>/logs')

        # generator
        parser.add_argument('--netG', type=str, default='global', choices=['global', 'local'], help='selects model to use for netG')
        parser.add_argument('--ngf', type=int, default=64, help='# of gen filters in first conv layer')
        parser.add_argument('--n_downsample_global', type=int, default=4, help='number of downsampling layers in netG')
        parser.add_argument('--n_blocks_global', type=int, default=9, help='number of residual blocks in the global generator network')
        parser.add_argument('--n_blocks_local', type=int, default=3, help='number of residual blocks in the local enhancer network')
        parser.add_argument('--n_local_enhancers', type=int, default=1, help='number of local enhancers to use')
        parser.add_argument('--niter_fix_global', type=int, default=0, help='number of epochs that we only train the outmost local enhancer')

        # instance-wise features
        parser.add_argument('--no_instance', action='store_true', help='if specified, do *not* add instance map as input')
        parser.add_argument('--instance_feat', action='store_true', help='if specified, add encoded instance features as input')
        parser.add_argument('--label_feat', action='store_true', help='if specified, add encoded label features as input')
        parser.add_argument('--feat_num', type=int, default=3, help='vector length for encoded features')
        parser.add_argument('--load_features', action='store_true', help='if specified, load precomputed feature maps')
        parser.add_argument('--n_downsample_E', type=int, default=4, help='# of downsampling layers in encoder')
        parser.add_argument('--nef', type=int, default=16, help='# of encoder filters in the first conv layer')
        parser.add_argument('--n_clusters', type=int, default=10, help='number of clusters for features')
        return parser

    def make_parser(self) -> argparse.ArgumentParser:
        """A fresh parser with every flag of this options class."""
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        return self.initialize(parser)

    def explicit_flags(self, args: Optional[Sequence[str]]) -> set:
        """Names of the options the user set on the command line (as opposed to defaults)."""
        parser = self.make_parser()
        unset = object()  # not a string, so argparse does not type-convert it like a default
        parser.set_defaults(**{action.dest: unset for action in parser._actions})
        return {key for key, value in vars(parser.parse_args(args)).items() if value is not unset}

    def parse(self, args: Optional[Sequence[str]] = None, save: bool = True) -> argparse.Namespace:
        """Parse `args` (sys.argv when None), validate, resolve the device and save the options."""
        opt = self.make_parser().parse_args(args)
        opt.isTrain = self.isTrain
        opt.explicit = sorted(self.explicit_flags(args))
        if opt.fp16:
            opt.amp = 'fp16'
        self.inherit_saved_options(opt)
        opt.gpu_ids = resolve_gpu_ids(opt.gpu_ids)
        if len(opt.gpu_ids) > 1:
            if not launched_by_torchrun():
                raise OptionsError(f"--gpu_ids {','.join(map(str, opt.gpu_ids))}: train on several GPUs with one process per GPU through torchrun, "
                                   f"e.g. torchrun --nproc_per_node {len(opt.gpu_ids)} {os.path.basename(sys.argv[0])} ... (--batchSize is per process)")
        self.validate(opt)
        if save:
            self.print_options(opt)
            if opt.isTrain:
                save_options(opt)
        return opt

    def inherit_saved_options(self, opt: argparse.Namespace) -> None:
        """Hook for test-time option inheritance; training keeps the command line as given."""

    def validate(self, opt: argparse.Namespace) -> None:
        """Reject combinations of flags that cannot work, with a message naming the fix."""
        if opt.label_nc < 0:
            raise OptionsError(f"--label_nc {opt.label_nc} must be >= 0 (0 means RGB input images)")
        if opt.batchSize < 1:
            raise OptionsError(f"--batchSize {opt.batchSize} must be >= 1")
        if opt.netG == 'local' and opt.n_local_enhancers < 1:
            raise OptionsError("--netG local needs --n_local_enhancers >= 1")
        if opt.label_feat and opt.label_nc == 0:
            raise OptionsError("--label_feat needs a label map: it cannot be used with --label_nc 0")
        if opt.instance_feat and opt.no_instance:
            raise OptionsError("--instance_feat needs instance maps: remove --no_instance")
        for flag in ('which_epoch', 'phase'):
            # Both become parts of file names (checkpoints, dataset folders): keep them inside their folder.
            if not is_plain_name(str(getattr(opt, flag, 'x'))):
                raise OptionsError(f"--{flag} {getattr(opt, flag)!r} must be a plain name (no '/', '..' or absolute path)")
        if opt.tf_log and importlib.util.find_spec('tensorboard') is None:  # an optional install group
            raise OptionsError("--tf_log needs tensorboard, which is not installed: pip install '.[tensorboard]' (or tensorboard)")

    @staticmethod
    def print_options(opt: argparse.Namespace) -> None:
        """Print every option, marking the ones that differ from the default."""
        print(format_options(opt))


def resolve_gpu_ids(gpu_ids: Any) -> list:
    """Turn '--gpu_ids 0,1' into [0, 1]; fall back to CPU (with a message) when CUDA is absent."""
    if isinstance(gpu_ids, list):
        ids = gpu_ids
    else:
        try:
            ids = [int(part) for part in str(gpu_ids).split(',') if part.strip() != '']
        except ValueError:
            raise OptionsError(f"--gpu_ids {gpu_ids!r} must be comma-separated integers, e.g. 0 or 0,1 (use -1 for CPU)") from None
        ids = [i for i in ids if i >= 0]
    if ids and not torch.cuda.is_available():
        print(f"CUDA is not available: running on CPU instead of GPU {ids} (pass --gpu_ids -1 to silence this)")
        return []
    if ids and max(ids) >= torch.cuda.device_count():
        raise OptionsError(f"--gpu_ids {ids}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return ids


def format_options(opt: argparse.Namespace) -> str:
    """Human-readable dump of the options, in the reference's opt.txt layout."""
    lines = ['------------ Options -------------']
    for key, value in sorted(vars(opt).items()):
        if key == 'explicit':
            continue
        lines.append(f'{key}: {value}')
    lines.append('-------------- End ----------------')
    return '\n'.join(lines)


def experiment_dir(opt: argparse.Namespace) -> str:
    """checkpoints_dir/name, the folder of one experiment."""
    return os.path.join(opt.checkpoints_dir, opt.name)


def save_options(opt: argparse.Namespace) -> None:
    """Write opt.txt (for people) and opt.json (for test.py and the feature scripts)."""
    from util.util import atomic_write, mkdirs  # util imports torch-free helpers only

    expr_dir = experiment_dir(opt)
    mkdirs(expr_dir)
    text = format_options(opt) + '\n'
    atomic_write(os.path.join(expr_dir, 'opt.txt'), lambda tmp: _write_text(tmp, text))
    payload = {key: value for key, value in vars(opt).items() if key != 'explicit'}
    atomic_write(os.path.join(expr_dir, 'opt.json'), lambda tmp: _write_text(tmp, json.dumps(payload, indent=1, sort_keys=True)))


def _write_text(path: str, text: str) -> None:
    with open(path, 'w') as handle:
        handle.write(text)


def load_saved_options(expr_dir: str) -> Optional[dict]:
    """The options an experiment was trained with (opt.json), or None when there is none."""
    json_path = os.path.join(expr_dir, 'opt.json')
    if not os.path.isfile(json_path):
        return None
    try:
        with open(json_path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise OptionsError(f"{json_path}: cannot read the saved options ({error}); delete or fix the file") from None


def inherit_architecture(opt: argparse.Namespace, saved: dict, source: str) -> list:
    """Copy the saved architecture flags the user did not set explicitly; return what was taken."""
    taken = []
    for key in ARCHITECTURE_FLAGS:
        if key in saved and key not in opt.explicit and getattr(opt, key) != saved[key]:
            setattr(opt, key, saved[key])
            taken.append(f'--{key} {saved[key]}')
    if taken:
        print(f"Taking architecture flags from {source}: {' '.join(taken)}")
    return taken
