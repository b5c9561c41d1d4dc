"""What the label-to-image methods (pix2pixHD, pix2pix, CRN) share at the level of a batch: the aligned dataset of
label / instance / photo files, the training page's row, and test time's synthesis (style variants, --relabel)."""

import argparse
from typing import Any

import numpy as np
import torch

from data.aligned_dataset import AlignedDataset
from util.visualizer import make_visuals

from .labels import check_relabel, parse_int_pairs, relabel_maps


def aligned_dataset(opt: argparse.Namespace) -> AlignedDataset:
    """Label maps, instance maps and photos paired by name under --dataroot/--phase ({'label', 'inst', 'image', 'feat', 'path'})."""
    return AlignedDataset(opt)


def training_visuals(opt: argparse.Namespace, data: dict, generated: torch.Tensor) -> dict[str, np.ndarray]:
    """The training page's row of the batch's first sample: its label map, the synthesized image, the photo."""
    return make_visuals(data['label'][0], opt.label_nc, {'synthesized_image': generated[0]}, data['image'][0])


def variant_names(n_variants: int) -> list[str]:
    """The results page's names of a sample's synthesized variants: one image, or one per style (--n_styles)."""
    return ['synthesized_image'] if n_variants == 1 else [f'synthesized_image_style{k}' for k in range(n_variants)]


def test_visuals(opt: argparse.Namespace, model: Any, data: dict) -> dict[str, np.ndarray]:
    """The results page's row of one test sample: its (relabelled) label map, --n_styles synthesized variants (one
    for a method without styles), the real photo; the real photo is encoded instead of drawn styles where the
    options read photos (--use_encoded_image)."""
    relabel = check_relabel(parse_int_pairs(opt.relabel, '--relabel'), opt.label_nc)
    image = data['image'] if opt.reads_photos else None
    label, inst = relabel_maps(data['label'], data['inst'], relabel)
    synthesized = {name: model.inference(label, inst, image)[0] for name in variant_names(opt.n_variants)}
    return make_visuals(label[0], opt.label_nc, synthesized, data['image'][0])
