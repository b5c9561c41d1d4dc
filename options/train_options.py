"""Training flags, with the reference's names and defaults."""

import argparse
import math
import os
from collections.abc import Mapping
from typing import Any

from util.checkpoint import checkpoint_file
from util.distributed import elastic_restart
from util.records import differing_flags

from .base_options import BaseOptions, OptionsError, experiment_dir, saved_value_problem

MUST, MAY, RESTORED = 'must match', 'may change', 'restored'
MUST_MATCH_NOTE = 'the saved networks depend on it'
# Flags --continue_train does not take from opt.json: what to resume, and this machine's devices.
NOT_RESUMED = ('continue_train', 'which_epoch', 'name', 'checkpoints_dir', 'gpu_ids', 'local_rank', 'cpu_threads')
_DATA = 'the data loader reads with it from now on; the epoch position is kept'
_LOG = 'logging and saving follow it from now on'
_SPEED = 'takes effect now; the weights are the same'
# What --continue_train does with each flag whose value differs from the saved opt.json: refuse the resume
# (must match: the networks or the run's identity depend on it), accept it with the note (may change), or
# say that the checkpoint's saved state is used instead (restored). A note '' is a flag that is not compared:
# it selects what to resume rather than how to train. These are the shared flags' rules; resume_policy() adds the
# chosen method's (its architecture flags must match, its other flags as its RESUME_POLICY says).
RESUME_POLICY = {
    'name': (MAY, ''),  # name and checkpoints_dir found the saved opt.json: the same folder by construction
    'checkpoints_dir': (MAY, ''),
    'model': (MUST, MUST_MATCH_NOTE),
    **{flag: (MUST, MUST_MATCH_NOTE) for flag in ('label_nc', 'input_nc', 'output_nc', 'netG', 'ngf', 'norm', 'no_instance')},
    **{flag: (MUST, MUST_MATCH_NOTE) for flag in ('ndf', 'n_layers_D')},
    'seed': (RESTORED, 'not used: the RNG states are restored from the checkpoint'),
    'continue_train': (MAY, ''),
    'which_epoch': (MAY, ''),
    'load_pretrain': (MAY, 'ignored: --continue_train loads the experiment\'s own weights'),
    'verbose': (MAY, 'only changes what is printed'),
    'dataroot': (MAY, _DATA),
    'phase': (MAY, _DATA),
    'batchSize': (MAY, 'the run resumes at the last whole batch of the new size'),
    'accum_steps': (MAY, 'the run resumes at the last whole step of the new size'),
    'loadSize': (MAY, _DATA),
    'fineSize': (MAY, _DATA),
    'resize_or_crop': (MAY, _DATA),
    'serial_batches': (MAY, _DATA),
    'no_flip': (MAY, _DATA),
    'nThreads': (MAY, _DATA),
    'max_dataset_size': (MAY, _DATA),
    'vgg_weights': (MAY, 'the VGG loss uses these weights from the next iteration'),
    'pool_size': (MAY, 'the image pool starts empty with the new size'),
    'niter': (MAY, 'the lr schedule is recomputed from --lr/--niter/--niter_decay at the resumed epoch'),
    'niter_decay': (MAY, 'the lr schedule is recomputed from --lr/--niter/--niter_decay at the resumed epoch'),
    'lr': (MAY, 'the lr schedule is recomputed from --lr/--niter/--niter_decay at the resumed epoch'),
    'beta1': (MAY, "Adam's beta1 changes from the next step; its moments are kept"),
    'display_winsize': (MAY, 'only changes how the page shows images'),
    'tf_log': (MAY, _LOG),
    'display_freq': (MAY, _LOG),
    'print_freq': (MAY, _LOG),
    'save_latest_freq': (MAY, _LOG),
    'save_epoch_freq': (MAY, _LOG),
    'no_html': (MAY, _LOG),
    'no_divergence_check': (MAY, _LOG),
    'debug': (MAY, 'its overrides (--niter, --niter_decay, --max_dataset_size, frequencies) are compared one by one'),
    'gpu_ids': (MAY, 'the weights and optimiser state move to the new device'),
    'local_rank': (MAY, ''),
    'data_type': (MAY, 'only used at test time'),
    'fp16': (MAY, 'see --amp'),
    'amp': (MAY, 'the precision changes from the next step (fp16: a fresh GradScaler where the saved run had none)'),
    'channels_last': (MAY, _SPEED),
    'compile': (MAY, _SPEED),
    'compile_mode': (MAY, _SPEED),
    'instance_norm_impl': (MAY, _SPEED),
    'cpu_threads': (MAY, _SPEED),
}


