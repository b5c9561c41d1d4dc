"""Building the DataLoader over the aligned dataset."""
import argparse

import torch

from .aligned_dataset import AlignedDataset
from .sampler import ResumableSampler


def create_dataset(opt: argparse.Namespace) -> AlignedDataset:
    """The aligned dataset (the sampler applies --max_dataset_size)."""
    dataset = AlignedDataset(opt)
    print(f"dataset [{dataset.name()}] was created with {dataset_length(opt, dataset)} samples")
    return dataset


def dataset_length(opt: argparse.Namespace, dataset: AlignedDataset) -> int:
    """Samples per epoch: at most --max_dataset_size (drawn from all files each epoch unless --serial_batches)."""
    return int(min(dataset.dataset_size, opt.max_dataset_size))


def create_data_loader(opt: argparse.Namespace, dataset: AlignedDataset = None, rank: int = 0,
                       world_size: int = 1) -> torch.utils.data.DataLoader:
    """DataLoader with nThreads workers, shuffled unless --serial_batches, whole batches only, sharded per rank."""
    dataset = dataset if dataset is not None else create_dataset(opt)
    sampler = ResumableSampler(dataset_length(opt, dataset), opt.batchSize, shuffle=not opt.serial_batches,
                               seed=opt.seed, rank=rank, world_size=world_size, n_files=dataset.dataset_size)
    workers = int(opt.nThreads)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=opt.batchSize,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=bool(opt.gpu_ids),
        persistent_workers=workers > 0 and opt.isTrain,
    )
