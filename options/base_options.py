"""Command-line options shared by training and testing, with the reference's names and defaults.

`parse()` is the one place where options are settled: it parses, takes saved architecture flags (test
time), derives every value computed from flags (device, feature use, size base, torchrun's device,
--debug and test-time overrides, ...), validates, and returns a read-only namespace. No module writes
to the options afterwards; `replace()` makes a changed copy where one is needed.
"""

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from util.cli import help_group
from util.distributed import launched_by_torchrun
from util.errors import OptionsError
from util.records import experiment_dir, load_saved_options, save_options, saved_architecture_flags

__all__ = [
    'BaseOptions',
    'FrozenOptions',
    'OptionsError',
    'check_writable',
    'experiment_dir',
    'inherit_architecture',
    'is_plain_name',
    'load_saved_options',
    'replace',
    'resolve_gpu_ids',
    'save_options',
]

# Help sections, in the order `--help` shows them.
GROUPS = (
    'experiment',
    'data',
    'generator',
    'discriminator and losses',
    'instance features',
    'training schedule',
    'logging and saving',
    'device and speed',
    'test time',
)


class FrozenOptions(argparse.Namespace):
    """Options after parse(): reading works as on any namespace, assigning raises."""

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"options are read-only after parsing: cannot set opt.{key} (derive it in options/ at parse time, "
            f"or make a changed copy with options.base_options.replace)"
        )

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"options are read-only after parsing: cannot delete opt.{key}")


def freeze(opt: argparse.Namespace) -> FrozenOptions:
    """A read-only copy of `opt`."""
    frozen = FrozenOptions()
    frozen.__dict__.update(vars(opt))
    return frozen


def replace(opt: argparse.Namespace, **changes: Any) -> FrozenOptions:
    """A read-only copy of `opt` with some values changed (for tools and tests that vary one setting)."""
    thawed = argparse.Namespace(**vars(opt))
    for key, value in changes.items():
        setattr(thawed, key, value)
    return freeze(thawed)


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
        raise OptionsError(
            f"cannot write to {folder} ({error.strerror or error}); fix its permissions or free space, or choose another {flag}"
        ) from None


