"""The first frames of a test video from a single-image generator: a pix2pixHD of this project trained on the same
label maps (the authors' --use_single_G, which loads their label2city_single checkpoints)."""

import os

import torch
import torch.nn as nn

from util.checkpoint import read_state_dict
from util.errors import ModelError
from util.records import load_architecture_record

from ..common.labels import get_edges, one_hot_label
from ..pix2pixhd import Architecture as Pix2PixHDArchitecture
from ..pix2pixhd.networks import define_G


class SingleImageGenerator(nn.Module):
    """A pix2pixHD generator on one frame's label map (and instance map): B x 1 x H x W ids -> B x 3 x H x W image."""

    def __init__(self, arch: Pix2PixHDArchitecture, generator: nn.Module) -> None:
        super().__init__()
        self.arch = arch
        self.generator = generator

    def forward(self, label: torch.Tensor, inst: torch.Tensor | None) -> torch.Tensor:
        """The frame pix2pixHD makes for this label map."""
        encoded = one_hot_label(label, self.arch.label_nc)
        if not self.arch.no_instance:
            if inst is None or not inst.numel():
                raise ModelError('--single_G_dir: its pix2pixHD reads instance maps, and the test sequences have none')
            encoded = torch.cat((encoded, get_edges(inst)), 1)
        return self.generator(encoded)


def load_single_generator(experiment: str, label_nc: int) -> SingleImageGenerator:
    """The latest G of the pix2pixHD experiment folder `experiment` (architecture.json + latest_net_G.pth)."""
    record = load_architecture_record(experiment) if os.path.isdir(experiment) else None
    if record is None or record.get('model') != 'pix2pixHD':
        raise ModelError(
            f"--single_G_dir {experiment}: not a pix2pixHD experiment folder with architecture.json; train one with "
            f"train.py --name NAME on the same label maps and pass checkpoints/NAME"
        )
    arch = Pix2PixHDArchitecture.from_dict(record['architecture'])
    if arch.instance_feat or arch.label_feat or arch.label_nc != label_nc:
        raise ModelError(
            f"--single_G_dir {experiment}: its pix2pixHD has --label_nc {arch.label_nc}"
            f"{' and instance features' if arch.instance_feat or arch.label_feat else ''}; the first frames need one with "
            f"--label_nc {label_nc} and no features"
        )
    input_nc = arch.label_nc + (0 if arch.no_instance else 1)
    generator = define_G(
        input_nc, arch.output_nc, arch.ngf, arch.netG, arch.n_downsample_global, arch.n_blocks_global,
        arch.n_local_enhancers, arch.n_blocks_local, arch.norm, arch.use_dropout,
    )  # fmt: skip
    generator.load_state_dict(read_state_dict(os.path.join(experiment, 'latest_net_G.pth'), 'G', 'latest', experiment))
    return SingleImageGenerator(arch, generator.eval())
