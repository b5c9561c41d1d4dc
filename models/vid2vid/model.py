"""vid2vid's computations: label encoding, frame-by-frame generation, the image and temporal discriminators' losses
and inference (no optimisers, no file I/O). The trainer (trainer.py) runs them in the authors' order.

Shapes: a clip is B x T x C x H x W. In training, the first n_frames_G - 1 frames of a clip are given (real photos)
and G makes the rest one by one, each from the label maps of the last n_frames_G frames and its n_frames_G - 1
previous frames (real, then its own outputs, detached by default: the authors backpropagate through one frame, more
with --max_frames_backpropagate).

Instance features (pix2pixHD's, docs/VIDEO.md): each frame's encoded labels get --feat_num more channels, E's output
on that frame's photo averaged inside each of its instances in training; at test time one cluster centre per instance,
drawn once for the whole clip (instance ids persist over a sequence), so a style holds in every frame.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.distributed import bare, no_sync
from util.errors import ModelError
from util.flow import warp

from ..common.labels import get_edges, instance_class, one_hot_label
from ..common.losses import GANLoss, VGGLoss, feature_matching_loss
from ..common.normalization import weights_init
from ..pix2pixhd.networks import define_E, instance_segments, segment_mean
from ..pix2pixhd.networks.generator import downsample_pyramid_pool
from ..pix2pixhd.styles import AREA_BLOCKS, FeatureSampler
from .networks import FLOW_MULTIPLIER, CompositeGenerator, CompositeLocalGenerator, FrameOutput, define_D, vid2vid_norm_layer
from .options import Architecture, Discriminators, LossSettings

IMAGE_LOSSES = ('G_VGG', 'G_GAN', 'G_GAN_Feat', 'D_real', 'D_fake', 'G_Warp', 'F_Flow', 'F_Warp', 'W')
TEMPORAL_LOSSES = ('G_T_GAN', 'G_T_GAN_Feat', 'D_T_real', 'D_T_fake', 'G_T_Warp')
# The VGG loss runs on frames at most this wide (the authors halve wider ones first).
VGG_MAX_WIDTH = 1024


def masked_l1(input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |input * mask - target * mask| over every element (the authors' MaskedL1Loss)."""
    mask = mask.expand(-1, input.shape[1], -1, -1)
    return F.l1_loss(input * mask, target * mask)


def pyramid(clip: torch.Tensor, n_scales: int) -> list[torch.Tensor]:
    """[clip, clip / 2, ...] (B x T x C x H x W each, finest first): the 3x3 average pool of the authors' build_pyr."""
    levels = [clip]
    pool = downsample_pyramid_pool()
    for _ in range(1, n_scales):
        batch, frames = levels[-1].shape[:2]
        down = pool(levels[-1].flatten(0, 1))
        levels.append(down.view(batch, frames, *down.shape[1:]))
    return levels


def flat(clip: torch.Tensor) -> torch.Tensor:
    """B x T x C x H x W -> (B*T) x C x H x W (the authors' reshape before the discriminators)."""
    return clip.reshape(-1, *clip.shape[2:])


@dataclass
class GeneratedClip:
    """What G made for the frames of one forward (finest scale; B x n x C x H x W; flow and weight None with --no_flow)."""

    images: torch.Tensor
    raw: torch.Tensor
    flow: torch.Tensor | None
    weight: torch.Tensor | None
    last: list[torch.Tensor]  # per scale (finest first), the last n_frames_G - 1 frames, detached: the next forward's previous frames


