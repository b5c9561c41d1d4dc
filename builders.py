"""The one place that builds what an entry point runs: dataset, loader, model or trainer, from settled options.

train.py, test.py, encode_features.py, precompute_feature_maps.py, scripts/benchmark.py and
scripts/editor.py all build through these functions, so a new network, dataset mode or checkpoint rule
is wired in once.
"""

import argparse
import json
import os
from typing import Any, cast

import torch

from data.sampler import ResumableSampler
from models import METHODS, load_method
from models.common.method import Dataset
from options.train_options import resume_changes, resume_policy
from util.checkpoint import load_networks, load_training_state
from util.devices import autotune_convolutions, use_cpu_threads
from util.distributed import from_rank0
from util.errors import OptionsError
from util.records import ARCHITECTURE_FILE, experiment_dir, load_saved_options, write_text


def build_dataset(opt: argparse.Namespace) -> Dataset:
    """--model's dataset of --dataroot/--phase, checked (pairing, sizes, modes) before anything runs."""
    dataset = load_method(opt.model).dataset(opt)
    print(f"dataset [{dataset.name()}] was created with {dataset_length(opt, dataset)} samples")
    return dataset


def dataset_length(opt: argparse.Namespace, dataset: Dataset) -> int:
    """Samples per epoch: at most --max_dataset_size (drawn from all files each epoch unless --serial_batches)."""
    return int(min(dataset.dataset_size, opt.max_dataset_size))


def build_data_loader(opt: argparse.Namespace, dataset: Dataset) -> torch.utils.data.DataLoader:
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
        cast(torch.utils.data.Dataset, dataset),  # a method's dataset is a torch Dataset with the protocol's extras
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


def read_model_files(opt: argparse.Namespace) -> dict:
    """The files --model's model is built from besides its weights (cluster centres at test time, VGG19 for a training
    loss), read here: the models do no file I/O. {build_model's keyword: value}."""
    return load_method(opt.model).read_files(opt)


def build_model(opt: argparse.Namespace, files: dict | None = None) -> Any:
    """--model's model on its device with the weights the options ask for (test: --which_epoch; train: resume or pretrain).

    `files`: what read_model_files() returned, when the caller has read them (the editor); else they are read here.
    """
    method = load_method(opt.model)
    model = method.build_model(opt, **(files if files is not None else read_model_files(opt)))
    load_networks(model.networks_by_name(), opt, method.architecture_options)
    model = model.to(torch.device(opt.device))
    autotune_convolutions(opt)
    use_cpu_threads(opt)
    print(f'model [{type(model).__name__}] was created on {opt.device}')
    return model


def architecture_record(opt: argparse.Namespace) -> dict:
    """{'model': --model, 'architecture': its Architecture value, 'flags': the architecture flags that build it}: the
    record of an experiment's networks, which test.py, --continue_train and the editor take the architecture from."""
    method = load_method(opt.model)
    flags = {flag: getattr(opt, flag) for flag in method.architecture_options if hasattr(opt, flag)}
    return {'model': opt.model, 'architecture': method.architecture.from_options(opt).to_dict(), 'flags': flags}


def save_architecture(opt: argparse.Namespace) -> None:
    """Write <experiment>/architecture.json (train.py, with opt.json): the record test.py and a resume take the networks from."""
    write_text(os.path.join(experiment_dir(opt), ARCHITECTURE_FILE), json.dumps(architecture_record(opt), indent=1, sort_keys=True))


def build_trainer(opt: argparse.Namespace) -> Any:
    """--model's trainer around build_model(); with --continue_train also the saved optimisers, lr and RNG states."""
    method = METHODS[opt.model]
    trainer = method.build_trainer(opt, build_model(opt))
    if opt.continue_train:
        state = load_training_state(experiment_dir(opt), opt.which_epoch)
        if state is not None:
            saved = load_saved_options(experiment_dir(opt)) or {}
            trainer.restore_training_state(state, resume_changes(saved, opt, resume_policy(method)))
            print(f'Restored optimisers, lr {trainer.current_lr:g} and RNG states from {opt.which_epoch}_train_state.pth')
        # The weights (and the training state) were checked finite as they were read.
        trainer.last_good = f'the {opt.which_epoch!r} checkpoint this run resumed from'
    return trainer
