"""Train a model of the family (--model pix2pixHD, pix2pix, crn): build, loop over epochs, log, save (under torchrun:
one process per GPU)."""

from collections.abc import Iterable, Iterator

import torch
from tqdm import tqdm

from builders import build_data, build_trainer, save_architecture
from models import METHODS
from models.common.trainer_base import TrainerBase
from options.base_options import check_writable
from options.train_options import TrainOptions
from util.checkpoint import finish_interrupted_saves, read_iter_file
from util.cli import run_main
from util.distributed import any_rank, average_values, finish, from_rank0, init_distributed
from util.divergence import DivergenceMonitor
from util.errors import OptionsError
from util.iter_counter import IterationCounter, resume_position
from util.preemption import StopRequest
from util.records import experiment_dir, save_options
from util.run_lock import acquire_run_lock
from util.seeding import seed_everything
from util.visualizer import Visualizer


def main() -> bool:
    """The reference's training loop: G step then D step per batch; lr decay after --niter epochs. True when every
    epoch ran, False when a signal stopped it (after saving; a script that drives train.py must not take it as done).

    Everything that can refuse the start (options against the saved ones, data, checkpoint shapes) runs
    before anything is written, so a refused start leaves the experiment folder as it was.
    """
    options = TrainOptions(
        f'Train a method of the family (--model {", ".join(METHODS)}) on its data (label maps, instance maps and photos for '
        'the label-to-image methods); checkpoints and a training page go to <checkpoints_dir>/<name>/.',
        METHODS,
    )
    opt = options.parse(save=False)
    init_distributed(opt)
    is_main = opt.rank == 0
    if is_main:
        options.print_options(opt)
    if opt.seed is not None:
        seed_everything(opt.seed)
    dataset, data_loader = build_data(opt)
    if is_main:  # the same files for every process: one decodes them (torchrun stops the others if it refuses)
        dataset.check_contents()
    # An iteration is one optimiser step: --accum_steps batches (an epoch keeps only whole iterations).
    dataset_size = data_loader.sampler.batches_per_epoch() // opt.accum_steps * opt.accum_steps * opt.batchSize
    if dataset_size == 0:
        raise OptionsError(
            f"--accum_steps {opt.accum_steps}: an epoch has only {data_loader.sampler.batches_per_epoch()} batches per process; "
            f"use --accum_steps {data_loader.sampler.batches_per_epoch()} or less"
        )
    print(f'#training images = {dataset_size}' + (f' per process, {opt.world_size} processes' if opt.world_size > 1 else ''))
    trainer = build_trainer(opt)
    method = METHODS[opt.model]
    counter = IterationCounter(opt, dataset_size, *start_position(opt, dataset_size))
    if is_main:  # training really starts: from here on the experiment folder is written
        check_writable(experiment_dir(opt), '--checkpoints_dir')
        _run_lock = acquire_run_lock(experiment_dir(opt))  # held until the process ends: one run per folder
        finish_interrupted_saves(experiment_dir(opt))
        save_options(opt)
        save_architecture(opt)
    visualizer = Visualizer(opt) if is_main else None
    stop = StopRequest()
    monitor = None if opt.no_divergence_check else DivergenceMonitor()

    for epoch in counter.training_epochs():
        data_loader.sampler.set_epoch(epoch, skip_batches=counter.record_epoch_start(epoch))
        progress = progress_bar(
            iterations(data_loader, opt.accum_steps), len(data_loader) // opt.accum_steps, epoch, counter.n_epochs, is_main
        )
        for data in progress:
            counter.record_one_iteration()
            # The run's last iteration (or one a signal stops) always logs and displays, so that the loss
            # log and the training page exist after a run shorter than --print_freq / --display_freq.
            final = counter.is_last_epoch() and counter.epoch_done()
            display = is_main and (counter.needs_displaying() or final or stop.requested)
            losses, generated = trainer.train_step(data, infer=display, step=counter.total_steps)
            printed = counter.needs_printing() or final
            if printed:
                log_losses(trainer, visualizer, counter, losses, progress, monitor)
            if display and visualizer is not None:
                shown = data[-1] if isinstance(data, list) else data  # with --accum_steps, the step's last batch
                visualizer.display_current_results(method.training_visuals(opt, shown, generated), epoch, counter.total_steps)
            saved = counter.needs_saving()
            if saved:
                tqdm.write(f'saving the latest model (epoch {epoch}, total_steps {counter.total_steps})')
                save(trainer, is_main, 'latest', epoch, counter.epoch_iter)
            if any_rank(stop.requested, trainer.device):
                if not printed:
                    log_losses(trainer, visualizer, counter, losses, progress, monitor)
                progress.close()
                stop_and_save(opt, trainer, counter, stop, is_main, saved)
                return False
            if counter.epoch_done():
                break
        progress.close()
        print(f'End of epoch {epoch} / {counter.n_epochs} \t Time Taken: {counter.epoch_seconds():.0f} sec')
        end_of_epoch(opt, trainer, counter, is_main)
    if visualizer is not None:
        visualizer.close()
        print(f'Training finished; checkpoints and web/index.html are in {experiment_dir(opt)}')
    finish()
    return True


