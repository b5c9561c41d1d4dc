"""vid2vid (Wang et al., NeurIPS 2018) as its authors' code trains and tests it: flags, networks, model, trainer.

A method of the registry (models/__init__.py): the names below are its interface.
"""

import argparse

import torch

from ..common.losses import load_vgg19_features
from ..common.method import Method
from .data import dataset, training_visuals, video_visuals
from .flow import ReferenceFlow, load_raft
from .model import Vid2VidModel
from .options import DEFAULTS, RESUME_POLICY, Architecture, Discriminators, LossSettings, add_flags, derive, size_base, validate
from .single import load_single_generator
from .trainer import Vid2VidTrainer

__all__ = ['METHOD', 'Architecture', 'Discriminators', 'LossSettings', 'Vid2VidModel', 'Vid2VidTrainer']


def read_files(opt: argparse.Namespace) -> dict:
    """What training reads besides the weights: VGG19's features for the VGG loss (unless --no_vgg; --vgg_weights,
    else torchvision's download) and RAFT for the reference flow of clips without flow files (--flow_weights)."""
    if not opt.isTrain:
        return {'single_G': load_single_generator(opt.single_G_dir, opt.label_nc)} if opt.use_single_G else {}
    files: dict[str, torch.nn.Module] = {} if opt.no_vgg else {'vgg_features': load_vgg19_features(opt.vgg_weights or None)}
    if opt.flow_weights:
        files['flow_net'] = ReferenceFlow(load_raft(opt.flow_weights))
    return files


def build_model(opt: argparse.Namespace, vgg_features=None, flow_net=None, single_G=None) -> Vid2VidModel:
    """vid2vid's model for the options: G (all spatial scales), and D and the temporal Ds when training."""
    if opt.isTrain:
        losses = LossSettings.from_options(opt)
        return Vid2VidModel(Architecture.from_options(opt), Discriminators.from_options(opt), losses, vgg_features, flow_net)
    return Vid2VidModel(Architecture.from_options(opt), losses=LossSettings(no_first_img=opt.no_first_img), single_G=single_G)


METHOD = Method(
    name='vid2vid',
    architecture=Architecture,
    add_flags=add_flags,
    build_model=build_model,
    build_trainer=Vid2VidTrainer,
    defaults=DEFAULTS,
    resume_policy=RESUME_POLICY,
    derive=derive,
    validate=validate,
    size_base=size_base,
    read_files=read_files,
    dataset=dataset,
    training_visuals=training_visuals,
    test_visuals=video_visuals,
)
