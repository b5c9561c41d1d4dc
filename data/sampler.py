"""A sampler that makes every epoch reproducible and resumable, and shards it across processes."""

from collections.abc import Iterator

import torch


class ResumableSampler(torch.utils.data.Sampler):
    """Yields `(epoch, index)` keys: the epoch's order (shuffled or not) sharded to this rank.

    With a seed the shuffle of epoch e is drawn from a generator seeded with seed + e and the dataset
    draws its crop/flip from (seed, epoch, index), so a run resumed mid-epoch sees exactly the samples
    and augmentations an uninterrupted run would. Without a seed the order comes from torch's global
    RNG, as in the reference. Only whole global batches are used (drop_last across all ranks).
    An epoch has `n_samples` samples: the first ones in order, or, shuffled, drawn afresh each epoch from
    all `n_files` (as the reference's --max_dataset_size).
    """

    def __init__(
        self,
        n_samples: int,
        batch_size: int,
        shuffle: bool,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        n_files: int | None = None,
    ) -> None:
        self.n_samples = n_samples
        self.n_files = n_samples if n_files is None else n_files
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch to draw, skipping its first `skip_batches` batches (already trained on)."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def batches_per_epoch(self) -> int:
        """Whole batches each rank gets per epoch."""
        return self.n_samples // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.skip_batches) * self.batch_size

    def __iter__(self) -> Iterator[tuple]:
        if self.shuffle:
            generator = None
            if self.seed is not None:
                generator = torch.Generator()
                generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n_files, generator=generator)
        else:
            order = torch.arange(self.n_samples)
        used = self.batches_per_epoch() * self.batch_size * self.world_size
        mine = order[:used][self.rank :: self.world_size][self.skip_batches * self.batch_size :]
        return iter([(self.epoch, int(index)) for index in mine])
