"""vid2vid (Wang et al., NeurIPS 2018) as its authors' code trains and tests it: flags, networks, model, trainer.

A method of the registry (models/__init__.py): the names below are its interface.
"""

import argparse
from typing import Any

from ..common.labels import parse_int_pairs
from ..common.losses import load_vgg19_features
from ..common.method import Method
from ..pix2pixhd.styles import FeatureSampler, load_clusters, resolve_cluster_path
from .data import dataset, training_visuals, video_visuals
from .flow import ReferenceFlow, load_raft
from .model import Vid2VidModel
from .options import DEFAULTS, RESUME_POLICY, Architecture, Discriminators, LossSettings, add_flags, derive, size_base, validate
from .single import load_single_generator
from .trainer import Vid2VidTrainer

__all__ = ['METHOD', 'Architecture', 'Discriminators', 'LossSettings', 'Vid2VidModel', 'Vid2VidTrainer']


def read_files(opt: argparse.Namespace) -> dict:
    """What training reads besides the weights: VGG19's features for the VGG loss (unless --no_vgg; --vgg_weights,
    else torchvision's download) and RAFT for the reference flow of clips without flow files (--flow_weights); test
    time: the single-image pix2pixHD (--use_single_G) and, with instance features, the cluster centres styles are
    drawn from (--cluster_path, unless --use_encoded_image)."""
    files: dict[str, Any] = {}
    if not opt.isTrain:
        if opt.use_single_G:
            files['single_G'] = load_single_generator(opt.single_G_dir, opt.label_nc)
        if opt.use_features and not opt.use_encoded_image:
            files['clusters'] = load_clusters(resolve_cluster_path(opt), opt.feat_num, opt.allow_pickle)
        return files
    if not opt.no_vgg:
        files['vgg_features'] = load_vgg19_features(opt.vgg_weights or None)
    if opt.flow_weights:
        files['flow_net'] = ReferenceFlow(load_raft(opt.flow_weights))
    return files


def build_model(opt: argparse.Namespace, vgg_features=None, flow_net=None, single_G=None, clusters=None) -> Vid2VidModel:
    """vid2vid's model for the options: G (all spatial scales), and D and the temporal Ds when training; E with instance
    features when training or encoding photos, else the sampler of test-time styles from `clusters` (--feat_choice,
    --seed)."""
    if opt.isTrain:
        losses = LossSettings.from_options(opt)
        return Vid2VidModel(Architecture.from_options(opt), Discriminators.from_options(opt), losses, vgg_features, flow_net)
    sampler = None
    if clusters is not None:
        sampler = FeatureSampler(clusters, opt.feat_num, parse_int_pairs(opt.feat_choice, '--feat_choice'), opt.seed)
    return Vid2VidModel(
        Architecture.from_options(opt),
        losses=LossSettings(no_first_img=opt.no_first_img),
        single_G=single_G,
        encoder=opt.use_features and opt.use_encoded_image,
        feature_sampler=sampler,
    )


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
