"""CRN, Chen and Koltun, "Photographic Image Synthesis with Cascaded Refinement Networks", ICCV 2017, faithful to the
official TensorFlow code (CQFIO/PhotographicImageSynthesis, demo_256p.py, demo_512p.py, demo_1024p.py).

Refinement modules from 4x8 up to the output size, each on the previous output upsampled x2 (bilinear,
align_corners) and the label map area-downsampled to its size: two x (3x3 convolution without bias, layer norm
over C,H,W with per-channel scale and offset, LeakyReLU 0.2); the last module's 1x1 convolution gives K images.
The loss is VGG19's (average pooling, images 0..255 minus the ImageNet mean): at 256p the diversity loss over
K = 9 images, at 512p and 1024p the single-image loss; Adam lr 1e-4. The recipes: 256p from scratch
(--crn_sp 256, 200 epochs), 512p fine-tuned from it (--crn_sp 512 --crn_n_images 1 --crn_loss single, 20 epochs,
every module trains), 1024p fine-tuned from 512p (--crn_sp 1024 ... --crn_train_modules 2, 5 epochs); a finer
model loads the coarser one's weights by key and shape (its g_<sp> modules; the new module and the old last 1x1
convolution do not match).

Flags: add_flags() adds the 'crn model' group. Existing flags it reads: --label_nc (0: RGB input of --input_nc
channels; else label ids, see --crn_label_layout), --output_nc, --lr and --beta1 (Adam; beta2 0.999 and eps 1e-8
are TF's defaults), --vgg_weights (torchvision's VGG19, the alternative to --crn_vgg_mat), --gpu_ids (the device),
--niter/--niter_decay, --loadSize, --no_instance and --no_flip through the data loader. DEFAULTS lists those whose
defaults differ for CRN. The batch is the project's ({'label', 'image', ...} of data/aligned_dataset.py).
"""

import argparse

from ..common.method import Method
from .architecture import DEFAULTS, RESUME_POLICY, Architecture, add_flags, size_base, validate
from .convert import architecture_from_state_dict, tf_variables_to_state_dict
from .model import CRNModel
from .networks import CRNGenerator, build_networks
from .trainer import CRNTrainer, TFAdam
from .vgg import CRNVgg19, load_vgg, read_vgg_mat

__all__ = [
    'DEFAULTS',
    'METHOD',
    'RESUME_POLICY',
    'Architecture',
    'CRNGenerator',
    'CRNModel',
    'CRNTrainer',
    'CRNVgg19',
    'TFAdam',
    'add_flags',
    'architecture_from_state_dict',
    'build_model',
    'build_networks',
    'build_trainer',
    'load_vgg',
    'read_files',
    'read_vgg_mat',
    'size_base',
    'tf_variables_to_state_dict',
]


def read_files(opt: argparse.Namespace) -> dict:
    """What builders.py reads for build_model: the VGG19 of CRN's loss when training (--crn_vgg_mat or --vgg_weights)."""
    return {'vgg': load_vgg(opt)} if opt.isTrain else {}


def build_model(opt: argparse.Namespace, vgg: CRNVgg19 | None = None) -> CRNModel:
    """CRN's model for the options, with the VGG19 of its loss when training (read_files), without at test time."""
    return CRNModel(Architecture.from_options(opt), opt.crn_loss, vgg)


def build_trainer(opt: argparse.Namespace, model: CRNModel) -> CRNTrainer:
    """The official iteration around `model`."""
    return CRNTrainer(opt, model)


METHOD = Method(
    name='crn',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=build_model,
    build_trainer=build_trainer,
    defaults=DEFAULTS,
    resume_policy=RESUME_POLICY,
    validate=validate,
    size_base=size_base,
    read_files=read_files,
)