class Vid2VidModel(nn.Module):
    """Owns netG0 (.. netG<n_scales_spatial-1>) and, when training, netD and netD_T0 .. netD_T<n_scales_temporal-1>."""

    def __init__(
        self,
        arch: Architecture,
        discriminators: Discriminators | None = None,
        losses: LossSettings | None = None,
        vgg_features: nn.Sequential | None = None,
        flow_net: nn.Module | None = None,
        single_G: nn.Module | None = None,
        encoder: bool = False,
        feature_sampler: FeatureSampler | None = None,
    ) -> None:
        """`discriminators` None: a test-time model (G only). `vgg_features`: torchvision's VGG19 features for the VGG
        loss; `flow_net`: the reference flow of clips without flow files (flow.py's ReferenceFlow; not saved);
        `single_G`: a single-image generator for a test video's first frames (single.py; not saved). With instance
        features: E is built for training, or at test time with `encoder` (photos encoded: --use_encoded_image, the
        feature scripts); `feature_sampler` draws the test-time styles from the cluster centres."""
        super().__init__()
        self.feature_sampler = feature_sampler
        self.flow_net = flow_net
        self.single_G = single_G
        self.arch = arch
        self.losses = losses or LossSettings()
        norm_layer = vid2vid_norm_layer(arch.norm)
        input_nc = arch.generator_frame_nc * arch.n_frames_G
        prev_nc = (arch.n_frames_G - 1) * arch.output_nc
        self.netG0: Any = CompositeGenerator(
            input_nc, arch.output_nc, prev_nc, arch.ngf, arch.n_downsample_G, arch.n_blocks, norm_layer, arch.fg, arch.no_flow
        )
        for scale in range(1, arch.n_scales_spatial):
            net: nn.Module = CompositeLocalGenerator(
                input_nc,
                arch.output_nc,
                prev_nc,
                arch.ngf // 2**scale,
                arch.n_blocks_local,
                norm_layer,
                scale,
                arch.n_downsample_G,
                arch.fg,
                arch.no_flow,
            )
            setattr(self, f'netG{scale}', net)
        self.discriminators = discriminators
        if discriminators is not None:
            d = discriminators
            self.netD: Any = define_D(arch.frame_input_nc + arch.output_nc, d.ndf, d.n_layers_D, arch.norm, d.num_D, d.get_interm_feat)
            temporal_nc = arch.output_nc * d.n_frames_D + 2 * (d.n_frames_D - 1)
            for scale in range(d.n_scales_temporal):
                setattr(self, f'netD_T{scale}', define_D(temporal_nc, d.ndf, d.n_layers_D, arch.norm, d.num_D, d.get_interm_feat))
            self.criterionGAN = GANLoss(use_lsgan=True)  # the authors' GANLoss gets --gan_mode as use_lsgan: always MSE
            self.criterionVGG = VGGLoss(vgg_features) if vgg_features is not None and self.losses.use_vgg else None
        self.netE: Any = None
        for net in self.networks_by_name().values():
            net.apply(weights_init)
        if arch.use_features and (discriminators is not None or encoder):
            # Built last (define_E initialises it the same way): the other networks' draws stay those of a model without E.
            # InstanceNorm whatever --norm says: pix2pixHD's E, and the authors' one encoder (their face model's), use it,
            # so a photo's features do not depend on the frames it is batched with.
            self.netE = define_E(arch.output_nc, arch.feat_num, arch.nef, arch.n_downsample_E, 'instance')

    # ---------------------------------------------------------------- the family's interface
    @property
    def loss_names(self) -> tuple[str, ...]:
        """The image losses, then each temporal scale's (suffixed with the scale: G_T_GAN0, ...)."""
        scales = self.discriminators.n_scales_temporal if self.discriminators is not None else 0
        return IMAGE_LOSSES + tuple(f'{name}{scale}' for scale in range(scales) for name in TEMPORAL_LOSSES)

    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return bare(self.netG0).model_final_img[1].weight.device

    def generators(self) -> list[nn.Module]:
        """netG0 (coarsest) .. the finest scale's generator, as the model holds them (DDP under torchrun)."""
        return [getattr(self, f'netG{scale}') for scale in range(self.arch.n_scales_spatial)]

    def temporal_discriminators(self) -> list[nn.Module]:
        """netD_T0 .. (frame rates 1, 1/n_frames_D, ...)."""
        scales = self.discriminators.n_scales_temporal if self.discriminators is not None else 0
        return [getattr(self, f'netD_T{scale}') for scale in range(scales)]

    def networks_by_name(self) -> dict[str, nn.Module]:
        """{'G0': .., 'D': .., 'D_T0': .., 'E': ..}: the authors' checkpoint names (latest_net_G0.pth, ...) and pix2pixHD's
        for E, bare networks."""
        nets = {f'G{scale}': net for scale, net in enumerate(self.generators())}
        if self.discriminators is not None:
            nets['D'] = self.netD
            nets.update({f'D_T{scale}': net for scale, net in enumerate(self.temporal_discriminators())})
        if self.netE is not None:
            nets['E'] = self.netE
        return {name: bare(net) for name, net in nets.items()}

    def synthesizer(self) -> nn.Module:
        """The per-frame generator --export_onnx exports (the coarsest spatial scale, the only one by default): one
        tensor of labels and previous frames on channels -> the frame."""
        return FrameSynthesizer(bare(self.netG0), self.arch.generator_frame_nc * self.arch.n_frames_G)

    def synthesizer_input(self, data: dict) -> torch.Tensor:
        """What the synthesizer gets for a sequence's first made frame: its n_frames_G label maps (with a drawn style's
        or the photos' features, as inference's) and the frames before it (the photos, or black frames with
        --no_first_img), on channels; float32 on the CPU."""
        if self.arch.fg or self.arch.n_scales_spatial > 1:
            raise ModelError(
                f"--export_onnx: vid2vid's per-frame export is its one-scale generator without the foreground branch; this "
                f"model has {'--fg' if self.arch.fg else f'--n_scales_spatial {self.arch.n_scales_spatial}'}, which it does not cover"
            )
        tG = self.arch.n_frames_G
        label, inst = data['label'][:, :tG], data['inst'][:, :tG] if data['inst'].numel() else None
        photos = data['image'] if data['image'].dim() == 5 else None
        labels = self.encode_labels(label, inst)
        if self.arch.use_features:
            encoded = photos[:, :tG] if photos is not None and self.feature_sampler is None else None
            labels = self.add_features(labels, self.pool_map(label, inst), encoded)
        batch, _, _, height, width = labels.shape
        previous = self.first_previous(None if self.losses.no_first_img else photos, batch, (height, width))[0]
        return torch.cat((labels.flatten(1, 2), previous.flatten(1, 2)), 1).float().cpu().contiguous()

    # ---------------------------------------------------------------- inputs
    def encode_labels(self, label: torch.Tensor, inst: torch.Tensor | None = None) -> torch.Tensor:
        """B x T x 1 x H x W label ids (and instance ids) -> B x T x C x H x W: one-hot classes (+ instance edges)."""
        label = label.to(self.device, non_blocking=True)
        batch, frames = label.shape[:2]
        if self.arch.label_nc == 0:
            encoded = flat(label).float()
        else:
            encoded = one_hot_label(flat(label), self.arch.label_nc)
        if self.arch.use_instance:
            if inst is None:
                raise ValueError('vid2vid --use_instance: the data has no instance maps; add <phase>_inst/ or drop --use_instance')
            encoded = torch.cat((encoded, get_edges(flat(inst.to(self.device, non_blocking=True)))), dim=1)
        return encoded.view(batch, frames, *encoded.shape[1:])

    def pool_map(self, label: torch.Tensor, inst: torch.Tensor | None) -> torch.Tensor:
        """What E's output is averaged over (B x T x 1 x H x W ids): the label maps with --label_feat (pix2pixHD's rule:
        it wins over --instance_feat), else the instance maps."""
        if self.arch.label_feat:
            return label
        if inst is None or not inst.numel():
            raise ModelError('vid2vid --instance_feat: the data has no instance maps; add <phase>_inst/ or use --label_feat')
        return inst

    def encode_features(self, photos: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """E on every frame of `photos` (B x n x 3 x H x W), averaged inside each instance of that frame's `pool` map:
        B x n x feat_num x H x W (pix2pixHD's features, frame by frame)."""
        features = self.netE(flat(photos).to(self.device, non_blocking=True), flat(pool).to(self.device, non_blocking=True))
        return features.view(*photos.shape[:2], *features.shape[1:])

    def draw_style(self, pool: torch.Tensor) -> torch.Tensor:
        """One style for a whole clip: per instance of the B x T x 1 x H x W `pool` maps one cluster centre of its class
        (or --feat_choice's), the same in every frame, since an instance keeps its id over a sequence: B x T x feat_num x H x W."""
        if self.feature_sampler is None:
            raise ModelError(
                'vid2vid with instance features draws styles from cluster centres at test time: build it with them '
                '(builders.py reads --cluster_path), or pass the photos to encode'
            )
        batch, frames, _, height, width = pool.shape
        # The frames stacked into one tall map: the sampler draws once per (map, instance id), so once per clip.
        drawn = self.feature_sampler.sample(pool.reshape(batch, 1, frames * height, width).to(self.device))
        return drawn.view(batch, -1, frames, height, width).transpose(1, 2)

    def add_features(self, labels: torch.Tensor, pool: torch.Tensor, photos: torch.Tensor | None = None) -> torch.Tensor:
        """G's label input: `labels` (B x T x C x H x W, encoded) with each frame's instance features after its channels,
        E's of `photos` (training, --use_encoded_image) or, without photos, one style drawn for the clip."""
        features = self.encode_features(photos, pool) if photos is not None else self.draw_style(pool)
        return torch.cat((labels, features.to(labels.dtype)), 2)

    @torch.no_grad()
    def encode_instance_features(self, label: torch.Tensor, inst: torch.Tensor | None, image: torch.Tensor) -> tuple:
        """encode_features.py's rows, one per (sequence, instance): (class ids, E's output averaged over the instance's
        pixels in every frame N x feat_num, area = its pixels per frame / (h*w // 32)), as test time keeps one style per
        instance for a whole sequence."""
        pool = self.pool_map(label, inst).to(self.device)
        batch, frames, _, height, width = pool.shape
        # Frame by frame through E (E's activations of a whole sequence at once can be large), stacked into one tall map
        # as draw_style's, so that a segment is one instance over the whole sequence.
        encoder = bare(self.netE).model
        feature_map = torch.cat([encoder(image[:, t].to(self.device)) for t in range(frames)], 2)
        segment, segment_ids, _ = instance_segments(pool.reshape(batch, 1, frames * height, width))
        means, counts = segment_mean(feature_map, segment, segment_ids.numel())
        area = counts.float() / frames / (height * width // AREA_BLOCKS)
        return instance_class(segment_ids), means, area

    def foreground_mask(self, labels: torch.Tensor) -> torch.Tensor:
        """B x 1 x H x W: 1 where a frame's one-hot labels (B x C x H x W) are a --fg_labels class."""
        return labels[:, list(self.arch.fg_labels)].sum(1, keepdim=True).clamp(0, 1)

    # ---------------------------------------------------------------- generation
    def generate(self, labels: torch.Tensor, previous: Sequence[torch.Tensor], raw_only: int = 0, backprop: int = 1) -> GeneratedClip:
        """G on every frame it can make from `labels` (B x (n_frames_G-1+n) x C x H x W, encoded) and `previous` (per
        scale, finest first: the n_frames_G - 1 frames before the first made one): n frames, one at a time; the first
        `raw_only` of them from the hallucination branch alone (--no_first_img: nothing real to warp yet).

        `backprop` (the authors' frames to backpropagate): frames 0, backprop, 2 backprop, ... of the n get their
        previous frames detached, the others keep them attached, so the gradient of a frame's losses also flows into
        the frames G made before it in this call, as far as attached inputs lead; 1: every frame on its own."""
        tG, n_scales = self.arch.n_frames_G, self.arch.n_scales_spatial
        label_levels = pyramid(labels, n_scales)
        frames = [level.detach() for level in previous]  # grows by each made frame, per scale
        raws, flows, weights = [], [], []
        for t in range(labels.shape[1] - tG + 1):
            coarse: FrameOutput | None = None
            for scale, net in enumerate(self.generators()):
                level = n_scales - 1 - scale
                frame_labels = label_levels[level][:, t : t + tG]
                mask = self.foreground_mask(frame_labels[:, -1]) if self.arch.fg else None
                prev = frames[level][:, t : t + tG - 1]
                if t % backprop == 0:  # by default always: the authors backpropagate through one frame at a time
                    prev = prev.detach()
                coarse = net(frame_labels.flatten(1, 2), prev.flatten(1, 2), mask, coarse, t < raw_only)
                frames[level] = torch.cat((frames[level], coarse.image.unsqueeze(1)), dim=1)
            assert coarse is not None
            raws.append(coarse.raw)
            flows.append(coarse.flow)
            weights.append(coarse.weight)
        images = frames[0][:, tG - 1 :]
        return GeneratedClip(
            images=images,
            raw=torch.stack(raws, 1),
            flow=None if self.arch.no_flow else torch.stack([flow for flow in flows if flow is not None], 1),
            weight=None if self.arch.no_flow else torch.stack([weight for weight in weights if weight is not None], 1),
            last=[level[:, -(tG - 1) :].detach() for level in frames],
        )

    def first_previous(self, images: torch.Tensor | None, batch: int, size: tuple[int, int]) -> list[torch.Tensor]:
        """The previous frames of a clip's first made frame, per scale: its first n_frames_G - 1 photos, or black
        frames with --no_first_img (G then also makes the first frames, from its raw branch only)."""
        tG = self.arch.n_frames_G
        if self.losses.no_first_img or images is None:
            first = torch.zeros(batch, tG - 1, self.arch.output_nc, *size, device=self.device)
        else:
            first = images[:, : tG - 1].to(self.device, non_blocking=True)
        return pyramid(first, self.arch.n_scales_spatial)

    # ---------------------------------------------------------------- losses
    def vgg(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The VGG loss, on frames halved until at most VGG_MAX_WIDTH wide."""
        while fake.shape[-1] > VGG_MAX_WIDTH:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        assert self.criterionVGG is not None
        return self.criterionVGG(fake, real)

    def gan_and_feature_losses(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """D_real, D_fake (fake detached) and G_GAN, G_GAN_Feat of one discriminator, in the authors' order of passes."""
        d = self.discriminators
        assert d is not None
        pred_real = net(real)
        pred_fake = net(fake.detach())
        losses = {'D_real': self.criterionGAN(pred_real, True), 'D_fake': self.criterionGAN(pred_fake, False)}
        with no_sync([net]):  # G's pass: its backward gives D no gradients
            pred_fake = net(fake)
        losses['G_GAN'] = self.criterionGAN(pred_fake, True)
        if d.get_interm_feat:
            losses['G_GAN_Feat'] = feature_matching_loss(pred_fake, pred_real, d.num_D, d.n_layers_D, self.losses.lambda_feat)
        else:
            losses['G_GAN_Feat'] = torch.zeros_like(losses['G_GAN'])
        return losses

    def image_losses(
        self,
        real_A: torch.Tensor,
        real_B: torch.Tensor,
        real_B_prev: torch.Tensor,
        generated: GeneratedClip,
        fake_B_prev: torch.Tensor,
        flow_ref: torch.Tensor,
        conf_ref: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The image discriminator's and the flow losses (the authors' Vid2VidModelD.forward at scale 0), on clips
        B x n x C x H x W: labels, real frames and the frames before them, G's output, the frames before G's (real
        then G's), and the reference flow (frame t to t-1, pixels) with its confidence."""
        s = self.losses
        real_A, real_B, real_B_prev, fake_B_prev = flat(real_A), flat(real_B), flat(real_B_prev), flat(fake_B_prev)
        fake_B, fake_B_raw = flat(generated.images), flat(generated.raw)
        flow_ref, conf_ref = flat(flow_ref), flat(conf_ref)
        losses: dict[str, torch.Tensor] = {}
        if generated.flow is not None and generated.weight is not None:
            flow, weight = flat(generated.flow), flat(generated.weight)
            losses['F_Flow'] = masked_l1(flow, flow_ref, conf_ref) * s.lambda_F / 2 ** (self.arch.n_scales_spatial - 1)
            losses['F_Warp'] = masked_l1(warp(real_B_prev, flow), real_B, conf_ref) * s.lambda_T
            losses['W'] = masked_l1(weight, torch.zeros_like(weight), conf_ref) if s.no_first_img else weight.new_zeros(())
        else:
            losses['F_Flow'] = losses['F_Warp'] = losses['W'] = conf_ref.new_zeros(())
        use_vgg = self.criterionVGG is not None
        losses['G_VGG'] = self.vgg(fake_B, real_B) * s.lambda_feat if use_vgg else real_B.new_zeros(())
        d_losses = self.gan_and_feature_losses(self.netD, torch.cat((real_A, real_B), 1), torch.cat((real_A, fake_B), 1))
        losses['G_Warp'] = masked_l1(fake_B, warp(fake_B_prev, flow_ref).detach(), conf_ref) * s.lambda_T
        if use_vgg:
            losses['G_VGG'] = losses['G_VGG'] + self.vgg(fake_B_raw, real_B) * s.lambda_feat
        raw_losses = self.gan_and_feature_losses(self.netD, torch.cat((real_A, real_B), 1), torch.cat((real_A, fake_B_raw), 1))
        for name, value in d_losses.items():
            losses[name] = value + raw_losses[name]
        return {name: losses[name] for name in IMAGE_LOSSES}

    def temporal_losses(self, scale: int, real: torch.Tensor, fake: torch.Tensor, flow_ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """Temporal discriminator `scale` on runs of n_frames_D frames (N x n_frames_D x C x H x W, real and G's) with
        the flows between them (N x (n_frames_D-1) x 2 x H x W, pixels; fed / 20 as the authors do)."""
        net = getattr(self, f'netD_T{scale}')
        flows = flow_ref.flatten(1, 2) / FLOW_MULTIPLIER
        real_in = torch.cat((real.flatten(1, 2), flows), 1)
        fake_in = torch.cat((fake.flatten(1, 2), flows), 1)
        losses = self.gan_and_feature_losses(net, real_in, fake_in)
        named = {
            'G_T_GAN': losses['G_GAN'],
            'G_T_GAN_Feat': losses['G_GAN_Feat'],
            'D_T_real': losses['D_real'],
            'D_T_fake': losses['D_fake'],
            'G_T_Warp': losses['G_GAN'].new_zeros(()),
        }
        return {f'{name}{scale}': value for name, value in named.items()}

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def inference(
        self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None, photos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A whole clip (B x T x 1 x H x W labels): B x T x 3 x H x W. With `image` (B x >= n_frames_G-1 x 3 x H x W:
        the photos, or frames from a single-image generator) its first n_frames_G - 1 frames begin the video and G
        makes the rest one by one; with --no_first_img G makes every frame,
        the first from its hallucination branch alone after black frames (the first label map stands in for the label
        maps before the clip), as the authors' test time does. With instance features each call draws a style for the
        whole clip, or encodes `photos` (B x T x 3 x H x W, --use_encoded_image) frame by frame."""
        labels = self.encode_labels(label, inst)
        if self.arch.use_features:
            labels = self.add_features(labels, self.pool_map(label, inst), photos)
        batch, _, _, height, width = labels.shape
        if not self.losses.no_first_img:
            previous = self.first_previous(image, batch, (height, width))
            return torch.cat((previous[0], self.generate(labels, previous).images), 1)
        given = self.arch.n_frames_G - 1
        padded = torch.cat((labels[:, :1].expand(-1, given, -1, -1, -1), labels), 1)
        return self.generate(padded, self.first_previous(None, batch, (height, width)), raw_only=1).images

    @torch.no_grad()
    def single_image_frames(self, label: torch.Tensor, inst: torch.Tensor | None) -> torch.Tensor:
        """The first n_frames_G - 1 frames from the single-image generator (B x (n_frames_G-1) x 3 x H x W)."""
        if self.single_G is None:
            raise ValueError('no single-image generator: pass --use_single_G --single_G_dir')
        given = self.arch.n_frames_G - 1
        frames = []
        for t in range(given):
            frame_inst = inst[:, t].to(self.device) if inst is not None and inst.numel() else None
            frames.append(self.single_G(label[:, t].to(self.device), frame_inst))
        return torch.stack(frames, 1)


class FrameSynthesizer(nn.Module):
    """netG0 as one frame's function for ONNX: its input is the encoded labels of n_frames_G frames (the first
    `label_channels` channels) then the previous frames; its output the composed frame."""

    def __init__(self, generator: nn.Module, label_channels: int) -> None:
        super().__init__()
        self.generator = generator
        self.label_channels = label_channels

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """The composed frame (B x 3 x H x W)."""
        return self.generator(input[:, : self.label_channels], input[:, self.label_channels :]).image
