"""The CRN model: input encoding, the generator's images, the loss of one iteration, and inference (no file I/O)."""

from typing import cast

import torch
import torch.nn as nn

from util.cityscapes import LABEL_TO_TRAIN_ID
from util.distributed import bare

from ..common.labels import one_hot_label
from .architecture import CITYSCAPES_INPUT_NC, Architecture
from .loss import LAYER_NAMES, crn_loss
from .networks import CRNGenerator, build_networks
from .vgg import CRNVgg19

VOID = CITYSCAPES_INPUT_NC - 1


def cityscapes_train_ids() -> torch.Tensor:
    """labelId (0..255) -> the official input's channel: the trainId (0..18), or 19 (void) for every other id."""
    table = torch.full((256,), VOID, dtype=torch.long)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table


class FirstImage(nn.Module):
    """The generator's first of its K images, clipped to [-1, 1]: what inference() returns, as one network."""

    def __init__(self, netG: CRNGenerator) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, input_label: torch.Tensor) -> torch.Tensor:
        """Encoded labels -> B x 3 x H x W."""
        return self.netG(input_label)[:, 0].clamp(-1.0, 1.0)


class CRNModel(nn.Module):
    """Owns the generator (and, for training, the loss network); computes images and CRN's loss."""

    loss_names = ('G_loss', *LAYER_NAMES)
    train_ids: torch.Tensor

    def __init__(self, arch: Architecture, loss: str = 'diversity', vgg: CRNVgg19 | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.loss_mode = loss
        self.netG = cast(CRNGenerator, build_networks(arch)['G'])
        self.vgg = vgg
        self.register_buffer('train_ids', cityscapes_train_ids(), persistent=False)

    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return self.train_ids.device

    def encode_input(self, label: torch.Tensor) -> torch.Tensor:
        """Label ids B x 1 x H x W (or RGB B x 3 x H x W for the rgb layout) -> the generator's input channels."""
        label = label.to(self.train_ids.device, non_blocking=True)
        if self.arch.label_layout == 'rgb':
            return label.float()
        if self.arch.label_layout == 'cityscapes':
            ids = label.long()
            # Ids beyond the table (no Cityscapes labelIds PNG holds any) are void like every unevaluated class.
            label = torch.where(ids < self.train_ids.numel(), self.train_ids[ids.clamp(0, self.train_ids.numel() - 1)], VOID)
        return one_hot_label(label, self.arch.input_nc)

    def forward(self, label: torch.Tensor, image: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One training forward: ({'G_loss', 'p0'..'p5'}, the images B x K x 3 x H x W in [-1, 1], not clipped)."""
        if self.vgg is None:
            raise RuntimeError('CRNModel was built without a VGG19 (inference only); pass vgg= to train')
        input_label = self.encode_input(label)
        images = self.netG(input_label)
        real = image.to(input_label.device, non_blocking=True)
        # Without classes (rgb input) the diversity loss takes the whole image as one class.
        masks = input_label if self.arch.label_layout != 'rgb' else torch.ones_like(input_label[:, :1])
        return crn_loss(self.vgg, images, real, masks, self.loss_mode), images

    @torch.no_grad()
    def inference(self, label: torch.Tensor, inst: torch.Tensor | None = None, image: torch.Tensor | None = None) -> torch.Tensor:
        """The first of the K images per label map, clipped to [-1, 1] as the demos clip to 0..255 (inst and image unused)."""
        return self.synthesizer()(self.encode_input(label))

    def synthesizer(self) -> nn.Module:
        """The network test.py's images come from, on the encoded labels (--export_onnx exports it)."""
        return FirstImage(bare(self.netG))

    def networks_by_name(self) -> dict[str, nn.Module]:
        """{'G': netG}: the names in checkpoint files."""
        return {'G': bare(self.netG)}  # the trainer's DDP (torchrun) unwrapped
