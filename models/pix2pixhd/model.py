"""The pix2pixHD model: input encoding, the five losses, inference and instance-feature encoding."""

import argparse
from typing import Any, cast

import torch
import torch.nn as nn

from util.distributed import bare
from util.errors import ModelError
from util.image_pool import ImagePool

from ..common.labels import get_edges, instance_class, one_hot_label, parse_int_pairs
from ..common.losses import GANLoss, VGGLoss, feature_matching_loss, load_vgg19_features
from . import networks
from .styles import AREA_BLOCKS, FeatureSampler, load_clusters, resolve_cluster_path


def read_files(opt: argparse.Namespace) -> dict:
    """The files pix2pixHD's model is built from besides its weights, read for it (builders.py; a trainer built by hand):
    the cluster centres test-time feature sampling draws from (with instance features, unless --use_encoded_image),
    from --cluster_path, and VGG19 for the VGG loss (--vgg_weights, else torchvision's download)."""
    if opt.isTrain:
        return {} if opt.no_vgg_loss else {'vgg_features': load_vgg19_features(opt.vgg_weights or None)}
    if not opt.use_features or opt.use_encoded_image:
        return {}
    return {'clusters': load_clusters(resolve_cluster_path(opt), opt.feat_num, opt.allow_pickle)}


class Pix2PixHDModel(nn.Module):
    """Owns netG, netD, netE and the criteria; computes losses and images (util/checkpoint.py saves and loads them)."""

    def __init__(self, opt: argparse.Namespace, clusters: dict | None = None, vgg_features: nn.Sequential | None = None) -> None:
        """The networks the options need, from what read_files() read: `clusters` ({class id: cluster centres}) feed
        test-time feature sampling (needed with instance features, unless --use_encoded_image); `vgg_features` (VGG19's
        `features`) the VGG loss when training with it."""
        centers = clusters
        super().__init__()
        self.opt = opt
        self.isTrain = opt.isTrain
        self.use_features = opt.use_features
        self.gen_features = self.use_features and not opt.load_features
        # Disabled losses are left out of the logs, as in the reference's loss_filter.
        self.loss_names = tuple(
            name
            for name in ('G_GAN', 'G_GAN_Feat', 'G_VGG', 'D_real', 'D_fake')
            if not (name == 'G_GAN_Feat' and opt.isTrain and opt.no_ganFeat_loss)
            and not (name == 'G_VGG' and opt.isTrain and opt.no_vgg_loss)
        )
        input_nc = opt.label_nc if opt.label_nc != 0 else opt.input_nc

        netG_input_nc = input_nc + (0 if opt.no_instance else 1) + (opt.feat_num if self.use_features else 0)
        self.netG = networks.define_G(
            netG_input_nc,
            opt.output_nc,
            opt.ngf,
            opt.netG,
            opt.n_downsample_global,
            opt.n_blocks_global,
            opt.n_local_enhancers,
            opt.n_blocks_local,
            opt.norm,
            opt.use_dropout,
            opt.netG_init if self.isTrain else 'normal',  # a training flag: test time loads the weights
        )
        # D, E, the cluster sampler and the VGG criterion exist only where the options need them
        # (training, instance features); typed Any so the paths that use them read without None checks.
        self.netD: Any = None
        if self.isTrain:
            netD_input_nc = input_nc + opt.output_nc + (0 if opt.no_instance else 1)
            self.netD = networks.define_D(netD_input_nc, opt.ndf, opt.n_layers_D, opt.norm, opt.num_D, not opt.no_ganFeat_loss)
        # E is trained jointly unless features are precomputed; at inference it is only needed to
        # encode real photos (--use_encoded_image, and the feature scripts), not to sample clusters.
        needs_encoder = self.gen_features if self.isTrain else self.use_features and opt.use_encoded_image
        self.netE: Any = None
        if needs_encoder:
            self.netE = networks.define_E(opt.output_nc, opt.feat_num, opt.nef, opt.n_downsample_E, opt.norm)
        self.feature_sampler: Any = None
        if not self.isTrain and self.use_features and not opt.use_encoded_image:
            if centers is None:
                raise ModelError(
                    "a pix2pixHD model with instance features samples cluster centres at test time: pass them (builders.py reads them)"
                )
            self.feature_sampler = FeatureSampler(centers, opt.feat_num, parse_int_pairs(opt.feat_choice, '--feat_choice'), opt.seed)
        if opt.verbose:
            for net in (self.netG, self.netD, self.netE):
                if net is not None:
                    print(net)
                    print(f'Total number of parameters: {networks.count_parameters(net)}')

        if self.isTrain:
            self.fake_pool = ImagePool(opt.pool_size)
            # Without the pool, D_fake and G_GAN score the same fakes: one pass of D serves both. Not with
            # --norm batch, where each pass of D in training mode also updates its running statistics.
            self.shares_fake_pass = opt.pool_size == 0 and opt.norm != 'batch'
            self.criterionGAN = GANLoss(use_lsgan=not opt.no_lsgan)
            if not opt.no_vgg_loss and vgg_features is None:
                raise ModelError('the VGG loss needs VGG19: build the model from read_files(opt) (builders.py does), or pass --no_vgg_loss')
            self.criterionVGG = None if vgg_features is None or opt.no_vgg_loss else VGGLoss(vgg_features)

    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return next(self.netG.parameters()).device

    # ---------------------------------------------------------------- inputs
    def encode_input(
        self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None, feat: torch.Tensor | None = None
    ) -> tuple:
        """(one-hot label + edge map, map for E's pooling, real image, precomputed features) on the model's device."""
        device = self.device
        label = label.to(device, non_blocking=True)
        if self.opt.label_nc == 0:
            input_label = label.float()
        else:
            input_label = one_hot_label(label, self.opt.label_nc)
        inst_map = None
        if not self.opt.no_instance:
            inst_map = cast(torch.Tensor, inst).to(device, non_blocking=True)  # given whenever --no_instance is off
            input_label = torch.cat((input_label, get_edges(inst_map)), dim=1)
        real_image = image.to(device, non_blocking=True) if image is not None and image.numel() else None
        feat_map = None
        if self.use_features:
            if self.opt.load_features:
                feat_map = cast(torch.Tensor, feat).to(device, non_blocking=True)  # the loader reads it with --load_features
            if self.opt.label_feat:
                inst_map = label
        if self.opt.channels_last:
            input_label = input_label.contiguous(memory_format=torch.channels_last)
            real_image = real_image.contiguous(memory_format=torch.channels_last) if real_image is not None else None
        return input_label, inst_map, real_image, feat_map

    def discriminate(self, input_label: torch.Tensor, test_image: torch.Tensor, use_pool: bool = False) -> list:
        """D on (label, image.detach()), optionally through the history pool of fakes."""
        input_concat = torch.cat((input_label, test_image.detach()), dim=1)
        if use_pool:
            input_concat = self.fake_pool.query(input_concat)
        return self.netD(input_concat)

    # ---------------------------------------------------------------- training
    def forward(self, label: torch.Tensor, inst: torch.Tensor, image: torch.Tensor, feat: torch.Tensor, infer: bool = False) -> tuple:
        """One training forward: ({loss name: tensor} for the enabled losses, fake image if `infer` else None)."""
        input_label, inst_map, real_image, feat_map = self.encode_input(label, inst, image, feat)
        if self.use_features:
            if not self.opt.load_features:
                feat_map = self.netE(real_image, inst_map)
            input_concat = torch.cat((input_label, feat_map), dim=1)
        else:
            input_concat = input_label
        fake_image = self.netG(input_concat)

        pred_fake = self.netD(torch.cat((input_label, fake_image), dim=1))
        loss_G_GAN = self.criterionGAN(pred_fake, True)
        # A shared pass lets D_fake's graph reach G: the trainer's D backward stops at D's parameters.
        pred_fake_pool = pred_fake if self.shares_fake_pass else self.discriminate(input_label, fake_image, use_pool=True)
        loss_D_fake = self.criterionGAN(pred_fake_pool, False)
        pred_real = self.discriminate(input_label, real_image)
        loss_D_real = self.criterionGAN(pred_real, True)

        losses = {'G_GAN': loss_G_GAN, 'D_real': loss_D_real, 'D_fake': loss_D_fake}
        if not self.opt.no_ganFeat_loss:
            losses['G_GAN_Feat'] = feature_matching_loss(pred_fake, pred_real, self.opt.num_D, self.opt.n_layers_D, self.opt.lambda_feat)
        if self.criterionVGG is not None:
            losses['G_VGG'] = self.criterionVGG(fake_image, real_image) * self.opt.lambda_feat
        return {name: losses[name] for name in self.loss_names}, (fake_image if infer else None)

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def inference(self, label: torch.Tensor, inst: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Synthesize images from label maps (and instance maps); the real image only feeds E."""
        input_label, inst_map, real_image, _ = self.encode_input(label, inst, image)
        input_concat = input_label
        if self.use_features:
            # E is built at test time only for --use_encoded_image; a training model (the benchmark's)
            # has E and no clusters, so it encodes the photo too.
            if self.netE is not None:
                if real_image is None:
                    raise ModelError("--use_encoded_image needs the real photos: put them in the {phase}_img folder")
                feat_map = self.netE(real_image, inst_map)
            else:
                feat_map = self.sample_features(inst_map)
            input_concat = torch.cat((input_label, feat_map), dim=1)
        return self.netG(input_concat)

    def sample_features(self, inst_map: torch.Tensor) -> torch.Tensor:
        """Feature map with one cluster centre of its class per instance (random, or --feat_choice)."""
        return self.feature_sampler.sample(inst_map)

    @torch.no_grad()
    def encode_instance_features(self, label: torch.Tensor, inst: torch.Tensor, image: torch.Tensor) -> tuple:
        """Per (image, instance): (class ids, E's pooled features N x feat_num, area = pixels / (h*w // 32))."""
        _, inst_map, real_image, _ = self.encode_input(label, inst, image)
        feature_map = self.netE.model(real_image)
        segment, segment_ids, _ = networks.instance_segments(inst_map)
        means, counts = networks.segment_mean(feature_map, segment, segment_ids.numel())
        height, width = inst_map.shape[-2:]
        area = counts.float() / (height * width // AREA_BLOCKS)
        return instance_class(segment_ids), means, area

    @torch.no_grad()
    def encode_feature_map(self, label: torch.Tensor, inst: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """E's instance-pooled feature map of real photos."""
        _, inst_map, real_image, _ = self.encode_input(label, inst, image)
        return self.netE(real_image, inst_map)

    # ---------------------------------------------------------------- networks
    def synthesizer(self) -> nn.Module:
        """The network test.py's images come from, on what inference() feeds it (--export_onnx exports it)."""
        return bare(self.netG)

    def networks_by_name(self, wrapped: bool = False) -> dict:
        """{'G': netG, 'D': netD, 'E': netE} for the networks this model has (the names in checkpoint files).

        Under torchrun the trainer wraps each in DistributedDataParallel; this returns the bare networks
        (whose state_dict keys are the reference's, no `module.` prefix) unless `wrapped`.
        """
        nets = {'G': self.netG, 'D': self.netD, 'E': self.netE}
        return {name: net if wrapped else bare(net) for name, net in nets.items() if net is not None}
