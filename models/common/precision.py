"""The precision a trained model synthesizes in at test time (test.py, the editor, benchmarks), for every method."""

import argparse
import contextlib

import torch


def inference_precision(opt: argparse.Namespace, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for --data_type 16 (float16 on CUDA) or --amp; float32 otherwise."""
    if opt.amp != 'off':
        return torch.autocast(device.type, dtype=torch.bfloat16 if opt.amp == 'bf16' else torch.float16)
    if opt.data_type == 16:
        if device.type == 'cuda':
            return torch.autocast('cuda', dtype=torch.float16)
        print('--data_type 16 is float16 on CUDA only: running float32 on the CPU')
    return contextlib.nullcontext()
