"""Process-wide device settings that follow the options."""

import argparse

import torch


def use_cpu_threads(opt: argparse.Namespace) -> None:
    """--cpu_threads: the threads of this process's CPU operations (0 leaves PyTorch's default, one per core)."""
    if opt.cpu_threads > 0:
        torch.set_num_threads(opt.cpu_threads)


def autotune_convolutions(opt: argparse.Namespace) -> None:
    """On CUDA, cuDNN's autotuner by the 2018 reference's rule (pix2pix and CRN follow it too); the CPU is left alone.

    On for inference and for training on crops or rescaled images, which have one size; off when training
    at full resolution with --resize_or_crop none, whose trial runs of every algorithm can run out of memory
    (the reference's reason). Set both ways, as the process-wide setting follows the last model built.
    On an H200 our 512p step was 0.93x the reference's without it (the suspected cause; not re-measured).
    """
    if torch.device(opt.device).type == 'cuda':
        torch.backends.cudnn.benchmark = not opt.isTrain or opt.resize_or_crop != 'none'
