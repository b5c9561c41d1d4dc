"""Counting training progress in images, as the reference does: where to resume, and when to print,
display and save."""

import argparse
import time


def resume_position(epoch: int, epoch_iter: int, dataset_size: int, batch_size: int) -> tuple[int, int, str | None]:
    """(epoch, epoch_iter, note) to resume from iter.txt's position when an epoch now has `dataset_size` images.

    When the dataset shrank, or --max_dataset_size / --batchSize changed since the save, iter.txt's image
    count may lie past the end of the epoch (then the epoch counts as complete: its end-of-epoch lr step
    and checkpoint run, then the next epoch starts) or between two batches (then the epoch resumes at the
    last whole batch); the note says which. No note: resumed exactly where the save was made.
    """
    where = f'iter.txt says epoch {epoch}, image {epoch_iter}'
    if epoch_iter > dataset_size:
        return (
            epoch,
            dataset_size,
            (
                f'{where}, but an epoch now has {dataset_size} images (the dataset, --max_dataset_size or '
                f'--batchSize changed): epoch {epoch} counts as complete, training goes on with epoch {epoch + 1}'
            ),
        )
    if epoch_iter % batch_size:
        whole = epoch_iter - epoch_iter % batch_size
        return epoch, whole, f'{where}, not a whole number of --batchSize {batch_size} batches: resuming epoch {epoch} at image {whole}'
    return epoch, epoch_iter, None


class IterationCounter:
    """Epochs, images seen (`total_steps`, `epoch_iter`) and the print/display/save timing of train.py.

    Steps count images (batchSize x accum_steps per iteration). A resumed run keeps the phase of every frequency:
    the reference compares `total_steps % freq` with its value at the start of the run, so a run resumed
    at step 250 with --print_freq 100 prints at 350, 450, ...
    """

    def __init__(self, opt: argparse.Namespace, dataset_size: int, start_epoch: int = 1, epoch_iter: int = 0) -> None:
        self.opt = opt
        self.dataset_size = dataset_size
        self.start_epoch = start_epoch
        self.n_epochs = opt.niter + opt.niter_decay
        self.images_per_step = opt.batchSize * opt.accum_steps
        self.epoch = start_epoch
        self.epoch_iter = epoch_iter
        self.total_steps = (start_epoch - 1) * dataset_size + epoch_iter
        self.display_delta = self.total_steps % opt.display_freq
        self.print_delta = self.total_steps % opt.print_freq
        self.save_delta = self.total_steps % opt.save_latest_freq
        self.epoch_start_time = self.iter_start_time = time.time()
        self.timed_from_step = self.total_steps  # images counted when the print timer started

    def training_epochs(self) -> range:
        """The epochs still to train, 1-based, up to niter + niter_decay."""
        return range(self.start_epoch, self.n_epochs + 1)

    def record_epoch_start(self, epoch: int) -> int:
        """Start `epoch`; return how many of its batches a resumed run already trained on."""
        self.epoch = epoch
        if epoch != self.start_epoch:
            self.epoch_iter %= self.dataset_size
        self.epoch_start_time = self.iter_start_time = time.time()
        self.timed_from_step = self.total_steps
        return self.epoch_iter // self.opt.batchSize

    def record_one_iteration(self) -> None:
        """Count one batch; the print timer restarts after each print."""
        if self.needs_printing():
            self.iter_start_time = time.time()
            self.timed_from_step = self.total_steps
        self.total_steps += self.images_per_step
        self.epoch_iter += self.images_per_step

    def time_per_iteration(self) -> float:
        """Seconds per image since the last print, over the images actually seen (fewer than --print_freq after a
        start, a resume, an epoch's start or at the run's last iteration)."""
        return (time.time() - self.iter_start_time) / max(1, self.total_steps - self.timed_from_step)

    def needs_printing(self) -> bool:
        """Losses are read back, logged and printed on this step."""
        return self.total_steps % self.opt.print_freq == self.print_delta

    def needs_displaying(self) -> bool:
        """The training page gets this step's images."""
        return self.total_steps % self.opt.display_freq == self.display_delta

    def needs_saving(self) -> bool:
        """The `latest` checkpoint is written on this step."""
        return self.total_steps % self.opt.save_latest_freq == self.save_delta

    def epoch_done(self) -> bool:
        """This epoch has seen every sample."""
        return self.epoch_iter >= self.dataset_size

    def epoch_seconds(self) -> float:
        """Wall time of the current epoch so far."""
        return time.time() - self.epoch_start_time

    def needs_epoch_checkpoint(self) -> bool:
        """The end of this epoch saves `<epoch>` and `latest` (every --save_epoch_freq epochs)."""
        return self.epoch % self.opt.save_epoch_freq == 0

    def is_last_epoch(self) -> bool:
        """This is epoch niter + niter_decay."""
        return self.epoch == self.n_epochs