class SummaryFirstParser(argparse.ArgumentParser):
    """A parser whose --help opens with one line saying what the script does (the usage line, which would
    otherwise list some hundred flags, is kept short)."""

    def __init__(self, summary: str = '', **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary = summary

    def format_help(self) -> str:
        """The summary line, then argparse's help."""
        return f'{self.summary}\n\n{super().format_help()}' if self.summary else super().format_help()


class BaseOptions:
    """Builds the parser, parses, settles every derived value, validates and writes opt.txt / opt.json."""

    # What --help says after the usage line; entry points pass their own first docstring line.
    epilog = ''
    # Whether the script reads the real photos of its phase (the feature scripts encode them; test.py: as a method says).
    reads_photos = False

    def __init__(self, description: str = '', methods: Mapping[str, Any] | None = None) -> None:
        """`methods`: --model name -> the method module (models.METHODS, the first its default): options/ knows no
        method's flags, each adds its own (add_flags) and settles what follows from them (derive, validate)."""
        if not methods:
            raise TypeError('the options need the registry of methods: pass models.METHODS')
        self.isTrain = False
        self.description = description
        self.methods: Mapping[str, Any] = methods
        # The --model this parse is for: its flags are added to the parser (settled by parse()).
        self.model = self.default_model

    @property
    def default_model(self) -> str:
        """--model when none is given: the registry's first method."""
        return next(iter(self.methods))

    @property
    def method(self) -> Any:
        """The chosen model's record (models/common/method.py's Method: add_flags, defaults, architecture_options, ...)."""
        return self.methods[self.model]

    @staticmethod
    def group(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
        """The parser's help section `title` (one of GROUPS), created on first use."""
        return help_group(parser, title)

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the flags common to train.py and test.py."""
        for title in GROUPS:  # fixed order of the help sections, whichever flags come first
            self.group(parser, title)
        add = self.group(parser, 'experiment').add_argument
        add(
            '--name',
            type=_check_name,
            default='label2city',
            help='name of the experiment: checkpoints go to <checkpoints_dir>/<name>, results to <results_dir>/<name>',
        )
        add(
            '--checkpoints_dir', type=str, default='./checkpoints', help='folder of the experiments (weights, options, logs, training page)'
        )
        add(
            '--model',
            type=str,
            default=self.default_model,
            choices=list(self.methods),
            help=f'the method: {", ".join(self.methods)}; `--model NAME --help` lists its own flags with the shared ones',
        )
        add('--seed', type=int, default=None, help='seed python, numpy and torch RNGs for a reproducible run')
        add('--verbose', action='store_true', default=False, help='print the networks and their parameter counts')

        add = self.group(parser, 'data').add_argument
        add(
            '--dataroot',
            type=str,
            default='./datasets/cityscapes/',
            help='dataset folder with <phase>_label/, <phase>_inst/, <phase>_img/ (or <phase>_A/, <phase>_B/ with --label_nc 0)',
        )
        add(
            '--label_nc',
            type=int,
            default=35,
            help='number of label classes (pixel values 0..label_nc-1); 0 means the input is an RGB image (folders <phase>_A / <phase>_B)',
        )
        add('--input_nc', type=int, default=3, help='number of input image channels (used with --label_nc 0)')
        add('--output_nc', type=int, default=3, help='number of output image channels')
        add('--batchSize', type=int, default=1, help='input batch size (per process under torchrun)')
        add('--loadSize', type=int, default=1024, help='scale images to this size (the width under scale_width)')
        add('--fineSize', type=int, default=512, help='then crop to this size (modes with "crop")')
        add(
            '--resize_or_crop',
            type=str,
            default='scale_width',
            choices=['resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none'],
            help='scaling and cropping of images at load time',
        )
        add('--serial_batches', action='store_true', help='take images in sorted order instead of shuffling')
        add('--no_flip', action='store_true', help='do not flip images horizontally for data augmentation')
        add('--nThreads', default=2, type=int, help='number of data-loading worker processes')
        add('--max_dataset_size', type=float, default=float("inf"), help='use at most this many samples (the first in sorted order)')
        add('--no_instance', action='store_true', help='do not add the instance map (its edge map) as input')

        add = self.group(parser, 'generator').add_argument
        add('--netG', type=str, default=None, help="the generator's architecture (the method lists its choices)")
        add('--ngf', type=int, default=64, help='number of generator filters in the first conv layer')
        add(
            '--norm',
            type=str,
            default='instance',
            choices=['instance', 'batch'],
            help='normalisation layers: instance or batch normalisation',
        )

        add = self.group(parser, 'logging and saving').add_argument
        add('--display_winsize', type=int, default=512, help='kept for script compatibility: images are shown at their real size')
        add('--tf_log', action='store_true', help='log scalars and images to TensorBoard under <checkpoints_dir>/<name>/logs')

        add = self.group(parser, 'device and speed').add_argument
        add('--gpu_ids', type=str, default='0', help='GPU ids, e.g. 0 (several GPUs: one process each through torchrun); -1 for the CPU')
        add(
            '--data_type',
            default=32,
            type=int,
            choices=[8, 16, 32],
            help='16: half-precision autocast at test time (CUDA); 32: float32; 8 was TensorRT-only in the reference',
        )
        add('--fp16', action='store_true', default=False, help='train with automatic mixed precision in float16 (same as --amp fp16)')
        add(
            '--amp',
            type=str,
            default='off',
            choices=['off', 'bf16', 'fp16'],
            help='automatic mixed precision: off (float32, faithful), bf16 or fp16',
        )
        add(
            '--local_rank',
            type=int,
            default=0,
            help='kept for script compatibility (torch.distributed.launch passes it); the device comes from torchrun\'s LOCAL_RANK',
        )
        add(
            '--channels_last',
            action='store_true',
            help='channels-last memory format (faster convolutions on some GPUs; measure with scripts/benchmark.py)',
        )
        add('--compile', action='store_true', help='compile the networks with torch.compile (slow first iterations, faster after)')
        add(
            '--instance_norm_impl',
            default='native',
            choices=['native', 'decomposed'],
            help="InstanceNorm's kernel: native (PyTorch's, NCHW inside) or decomposed (a reduction and elementwise "
            'arithmetic that keep --channels_last tensors channels-last; the same values up to float rounding)',
        )
        add(
            '--compile_mode',
            default='default',
            choices=['default', 'reduce-overhead', 'max-autotune'],
            help="torch.compile's mode with --compile: reduce-overhead replays CUDA graphs (fewer kernel launches on a GPU)",
        )
        add(
            '--cpu_threads',
            type=int,
            default=0,
            help="threads of this process's CPU operations (0: one per core, as PyTorch sets it); on a machine busy with "
            'other work fewer threads than cores are often much faster (docs/TROUBLESHOOTING.md)',
        )
        return parser

    def make_parser(self) -> argparse.ArgumentParser:
        """A fresh parser with every flag of this options class."""
        parser = self.initialize(
            SummaryFirstParser(
                summary=self.description,
                usage='%(prog)s [flags]',
                epilog=self.epilog or None,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            )
        )
        if self.model in self.methods:  # an unknown --model: argparse refuses it, naming the choices
            self.method.add_flags(parser, self.isTrain)
            # --model's default is the chosen one: test.py's may come from opt.json (TestOptions.choose_model).
            parser.set_defaults(model=self.model, **self.method.defaults)
        return parser

    def choose_model(self, args: Sequence[str] | None) -> str:
        """The --model of the command line (the registry's first when absent), read before the full parser is built."""
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument('--model', type=str, default=self.default_model)
        return parser.parse_known_args(args)[0].model

    def explicit_flags(self, args: Sequence[str] | None) -> set:
        """Names of the options the user set on the command line (as opposed to defaults)."""
        parser = self.make_parser()
        unset = object()  # not a string, so argparse does not type-convert it like a default
        parser.set_defaults(**{action.dest: unset for action in parser._actions})
        return {key for key, value in vars(parser.parse_args(args)).items() if value is not unset}

    def parse(self, args: Sequence[str] | None = None, save: bool = True) -> FrozenOptions:
        """Parse `args` (sys.argv when None), settle and validate every option; print and save them when `save`."""
        self.model = self.choose_model(args)
        parser = self.make_parser()
        opt, unknown = parser.parse_known_args(args)
        if unknown:
            self.refuse_unknown(parser, unknown)
        opt.isTrain = self.isTrain
        opt.explicit = sorted(self.explicit_flags(args))
        self.inherit_saved_options(opt)
        self.derive(opt)
        self.validate(opt)
        opt = freeze(opt)
        if save:
            self.print_options(opt)
            if opt.isTrain:
                save_options(opt)
        return opt

    def refuse_unknown(self, parser: argparse.ArgumentParser, unknown: Sequence[str]) -> None:
        """A flag of another method gets one line naming its method; anything else argparse's own error."""
        chosen = self.model
        for arg in unknown:
            flag = arg.split('=')[0]
            owners = []
            for name in self.methods:
                if name != chosen:
                    self.model = name
                    if flag in {string for action in self.make_parser()._actions for string in action.option_strings}:
                        owners.append(name)
            self.model = chosen
            if owners:
                raise OptionsError(
                    f"{flag} is a flag of --model {' and '.join(owners)}, not of --model {chosen}: drop it, or pass --model {owners[0]}"
                )
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    def inherit_saved_options(self, opt: argparse.Namespace) -> None:
        """Hook for test-time option inheritance; training keeps the command line as given."""

    def read_saved_options(self, expr_dir: str, keys: Sequence[str]) -> dict | None:
        """The experiment's opt.json (None when absent), its values of `keys` checked by the command line's types and choices."""
        saved = load_saved_options(expr_dir)
        if saved is not None:
            self.check_saved_values(saved, keys, os.path.join(expr_dir, 'opt.json'))
        return saved

    def read_architecture_flags(self, expr_dir: str) -> tuple[dict, str] | None:
        """({'model', architecture flag: value}, its file) as the experiment recorded its networks: architecture.json,
        or opt.json for an experiment written before the record carried its flags; checked like the command line."""
        found = saved_architecture_flags(expr_dir)
        if found is not None:
            self.check_saved_values(found[0], self.method.architecture_options, found[1])
        return found

    def check_saved_values(self, saved: dict, keys: Sequence[str], path: str) -> None:
        """Refuse, naming the file, a saved value of `keys` that the command line's types and choices would refuse."""
        actions = {action.dest: action for action in self.make_parser()._actions}
        for key in keys:
            if key in saved and key in actions:
                problem = saved_value_problem(actions[key], saved[key])
                if problem:
                    raise OptionsError(
                        f'{path}: "{key}": {json.dumps(saved[key])} is not a valid value: '
                        f'--{key} {problem}; fix the value, or delete the file and give the flags on the command line'
                    )

    def derive(self, opt: argparse.Namespace) -> None:
        """Settle every value computed from the flags, once, before the options are frozen."""
        if opt.fp16:
            opt.amp = 'fp16'
        # What every method has, a method's derive() may change: whether G takes encoded per-object features (styles),
        # how many variants test.py synthesizes per input, whether the real photos are read at test time.
        opt.use_features = False
        opt.n_variants = 1
        opt.reads_photos = self.reads_photos
        self.method.derive(opt)
        # What both sides of an input must be a multiple of (pix2pixHD's downsamplings, pix2pix's U-Net, CRN's cascade).
        opt.size_base = self.method.size_base(opt)
        # torchrun describes the process group in the environment; one process per GPU, at LOCAL_RANK.
        opt.world_size = int(os.environ.get('WORLD_SIZE', '1'))
        opt.rank = int(os.environ.get('RANK', '0'))
        opt.gpu_ids = resolve_gpu_ids(opt.gpu_ids)
        if len(opt.gpu_ids) > 1 and not launched_by_torchrun():
            raise OptionsError(
                f"--gpu_ids {','.join(map(str, opt.gpu_ids))}: train on several GPUs with one process per GPU through torchrun, "
                f"e.g. torchrun --nproc_per_node {len(opt.gpu_ids)} {os.path.basename(sys.argv[0])} ... (--batchSize is per process)"
            )
        if opt.world_size > 1 and opt.gpu_ids:
            opt.gpu_ids = [int(os.environ.get('LOCAL_RANK', '0'))]
        opt.device = f'cuda:{opt.gpu_ids[0]}' if opt.gpu_ids else 'cpu'

    def validate(self, opt: argparse.Namespace) -> None:
        """Reject combinations of flags that cannot work, with a message naming the fix."""
        if opt.label_nc < 0:
            raise OptionsError(f"--label_nc {opt.label_nc} must be >= 0 (0 means RGB input images)")
        if opt.batchSize < 1:
            raise OptionsError(f"--batchSize {opt.batchSize} must be >= 1")
        if opt.cpu_threads < 0:
            raise OptionsError(f"--cpu_threads {opt.cpu_threads} must be >= 0 (0: PyTorch's default)")
        if opt.compile_mode != 'default' and not opt.compile:
            raise OptionsError(f"--compile_mode {opt.compile_mode} is torch.compile's mode: add --compile, or leave it out")
        self.method.validate(opt)
        for flag in ('which_epoch', 'phase'):
            # Both become parts of file names (checkpoints, dataset folders): keep them inside their folder.
            if not is_plain_name(str(getattr(opt, flag, 'x'))):
                raise OptionsError(f"--{flag} {getattr(opt, flag)!r} must be a plain name (no '/', '..' or absolute path)")
        if opt.tf_log and importlib.util.find_spec('tensorboard') is None:  # an optional install group
            raise OptionsError("--tf_log needs tensorboard, which is not installed: pip install '.[tensorboard]' (or tensorboard)")

    def print_options(self, opt: argparse.Namespace) -> None:
        """Print the flags whose values differ from their defaults (opt.txt, written when training starts, has all)."""
        defaults = {action.dest: action.default for action in self.make_parser()._actions}
        changed = {key: value for key, value in sorted(vars(opt).items()) if key in defaults and value != defaults[key]}
        print(
            f'------------ Options (those not at their defaults; all of them: {experiment_dir(opt)}/opt.txt) -------------\n'
            + ''.join(f'{key}: {value}\n' for key, value in changed.items())
            + '-------------- End ----------------'
        )


def saved_value_problem(action: argparse.Action, value: Any) -> str | None:
    """Why a value read from opt.json would not pass the command line's rules for `action`; None when it would."""
    if action.nargs == 0:  # store_true / store_false
        return None if isinstance(value, bool) else 'is a switch: the saved value must be true or false'
    if value is None and action.default is None:  # a flag the saved run's method left unset (CRN's --netG)
        return None
    accepted: tuple[type, ...] = (str,)
    kind = 'a string'
    if action.type is int:
        accepted, kind = (int,), 'an integer'
    elif action.type is float:
        accepted, kind = (int, float), 'a number'
    if isinstance(value, bool) or not isinstance(value, accepted):
        return f'takes {kind}'
    if callable(action.type) and action.type not in (str, int, float):
        try:
            action.type(str(value))  # the flag's own check (a custom type takes a string), e.g. --name's plain-name rule
        except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
            return str(error)
    if action.choices is not None and value not in action.choices:
        return f"takes one of {', '.join(map(str, action.choices))}"
    return None


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


def inherit_architecture(opt: argparse.Namespace, saved: dict, source: str, flags: Sequence[str]) -> list:
    """Copy the saved architecture `flags` the user did not set explicitly; return what was taken."""
    taken = []
    for key in flags:
        # A flag of training only (pix2pix's D shape) is absent from test.py's options: it is taken as saved.
        if key in saved and key not in opt.explicit and getattr(opt, key, None) != saved[key]:
            setattr(opt, key, saved[key])
            taken.append(f'--{key} {saved[key]}')
    if taken:
        print(f"Taking architecture flags from {source}: {' '.join(taken)}")
    return taken
