"""pix2pix (Isola et al., CVPR 2017) as its authors' PyTorch code trains and tests it: flags, networks, model, trainer.

A method of the registry (models/__init__.py): the names below are its interface.
"""

import argparse

from ..common.method import Method
from .model import Pix2PixModel
from .options import DEFAULTS, RESUME_POLICY, Architecture, add_flags, build_networks, size_base
from .trainer import Pix2PixTrainer

__all__ = ['METHOD', 'Architecture', 'Pix2PixModel', 'Pix2PixTrainer', 'build_networks']


def build_model(opt: argparse.Namespace) -> Pix2PixModel:
    """pix2pix's model for the options (G, and D when training)."""
    return Pix2PixModel.from_options(opt)


def build_trainer(opt: argparse.Namespace, model: Pix2PixModel) -> Pix2PixTrainer:
    """The authors' iteration around `model`."""
    return Pix2PixTrainer.from_options(opt, model)


METHOD = Method(
    name='pix2pix',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=build_model,
    build_trainer=build_trainer,
    defaults=DEFAULTS,
    resume_policy=RESUME_POLICY,
    size_base=size_base,
)
