"""CRN's flags and its architecture value: everything that fixes the generator's shapes, derived once from the options."""

import argparse
import math
from dataclasses import dataclass, fields

from util.errors import ModelError, OptionsError

from ..common.method import ArchitectureRecord, arch_field

# The Cityscapes layout of the official code: one channel per trainId (19 classes, util/cityscapes.py) plus a
# void channel (helper.get_semantic_map's 19 palette channels, and 1 - their sum appended by the demos).
CITYSCAPES_INPUT_NC = 20
LABEL_LAYOUTS = ('cityscapes', 'onehot', 'rgb')

# Defaults of flags that options/ already defines and that differ for CRN (the registry applies them with
# parser.set_defaults): Adam as tf.train.AdamOptimizer's defaults with lr 1e-4, 200 epochs at a constant lr
# (demo_256p.py), no instance maps, no flipping (the official training reads the images as they are), and
# 512-pixel-wide images (Cityscapes at 256x512).
DEFAULTS: dict = {
    'lr': 1e-4,
    'beta1': 0.9,
    'niter': 200,
    'niter_decay': 0,
    'no_instance': True,
    'no_flip': True,
    'loadSize': 512,
}


# --continue_train's rules of CRN's other flags (its architecture flags must match).
RESUME_POLICY = {
    'crn_loss': ('may change', 'the loss changes from the next iteration'),
    'crn_train_modules': ('must match', 'the saved optimiser covers the modules it trained'),
    'crn_vgg_mat': ('may change', 'the loss uses these VGG19 weights from the next iteration'),
}


