"""vid2vid's data and pages: clips of label-map sequences whose length grows during training (the authors'
progressive sequence length), the training page's row and the results page's videos."""

import argparse
import dataclasses
from typing import Any

import numpy as np
import torch

from data.sequence_dataset import SequenceDataset, sequence_dataset
from util.errors import DatasetError, OptionsError
from util.images import tensor2im, tensor2label

from ..common.label_to_image import variant_names

# The authors never read clips longer than this many frames, whatever the sequences hold.
MAX_CLIP = 128


@dataclasses.dataclass(frozen=True)
class GrowingClips:
    """Frames of a training clip in epoch e (1-based): the n_frames_G - 1 given frames plus --n_frames_total made
    ones, doubled every --niter_step epochs, at most what the shortest sequence (and 128 frames) holds, rounded down to
    whole forwards of --max_frames_per_gpu frames (the authors' update_training_batch and get_video_params)."""

    first: int
    every: int
    given: int
    per_forward: int
    shortest: int

    def __call__(self, epoch: int) -> int:
        """Frames to read in `epoch`."""
        room = min(self.shortest, MAX_CLIP) - self.given
        made = min(room, self.first * 2 ** ((max(epoch, 1) - 1) // self.every))
        per_forward = min(self.per_forward, made)
        return made // per_forward * per_forward + self.given


def dataset(opt: argparse.Namespace) -> SequenceDataset:
    """Training: clips on the growing schedule, their frames spaced by a step up to --max_t_step, with the reference
    flow from <phase>_flow (composed over skipped frames) or --flow_weights' RAFT; test: whole sequences from their
    first frame."""
    sequences = sequence_dataset(opt)
    if not opt.isTrain:
        return sequences
    given = opt.n_frames_G - 1
    if sequences.shortest_sequence() <= given:
        raise DatasetError(
            f"{opt.dataroot}: a sequence of {sequences.shortest_sequence()} frames is too short for --n_frames_G {opt.n_frames_G} "
            f"(G needs {given} frames before the first it makes); use longer sequences or a smaller --n_frames_G"
        )
    if sequences.flows is None and not opt.flow_weights:
        raise OptionsError(
            f"{opt.dataroot}/{opt.phase}_flow not found: vid2vid's flow losses need the reference flow; add flow files "
            f"(docs/VIDEO.md) or pass --flow_weights PATH to torchvision RAFT weights"
        )
    schedule = GrowingClips(opt.n_frames_total, opt.niter_step, given, opt.max_frames_per_gpu, sequences.shortest_sequence())
    sequences.clip_schedule = schedule
    sequences.max_step = opt.max_t_step
    return sequences


def training_visuals(opt: argparse.Namespace, data: dict, generated: torch.Tensor) -> dict[str, np.ndarray]:
    """The training page's row: the first clip's last label map, the last frame G made, and its photo."""
    batch = data['label'].shape[0]
    last_made = generated.view(batch, -1, *generated.shape[1:])[0, -1]
    return {
        'input_label': tensor2label(data['label'][0, -1], opt.label_nc),
        'synthesized_image': tensor2im(last_made),
        'real_image': tensor2im(data['image'][0, -1]),
    }


def first_frames(opt: argparse.Namespace, model: Any, data: dict) -> torch.Tensor | None:
    """The frames before G's first at test time: from the single-image pix2pixHD (--use_single_G), or the sequence's
    photos (B x (n_frames_G-1) x 3 x H x W), or None with --no_first_img (G makes them from black frames)."""
    if opt.use_single_G:
        return model.single_image_frames(data['label'], data.get('inst'))
    if opt.no_first_img:
        return None
    photos = data['image']
    if photos.dim() < 5 or photos.shape[1] < opt.n_frames_G - 1:
        raise DatasetError(
            f"{data['path'][0]}: no photos for the first {opt.n_frames_G - 1} frames; vid2vid starts a video from them "
            f"(add <phase>_img/), from a single-image pix2pixHD (--use_single_G --single_G_dir) or from black frames with a "
            f"model trained with --no_first_img"
        )
    return photos[:, : opt.n_frames_G - 1]


def video_visuals(opt: argparse.Namespace, model: Any, data: dict) -> dict[str, np.ndarray]:
    """The results page's row of one sequence, as videos (T x H x W x 3): its label maps, the synthesized video (one per
    style with --n_styles: each draws its styles once for the whole video), and the real video where the test set has
    photos."""
    first = first_frames(opt, model, data)
    photos = data['image'] if opt.use_features and opt.use_encoded_image else None
    visuals = {'input_label': np.stack([tensor2label(label, opt.label_nc) for label in data['label'][0]])}
    for name in variant_names(opt.n_variants):
        synthesized = model.inference(data['label'], data.get('inst'), first, photos)
        visuals[name] = np.stack([tensor2im(frame) for frame in synthesized[0]])
    photos = data['image']
    if photos.dim() == 5 and photos.shape[1] == data['label'].shape[1]:
        visuals['real_image'] = np.stack([tensor2im(frame) for frame in photos[0]])
    return visuals
