"""BigGAN (Brock, Donahue, Simonyan, 2018) as its authors' PyTorch code (ajbrock/BigGAN-PyTorch) trains and samples it:
class ids and noise in, images out. A method of the registry (models/__init__.py): the names below are its interface."""

import argparse

from data.class_dataset import ClassFolderDataset, ClassIdsDataset, SyntheticClassDataset

from ..common.method import Dataset, Method
from .model import BigGANModel
from .options import DEFAULTS, RESUME_POLICY, Architecture, add_flags, derive, validate
from .trainer import BigGANTrainer
from .visuals import test_visuals, training_visuals

__all__ = ['METHOD', 'Architecture', 'BigGANModel', 'BigGANTrainer']


def build_model(opt: argparse.Namespace) -> BigGANModel:
    """BigGAN's model for the options (G; D and G_ema when training)."""
    return BigGANModel.from_options(opt)


def build_trainer(opt: argparse.Namespace, model: BigGANModel) -> BigGANTrainer:
    """The authors' iteration around `model`."""
    return BigGANTrainer(opt, model)


def dataset(opt: argparse.Namespace) -> Dataset:
    """Training: the class folders of --dataroot or the synthetic shapes (--dataset); test time: one sample per class."""
    if not opt.isTrain:
        return ClassIdsDataset(opt)
    return SyntheticClassDataset(opt) if opt.dataset == 'synthetic' else ClassFolderDataset(opt)


METHOD = Method(
    name='biggan',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=build_model,
    build_trainer=build_trainer,
    defaults=DEFAULTS,
    resume_policy=RESUME_POLICY,
    derive=derive,
    validate=validate,
    dataset=dataset,
    training_visuals=training_visuals,
    test_visuals=test_visuals,
)
