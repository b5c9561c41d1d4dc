"""pix2pixHD (Wang et al., CVPR 2018) as a method of the registry (models/__init__.py): its flags in options.py, its
networks in networks/, its model in model.py, its trainer in trainer.py, its instance-feature styles in styles.py."""

import argparse
import dataclasses
from typing import Any

from ..common.method import ArchitectureRecord, Method
from .model import Pix2PixHDModel, read_files
from .options import DEFAULTS, RESUME_POLICY, add_flags, derive, size_base, validate
from .trainer import Pix2PixHDTrainer

__all__ = ['METHOD', 'Architecture', 'Pix2PixHDModel', 'Pix2PixHDTrainer']


@dataclasses.dataclass(frozen=True)
class Architecture(ArchitectureRecord):
    """Everything that fixes the shapes of pix2pixHD's G and E and their input encoding: the flags of the same names."""

    model_name = 'pix2pixHD'

    label_nc: int
    input_nc: int
    output_nc: int
    netG: str
    ngf: int
    n_downsample_global: int
    n_blocks_global: int
    n_blocks_local: int
    n_local_enhancers: int
    norm: str
    use_dropout: bool
    no_instance: bool
    instance_feat: bool
    label_feat: bool
    feat_num: int
    n_downsample_E: int
    nef: int


def build_model(opt: argparse.Namespace, **files: Any) -> Pix2PixHDModel:
    """pix2pixHD's model for the options, from what read_files() read (cluster centres, VGG19)."""
    return Pix2PixHDModel(opt, **files)


def build_trainer(opt: argparse.Namespace, model: Pix2PixHDModel) -> Pix2PixHDTrainer:
    """The trainer of the reference's iteration around `model`."""
    return Pix2PixHDTrainer(opt, model)


METHOD = Method(
    name='pix2pixHD',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=build_model,
    build_trainer=build_trainer,
    defaults=DEFAULTS,
    resume_policy=RESUME_POLICY,
    derive=derive,
    validate=validate,
    size_base=size_base,
    read_files=read_files,
)
