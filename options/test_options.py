"""Test flags, with the reference's names and defaults, and option inheritance from training."""
import argparse

from .base_options import BaseOptions, experiment_dir, inherit_architecture, load_saved_options


class TestOptions(BaseOptions):
    """Options of test.py (and of the feature scripts, which also run a trained model)."""

    __test__ = False  # tells pytest this is not a test class despite its name

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the test flags to the common ones."""
        parser = super().initialize(parser)
        parser.add_argument('--ntest', type=float, default=float("inf"), help='# of test examples.')
        parser.add_argument('--results_dir', type=str, default='./results/', help='saves results here.')
        parser.add_argument('--aspect_ratio', type=float, default=1.0, help='aspect ratio of result images')
        parser.add_argument('--phase', type=str, default='test', help='train, val, test, etc')
        parser.add_argument('--which_epoch', type=str, default='latest', help='which epoch to load? set to latest to use latest cached model')
        parser.add_argument('--how_many', type=int, default=50, help='how many test images to run')
        parser.add_argument('--cluster_path', type=str, default='features_clustered_010.npy', help='the path for clustered results of encoded features')
        parser.add_argument('--use_encoded_image', action='store_true', help='if specified, encode the real image to get the feature map')
        parser.add_argument('--export_onnx', type=str, help='export the generator to this ONNX file and exit')
        return parser

    def inherit_saved_options(self, opt: argparse.Namespace) -> None:
        """Take the architecture flags from the experiment's opt.json unless set on the command line."""
        expr_dir = experiment_dir(opt)
        saved = load_saved_options(expr_dir)
        if saved is None:
            print(f"No saved options in {expr_dir}/opt.json: using the command-line architecture flags as given")
            return
        inherit_architecture(opt, saved, f"{expr_dir}/opt.json")

    def validate(self, opt: argparse.Namespace) -> None:
        """Test-time runs one image at a time, in order, without augmentation (as the reference)."""
        super().validate(opt)
        opt.nThreads = 1
        opt.batchSize = 1
        opt.serial_batches = True
        opt.no_flip = True
