"""Test flags, with the reference's names and defaults, and option inheritance from training."""

import argparse
import os
from collections.abc import Sequence

from util.records import saved_architecture_flags

from .base_options import BaseOptions, OptionsError, experiment_dir, inherit_architecture, is_plain_name

# How the model saw its data: test time reads it the same way unless told otherwise (the label layout is the
# architecture's, taken with it) ...
DATA_FLAGS = ('loadSize', 'fineSize', 'resize_or_crop')
# ... but synthesizes whole images where pix2pixHD's training cropped them (as its test recipes do); pix2pix's
# resize_and_crop stays, as its authors test.
WHOLE_IMAGE_MODES = {'crop': 'none', 'scale_width_and_crop': 'scale_width'}


class TestOptions(BaseOptions):
    """Options of test.py (and of the feature scripts and the editor, which also run a trained model)."""

    __test__ = False  # tells pytest this is not a test class despite its name

    @property
    def epilog(self) -> str:  # type: ignore[override]
        """What --help says about inherited flags, for the chosen model."""
        flags = ', '.join('--' + flag for flag in ('model', *self.method.architecture_options))
        return (
            f'The architecture flags ({flags}) are taken from <checkpoints_dir>/<name>/architecture.json, the record of '
            'the networks the experiment was trained with (opt.json for an experiment written before it), unless given on '
            'the command line.'
        )

    def choose_model(self, args: Sequence[str] | None) -> str:
        """--model as given, else the one the experiment recorded (architecture.json, or an older one's opt.json), else
        the registry's first."""
        parser = argparse.ArgumentParser(add_help=False)
        for flag, default in (('--model', None), ('--name', 'label2city'), ('--checkpoints_dir', './checkpoints')):
            parser.add_argument(flag, type=str, default=default)
        known = parser.parse_known_args(args)[0]
        if known.model is not None or not is_plain_name(known.name):  # a bad --name: the full parser names it
            return known.model or self.default_model
        expr_dir = os.path.join(known.checkpoints_dir, known.name)
        saved, source = saved_architecture_flags(expr_dir) or ({}, '')
        model = saved.get('model', self.default_model)
        if model not in self.methods:
            raise OptionsError(f'{source}: "model": {model!r} is not one of {", ".join(self.methods)}; fix the value, or pass --model')
        if model != self.default_model:
            print(f"Taking --model {model} from {source}")
        return model

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the test flags to the common ones."""
        parser = super().initialize(parser)
        add = self.group(parser, 'test time').add_argument
        add('--ntest', type=float, default=float("inf"), help='maximum number of test examples (also see --how_many)')
        add('--results_dir', type=str, default='./results/', help='results pages go to <results_dir>/<name>/<phase>_<which_epoch>/')
        add('--aspect_ratio', type=float, default=1.0, help='kept for script compatibility: results keep their real aspect ratio')
        add('--phase', type=str, default='test', help='dataset split to read: <dataroot>/<phase>_label etc.')
        add('--which_epoch', type=str, default='latest', help='checkpoint to load: latest or an epoch number')
        add('--how_many', type=int, default=50, help='how many test images to run')
        add('--export_onnx', type=str, help='export the generator to this ONNX file, verify it against PyTorch and exit')
        add(
            '--relabel',
            type=str,
            default='',
            help='change classes before synthesis, e.g. 21:11 turns vegetation into building (instances keep their index)',
        )
        return parser

    def inherit_saved_options(self, opt: argparse.Namespace) -> None:
        """Take the architecture flags from the experiment's record (architecture.json; opt.json for an experiment
        written before the record had them) unless set on the command line."""
        expr_dir = experiment_dir(opt)
        found = self.read_architecture_flags(expr_dir)
        if found is None:
            print(f"No record of the networks in {expr_dir} (architecture.json, opt.json): using the architecture flags as given")
            return
        inherit_architecture(opt, found[0], found[1], self.method.architecture_options)
        self.inherit_data_flags(opt, expr_dir)

    def inherit_data_flags(self, opt: argparse.Namespace, expr_dir: str) -> None:
        """Read the data as the model was trained on it (DATA_FLAGS from opt.json) unless given; say what was taken, and
        name a given flag that differs from training."""
        saved = self.read_saved_options(expr_dir, DATA_FLAGS) or {}
        taken, differing = [], []
        for flag in (flag for flag in DATA_FLAGS if flag in saved and saved[flag] != getattr(opt, flag)):
            if flag in opt.explicit:
                differing.append(f'--{flag} {getattr(opt, flag)} (trained with {saved[flag]})')
            else:
                value = WHOLE_IMAGE_MODES.get(saved[flag], saved[flag]) if flag == 'resize_or_crop' else saved[flag]
                setattr(opt, flag, value)
                whole = f' (trained with {saved[flag]}: whole images at test time)' if value != saved[flag] else ''
                taken.append(f'--{flag} {value}{whole}')
        if taken:
            print(f"Taking the data flags it was trained with from {expr_dir}/opt.json: {' '.join(taken)}")
        if differing:
            print(f"Given data flags that differ from training ({expr_dir}/opt.json): {'; '.join(differing)}")

    def derive(self, opt: argparse.Namespace) -> None:
        """Test time runs one image at a time, in order, without augmentation (as the reference)."""
        super().derive(opt)
        opt.nThreads = 1
        opt.batchSize = 1
        opt.serial_batches = True
        opt.no_flip = True


class FeatureOptions(TestOptions):
    """Options of encode_features.py and precompute_feature_maps.py: a trained E run over real photos."""

    reads_photos = True  # photos are read to be encoded

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Test flags, with --phase train (features come from the training set)."""
        parser = super().initialize(parser)
        parser.set_defaults(phase='train')
        return parser

    def validate(self, opt: argparse.Namespace) -> None:
        """The experiment must have an encoder."""
        super().validate(opt)
        if not opt.use_features:
            raise OptionsError(
                f"experiment {opt.name} has no feature encoder: its --model {opt.model} was trained without encoded features"
            )