def iterations(data_loader: Iterable[dict], accum_steps: int) -> Iterator[dict | list[dict]]:
    """The loader's batches, or lists of `accum_steps` consecutive batches: what one optimiser step trains on."""
    if accum_steps == 1:
        yield from data_loader
        return
    group: list = []
    for data in data_loader:
        group.append(data)
        if len(group) == accum_steps:
            yield group
            group = []


def progress_bar(batches: Iterator, total: int, epoch: int, n_epochs: int, is_main: bool) -> tqdm:
    """The epoch's progress bar (on the main process only), which also shows the last printed losses."""
    return tqdm(
        batches,
        total=total,
        desc=f'epoch {epoch}/{n_epochs}',
        dynamic_ncols=True,
        leave=False,
        disable=None if is_main else True,
    )


def start_position(opt, dataset_size: int) -> tuple[int, int]:
    """(epoch, images into it) to start from: iter.txt's position with --continue_train (fitted to today's dataset), else (1, 0)."""
    if not opt.continue_train:
        return 1, 0
    # Every rank resumes at rank 0's position, and only after every rank has loaded the checkpoint (rank 0
    # then may finish an interrupted save, moving files the others read).
    position = from_rank0(read_iter_file(experiment_dir(opt)))
    epoch, epoch_iter, note = resume_position(*position, dataset_size, opt.batchSize * opt.accum_steps)
    print(note or f'Resuming from epoch {epoch} at iteration {epoch_iter}')
    return epoch, epoch_iter


def stop_and_save(opt, trainer: TrainerBase, counter: IterationCounter, stop: StopRequest, is_main: bool, saved: bool) -> None:
    """A signal asked to stop: save `latest` here (unless this iteration just did), say how to resume, leave the process group."""
    if not saved:
        save(trainer, is_main, 'latest', counter.epoch, counter.epoch_iter)
    print(
        f'Stopped by {stop.signal_name or "a signal on another process"} at epoch {counter.epoch}, iteration {counter.epoch_iter}; '
        f'latest checkpoint and training state saved in {experiment_dir(opt)}. '
        'Resume with the same command plus --continue_train'
    )
    finish()


def log_losses(
    trainer: TrainerBase,
    visualizer: Visualizer | None,
    counter: IterationCounter,
    losses: dict,
    progress: tqdm,
    monitor: DivergenceMonitor | None,
) -> None:
    """Read the losses back (the step's only host syncs), check the weights, average, print and log them; warn on divergence."""
    trainer.check_finite()
    weights = trainer.check_weights(counter.epoch, counter.epoch_iter)
    values = average_values(torch.stack([value.float() for value in losses.values()])).tolist()
    errors = dict(zip(losses.keys(), values))
    if visualizer is None:
        return
    if monitor is not None:
        for warning in monitor.update({**errors, **weights}, f'epoch {counter.epoch}, iteration {counter.epoch_iter}'):
            tqdm.write(warning)
    message = visualizer.print_current_errors(counter.epoch, counter.epoch_iter, errors, counter.time_per_iteration())
    visualizer.plot_current_errors(errors, counter.total_steps)
    progress.set_postfix({name: f'{value:.3f}' for name, value in errors.items()})
    if progress.disable:
        print(message)


def end_of_epoch(opt, trainer: TrainerBase, counter: IterationCounter, is_main: bool) -> None:
    """Set up the next epoch (the method's schedule), then save `<epoch>` + `latest` every --save_epoch_freq epochs."""
    epoch = counter.epoch
    # The schedule moves before the end-of-epoch save (the reference saves first) so that the saved
    # training state holds the optimiser and lr the next epoch starts with; the weights are the same.
    trainer.end_epoch(epoch)  # the method's schedule: the lr (pix2pixHD's: flat for --niter epochs), what trains next
    if counter.needs_epoch_checkpoint():
        print(f'saving the model at the end of epoch {epoch}, iters {counter.total_steps}')
        save(trainer, is_main, 'latest', epoch + 1, 0)
        save(trainer, is_main, str(epoch), epoch + 1, 0)
    elif counter.is_last_epoch():
        # The reference loses the final weights when the last epoch is not a multiple of save_epoch_freq.
        print(f'saving the final model (epoch {epoch}, total_steps {counter.total_steps})')
        save(trainer, is_main, 'latest', epoch + 1, 0)


def save(trainer: TrainerBase, is_main: bool, which_epoch: str, epoch: int, epoch_iter: int) -> None:
    """Write a checkpoint from the main process only (every process holds the same weights)."""
    if is_main:
        trainer.save(which_epoch, epoch, epoch_iter)


if __name__ == '__main__':
    run_main(main)