def resume_policy(method: Any) -> dict:
    """RESUME_POLICY with the rules of a model's own flags: its architecture flags must match, the rest as it says."""
    return {**RESUME_POLICY, **{flag: (MUST, MUST_MATCH_NOTE) for flag in method.architecture_options}, **method.resume_policy}


def resume_changes(saved: dict, opt: argparse.Namespace, policy: dict | None = None) -> dict:
    """{flag: (saved value, value now)} of the compared flags (of `policy`, default RESUME_POLICY) whose value differs."""
    return {
        flag: (saved[flag], getattr(opt, flag))
        for flag, (_, note) in (policy or RESUME_POLICY).items()
        if note and flag in saved and hasattr(opt, flag) and saved[flag] != getattr(opt, flag)
    }


class TrainOptions(BaseOptions):
    """Options of train.py."""

    def __init__(self, description: str = '', methods: Mapping[str, Any] | None = None) -> None:
        super().__init__(description, methods)
        self.isTrain = True

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the training flags to the common ones."""
        parser = super().initialize(parser)
        add = self.group(parser, 'logging and saving').add_argument
        add('--display_freq', type=int, default=100, help='show training results on the training page every this many images')
        add(
            '--print_freq',
            type=int,
            default=100,
            help='print and log the losses every this many images (rounded up to a multiple of --batchSize)',
        )
        add('--save_latest_freq', type=int, default=1000, help='save the latest checkpoint every this many images')
        add('--save_epoch_freq', type=int, default=10, help='save a checkpoint at the end of every this many epochs')
        add('--no_html', action='store_true', help='do not save intermediate training results to <checkpoints_dir>/<name>/web/')
        add('--debug', action='store_true', help='one epoch on 10 images, printing and displaying every iteration')
        add(
            '--no_divergence_check',
            action='store_true',
            help='do not warn when a printed loss or a network\'s largest weight rises above 1000x its recent median',
        )

        add = self.group(parser, 'training schedule').add_argument
        add(
            '--continue_train',
            action='store_true',
            help='resume from the checkpoint --which_epoch (iter.txt, weights, optimisers, lr, RNGs)',
        )
        add('--load_pretrain', type=str, default='', help='folder of a pretrained experiment: copy every tensor whose key and shape match')
        add(
            '--which_epoch',
            type=str,
            default='latest',
            help='checkpoint to load with --continue_train or --load_pretrain: latest or an epoch number',
        )
        add('--phase', type=str, default='train', help='dataset split to read: <dataroot>/<phase>_label etc.')
        add('--niter', type=int, default=100, help='number of epochs at the starting learning rate')
        add('--niter_decay', type=int, default=100, help='number of epochs to linearly decay the learning rate to zero')
        add(
            '--accum_steps',
            type=int,
            default=1,
            help='gradient accumulation: one optimiser step per this many batches (K batches of B train like one of K*B)',
        )
        add('--beta1', type=float, default=0.5, help='momentum term of Adam')
        add('--lr', type=float, default=0.0002, help='initial learning rate for Adam')

        add = self.group(parser, 'discriminator and losses').add_argument
        add('--n_layers_D', type=int, default=3, help='number of stride-2 conv layers in each discriminator')
        add('--ndf', type=int, default=64, help='number of discriminator filters in the first conv layer')
        add(
            '--vgg_weights',
            type=str,
            default='',
            help='torchvision VGG19 state_dict file for the VGG loss; empty: torchvision\'s ImageNet download',
        )
        add('--pool_size', type=int, default=0, help='size of the buffer of previously generated images shown to D (0: none)')
        return parser

    def derive(self, opt: argparse.Namespace) -> None:
        """Training's derived values: --print_freq in whole batches, and the --debug overrides."""
        super().derive(opt)
        # Steps count images, so printing must fall on a multiple of the batch size to ever happen.
        opt.print_freq = math.lcm(opt.print_freq, opt.batchSize * max(opt.accum_steps, 1))
        if elastic_restart() and not opt.continue_train and checkpoint_file(experiment_dir(opt), 'iter.txt') is not None:
            # torchrun --max-restarts restarted the workers after one failed: every rank resumes from the last
            # committed `latest` checkpoint (the set iter.txt belongs to), without a human adding the flag.
            print(f'torchrun restart {elastic_restart()}: resuming from the last committed checkpoint (--continue_train)')
            opt.continue_train = True
            opt.which_epoch = 'latest'
        if opt.debug:
            opt.display_freq = opt.print_freq = 1
            opt.niter, opt.niter_decay = 1, 0
            opt.max_dataset_size = 10

    def inherit_saved_options(self, opt: argparse.Namespace) -> None:
        """--continue_train starts from the options the run was saved with (opt.json) and applies the flags given on its
        command line; the device flags are this machine's, and a switch that may change (--compile, --tf_log,
        --fp16, ...) is as given, since a saved one could not be turned off."""
        if not opt.continue_train:
            return
        saved = self.read_saved_options(experiment_dir(opt), ()) or {}
        if saved.get('model', self.default_model) != opt.model:
            return  # check_resume refuses it, naming the model
        actions = {action.dest: action for action in self.make_parser()._actions}
        policy = resume_policy(self.method)
        for key, value in saved.items():
            if key not in actions or key in opt.explicit or key in NOT_RESUMED or saved_value_problem(actions[key], value):
                continue
            if actions[key].nargs == 0 and policy.get(key, (MAY,))[0] == MAY:
                continue  # a switch that may change is as given: no command line can turn a saved one off
            setattr(opt, key, value)

    def check_resume(self, opt: argparse.Namespace) -> None:
        """--continue_train's one compatibility check: the model and the architecture flags as the experiment recorded its
        networks (architecture.json; opt.json for an experiment written before it), the other flags that must match as
        opt.json has them; every differing flag named in one refusal."""
        expr_dir = experiment_dir(opt)
        architecture, source = self.read_architecture_flags(expr_dir) or ({}, os.path.join(expr_dir, 'opt.json'))
        saved_model = architecture.get('model', self.default_model)  # an experiment saved before --model existed
        if saved_model != opt.model:  # before its flags are compared: they are another model's
            raise OptionsError(
                f"--continue_train: {source} was saved with --model {saved_model}, not {opt.model}; "
                f"pass --model {saved_model}, or train from scratch under another --name"
            )
        must_match = [flag for flag, (kind, _) in resume_policy(self.method).items() if kind == MUST]
        saved = self.read_saved_options(expr_dir, must_match) or {}
        # The architecture flags from the record of the networks, the rest from opt.json.
        saved.update({flag: architecture[flag] for flag in self.method.architecture_options if flag in architecture})
        differing = differing_flags(saved, opt, must_match)
        if differing:
            files = ' and '.join(dict.fromkeys([os.path.basename(source), 'opt.json']))
            raise OptionsError(
                f"--continue_train: {expr_dir} was saved with other flags ({files}): {'; '.join(differing)}; "
                f"pass the saved values, or train from scratch under another --name"
            )

    def validate(self, opt: argparse.Namespace) -> None:
        """A resumed run must match the run it resumes in the flags RESUME_POLICY says must match (all named at
        once); every other differing flag is printed with what takes effect."""
        super().validate(opt)
        if opt.accum_steps < 1:
            raise OptionsError(f"--accum_steps {opt.accum_steps} must be >= 1 (1: a step per batch)")
        if opt.continue_train:
            self.check_resume(opt)
            policy = resume_policy(self.method)
            for flag, (before, now) in resume_changes(self.read_saved_options(experiment_dir(opt), ()) or {}, opt, policy).items():
                kind, note = policy[flag]
                print(f"--continue_train: --{flag} {before} -> {now} ({kind}): {note}")