def add_flags(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """The flags CRN adds, in a help group of its own ('crn model')."""
    add = parser.add_argument_group('crn model').add_argument
    add(
        '--crn_sp',
        type=int,
        default=256,
        help='height of the output (the official sp): refinement modules at 4x8, 8x16, ... up to sp x 2sp (256, 512 or 1024)',
    )
    add(
        '--crn_widths',
        type=str,
        default='',
        help='channels per refinement module from 4x8 up, comma-separated (one value: all modules); empty: the official '
        'widths per resolution (1024 up to 64, 512 at 128 and 256, 128 at 512, 32 at 1024)',
    )
    add(
        '--crn_n_images',
        type=int,
        default=9,
        help='images synthesized per label map by the last 1x1 convolution (9 in demo_256p.py, 1 at 512p and 1024p)',
    )
    add(
        '--crn_loss',
        type=str,
        default='diversity',
        choices=['diversity', 'single'],
        help='diversity: demo_256p.py\'s per-class best-of-K VGG loss; single: the 512p/1024p loss (mean error, layer weights 1, '
        '1/2.6, 1/4.8, 1/3.7, 1/5.6, 10/1.5)',
    )
    add(
        '--crn_label_layout',
        type=str,
        default='cityscapes',
        choices=['cityscapes', 'onehot'],
        help='cityscapes: labelIds mapped to the 19 trainIds plus a void channel (the official input); onehot: --label_nc channels',
    )
    add(
        '--crn_train_modules',
        type=int,
        default=0,
        help='train only the last N refinement modules (the 1024p recipe: 2); 0 trains all',
    )
    add(
        '--crn_vgg_mat',
        type=str,
        default='',
        help='MatConvNet imagenet-vgg-verydeep-19.mat, the VGG19 weights the CRN code loads; else --vgg_weights (torchvision VGG19)',
    )


def validate(opt: argparse.Namespace) -> None:
    """The Cityscapes layout reads Cityscapes label ids: another label set would map every id to void."""
    if opt.crn_label_layout == 'cityscapes' and opt.label_nc not in (0, 34, 35):
        raise OptionsError(
            f"--crn_label_layout cityscapes maps Cityscapes label ids (--label_nc 35) to its 19 trainIds; the ids of "
            f"--label_nc {opt.label_nc} would all become void and G would see no layout: pass --crn_label_layout onehot"
        )


def size_base(opt: argparse.Namespace) -> int:
    """Both sides must be multiples of sp / 4: each refinement module below the last halves them (4x8 is sp / 4 smaller)."""
    return max(1, opt.crn_sp // 4)


def official_width(sp: int) -> int:
    """demo_*p.py's width of the module at height sp: 1024 below 128, 512 at 128 and 256, 128 at 512, 32 at 1024."""
    return {512: 128, 1024: 32}.get(sp, 512 if sp >= 128 else 1024)


def module_heights(n_modules: int) -> tuple[int, ...]:
    """The official sp of each refinement module: 4, 8, 16, ... (each module doubles the resolution)."""
    return tuple(4 * 2**index for index in range(n_modules))


@dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """What fixes CRN's generator: input encoding and channels, the width of each refinement module, images per map."""

    model_name = 'CRN'

    # cityscapes (19 trainIds + void), onehot (label_nc channels) or rgb (--label_nc 0)
    label_layout: str = arch_field('label_nc', 'crn_label_layout')
    input_nc: int = arch_field('label_nc', 'input_nc', 'crn_label_layout')
    widths: tuple[int, ...] = arch_field('crn_sp', 'crn_widths')  # one per refinement module, from 4x8 up
    n_images: int = arch_field('crn_n_images')
    output_nc: int = arch_field('output_nc', default=3)

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> 'Architecture':
        """The architecture the flags ask for; a bad value is an OptionsError naming the flag and the fix."""
        sp = opt.crn_sp
        if sp < 4 or sp & (sp - 1):
            raise OptionsError(f"--crn_sp {sp}: must be a power of two, 4 or more (the modules start at 4x8 and double); e.g. 256")
        n_modules = int(math.log2(sp // 4)) + 1
        widths = parse_widths(opt.crn_widths, n_modules, sp)
        if opt.crn_n_images < 1:
            raise OptionsError(f"--crn_n_images {opt.crn_n_images}: must be 1 or more (9 at 256p, 1 at 512p and 1024p)")
        if opt.label_nc == 0:
            layout, input_nc = 'rgb', opt.input_nc
        elif opt.crn_label_layout == 'cityscapes':
            layout, input_nc = 'cityscapes', CITYSCAPES_INPUT_NC
        else:
            layout, input_nc = 'onehot', opt.label_nc
        return cls(layout, input_nc, widths, opt.crn_n_images, opt.output_nc)

    def flags(self) -> list[str]:
        """The command-line flags from_options() turns back into this architecture (e.g. for test.py on a converted model)."""
        layout = {
            'cityscapes': ['--crn_label_layout', 'cityscapes'],
            'onehot': ['--crn_label_layout', 'onehot', '--label_nc', str(self.input_nc)],
            'rgb': ['--label_nc', '0', '--input_nc', str(self.input_nc)],
        }[self.label_layout]
        widths = ['--crn_sp', str(module_heights(len(self.widths))[-1]), '--crn_widths', ','.join(map(str, self.widths))]
        return [*layout, *widths, '--crn_n_images', str(self.n_images), '--output_nc', str(self.output_nc)]

    @classmethod
    def from_dict(cls, values: dict) -> 'Architecture':
        """Inverse of to_dict(); a missing or unknown field is a ModelError (a checkpoint of another model or version)."""
        names = {field.name for field in fields(cls)}
        if set(values) != names:
            raise ModelError(
                f"CRN architecture {values}: expected the fields {sorted(names)}; the checkpoint was saved by another model or version"
            )
        layout = values['label_layout']
        if layout not in LABEL_LAYOUTS:
            raise ModelError(f"CRN architecture: label_layout {layout!r} is not one of {', '.join(LABEL_LAYOUTS)}")
        return cls(
            layout,
            int(values['input_nc']),
            tuple(int(width) for width in values['widths']),
            int(values['n_images']),
            int(values['output_nc']),
        )


def parse_widths(text: str, n_modules: int, sp: int) -> tuple[int, ...]:
    """--crn_widths as one width per module; empty: the official table."""
    if not text.strip():
        if sp > 1024:
            raise OptionsError(f"--crn_sp {sp}: the official code has no widths above 1024; pass --crn_widths (one per module)")
        return tuple(official_width(height) for height in module_heights(n_modules))
    try:
        widths = tuple(int(part) for part in text.split(','))
    except ValueError:
        raise OptionsError(f"--crn_widths {text!r}: not comma-separated integers; e.g. --crn_widths 64,64,32") from None
    if len(widths) == 1:
        widths *= n_modules
    if len(widths) != n_modules or min(widths) < 1:
        raise OptionsError(
            f"--crn_widths {text!r}: --crn_sp {sp} has {n_modules} refinement modules (4x8 up to {sp}x{2 * sp}); "
            f"give {n_modules} positive widths or one for all"
        )
    return widths
