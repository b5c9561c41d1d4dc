"""The one place that builds what an entry point runs: dataset, loader, model or trainer, from settled options.

train.py, test.py, encode_features.py, precompute_feature_maps.py, scripts/benchmark.py and
scripts/editor.py all build through these functions, so a new network, dataset mode or checkpoint rule
is wired in once.
"""

import argparse

import torch

from data.aligned_dataset import AlignedDataset
from data.sampler import ResumableSampler
from models.pix2pixHD_model import Pix2PixHDModel
from models.pix2pixHD_trainer import Pix2PixHDTrainer
from options.train_options import resume_changes
from util.checkpoint import experiment_dir, load_networks, load_saved_options, load_training_state
from util.distributed import from_rank0
from util.errors import OptionsError


def build_dataset(opt: argparse.Namespace) -> AlignedDataset:
    """The aligned dataset of --dataroot/--phase, checked (pairing, sizes, modes) before anything runs."""
    dataset = AlignedDataset(opt)
    print(f"dataset [{dataset.name()}] was created with {dataset_length(opt, dataset)} samples")
    return dataset


def dataset_length(opt: argparse.Namespace, dataset: AlignedDataset) -> int:
    """Samples per epoch: at most --max_dataset_size (drawn from all files each epoch unless --serial_batches)."""
    return int(min(dataset.dataset_size, opt.max_dataset_size))


def build_data_loader(opt: argparse.Namespace, dataset: AlignedDataset) -> torch.utils.data.DataLoader:
    """DataLoader with nThreads workers, shuffled unless --serial_batches, whole batches only, this rank's shard."""
    sampler = ResumableSampler(
        dataset_length(opt, dataset),
        opt.batchSize,
        shuffle=not opt.serial_batches,
        seed=sampler_seed(opt),
        rank=opt.rank,
        world_size=opt.world_size,
        n_files=dataset.dataset_size,
    )
    if sampler.batches_per_epoch() == 0:
        processes = f' x {opt.world_size} processes' if opt.world_size > 1 else ''
        raise OptionsError(
            f"--batchSize {opt.batchSize}{processes} is larger than the dataset: {sampler.n_samples} samples in "
            f"{opt.dataroot} (phase {opt.phase}, --max_dataset_size {opt.max_dataset_size:g}) make no whole batch; "
            f"use --batchSize {max(1, sampler.n_samples // opt.world_size)} or less"
        )
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


def sampler_seed(opt: argparse.Namespace) -> int | None:
    """--seed; under torchrun without one, a seed rank 0 draws: every rank must shuffle the same order to take its part."""
    if opt.seed is not None or opt.world_size == 1:
        return opt.seed
    return from_rank0(int(torch.randint(2**31 - 1, ()).item()))


def build_data(opt: argparse.Namespace) -> tuple:
    """(dataset, loader) for the options' phase."""
    dataset = build_dataset(opt)
    return dataset, build_data_loader(opt, dataset)


def build_model(opt: argparse.Namespace) -> Pix2PixHDModel:
    """The model on its device with the weights the options ask for (test: --which_epoch; train: resume or pretrain)."""
    model = Pix2PixHDModel(opt)
    load_networks(model.networks_by_name(), opt)
    model = model.to(torch.device(opt.device))
    print(f'model [{type(model).__name__}] was created on {opt.device}')
    return model


def build_trainer(opt: argparse.Namespace) -> Pix2PixHDTrainer:
    """The trainer around build_model(); with --continue_train also the saved optimisers, lr and RNG states."""
    trainer = Pix2PixHDTrainer(opt, build_model(opt))
    if opt.continue_train:
        state = load_training_state(experiment_dir(opt), opt.which_epoch)
        if state is not None:
            trainer.restore_training_state(state, resume_changes(load_saved_options(experiment_dir(opt)) or {}, opt))
            print(f'Restored optimisers, lr {trainer.current_lr:g} and RNG states from {opt.which_epoch}_train_state.pth')
        # The weights (and the training state) were checked finite as they were read.
        trainer.last_good = f'the {opt.which_epoch!r} checkpoint this run resumed from'
    return trainer
