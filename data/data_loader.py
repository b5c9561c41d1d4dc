"""Building the DataLoader over the aligned dataset."""
import argparse

import torch

from .aligned_dataset import AlignedDataset


def create_dataset(opt: argparse.Namespace) -> torch.utils.data.Dataset:
    """The aligned dataset, truncated to --max_dataset_size."""
    dataset = AlignedDataset(opt)
    if len(dataset) > opt.max_dataset_size:
        dataset = torch.utils.data.Subset(dataset, range(int(opt.max_dataset_size)))
    print(f"dataset [{dataset_name(dataset)}] was created with {len(dataset)} samples")
    return dataset


def dataset_name(dataset: torch.utils.data.Dataset) -> str:
    """Name of the (possibly truncated) dataset for messages."""
    inner = dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset
    return inner.name()


def create_data_loader(opt: argparse.Namespace, dataset: torch.utils.data.Dataset = None) -> torch.utils.data.DataLoader:
    """DataLoader with nThreads workers, shuffled unless --serial_batches, whole batches only."""
    dataset = dataset if dataset is not None else create_dataset(opt)
    workers = int(opt.nThreads)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=opt.batchSize,
        shuffle=not opt.serial_batches,
        num_workers=workers,
        drop_last=True,
        pin_memory=bool(opt.gpu_ids),
        persistent_workers=workers > 0 and opt.isTrain,
    )
