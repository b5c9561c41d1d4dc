"""Train pix2pixHD: load data, build the trainer, loop over epochs, log, save (SPEC sections 4-5)."""
import math
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from data.data_loader import create_data_loader, create_dataset
from models.pix2pixHD_trainer import Pix2PixHDTrainer, read_iter_file
from options.base_options import check_writable, experiment_dir, save_options
from options.train_options import TrainOptions
from util.cli import run_main
from util.distributed import any_rank, average_values, finish, init_distributed
from util.preemption import StopRequest
from util.util import tensor2im, tensor2label
from util.visualizer import Visualizer


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main() -> None:
    """The reference's training loop (one process, or one per GPU under torchrun)."""
    opt = TrainOptions().parse(save=False)
    rank, world, local_rank = init_distributed(use_cuda=bool(opt.gpu_ids))
    is_main = rank == 0
    if world > 1 and opt.gpu_ids:
        opt.gpu_ids = [local_rank]
    if is_main:
        TrainOptions.print_options(opt)
        check_writable(experiment_dir(opt), '--checkpoints_dir')
        save_options(opt)
    if opt.seed is not None:
        seed_everything(opt.seed)
    start_epoch, epoch_iter = read_iter_file(experiment_dir(opt)) if opt.continue_train else (1, 0)
    if opt.continue_train:
        print(f'Resuming from epoch {start_epoch} at iteration {epoch_iter}')

    opt.print_freq = math.lcm(opt.print_freq, opt.batchSize)
    if opt.debug:
        opt.display_freq = opt.print_freq = 1
        opt.niter, opt.niter_decay = 1, 0
        opt.max_dataset_size = 10

    dataset = create_dataset(opt)
    data_loader = create_data_loader(opt, dataset, rank, world)
    sampler = data_loader.sampler
    dataset_size = sampler.batches_per_epoch() * opt.batchSize
    print(f'#training images = {dataset_size}' + (f' per process, {world} processes' if world > 1 else ''))

    trainer = Pix2PixHDTrainer(opt)
    if opt.continue_train and trainer.load_training_state(opt.which_epoch):
        print(f'Restored optimisers, lr {trainer.old_lr:g} and RNG states from {opt.which_epoch}_train_state.pth')
    visualizer = Visualizer(opt) if is_main else None
    stop = StopRequest()

    def save_latest(epoch: int, epoch_iter: int) -> None:
        if is_main:
            trainer.save('latest', epoch, epoch_iter)

    total_steps = (start_epoch - 1) * dataset_size + epoch_iter
    display_delta = total_steps % opt.display_freq
    print_delta = total_steps % opt.print_freq
    save_delta = total_steps % opt.save_latest_freq
    n_epochs = opt.niter + opt.niter_decay

    for epoch in range(start_epoch, n_epochs + 1):
        epoch_start_time = time.time()
        if epoch != start_epoch:
            epoch_iter = epoch_iter % dataset_size
        # A resumed epoch skips the batches it already trained on (the reference re-read them).
        sampler.set_epoch(epoch, skip_batches=epoch_iter // opt.batchSize)
        iter_start_time = time.time()
        progress = tqdm(data_loader, total=len(data_loader), desc=f'epoch {epoch}/{n_epochs}', dynamic_ncols=True, leave=False,
                        disable=None if is_main else True)
        for data in progress:
            if total_steps % opt.print_freq == print_delta:
                iter_start_time = time.time()
            total_steps += opt.batchSize
            epoch_iter += opt.batchSize
            save_fake = is_main and total_steps % opt.display_freq == display_delta

            losses, generated = trainer.train_step(data, infer=save_fake, step=total_steps)

            if total_steps % opt.print_freq == print_delta:
                trainer.check_finite()
                # Reading losses back is the step's only host sync, so it happens at print time only.
                values = average_values(torch.stack([value.float() for value in losses.values()])).tolist()
                errors = dict(zip(losses.keys(), values))
                if is_main:
                    per_iter = (time.time() - iter_start_time) / opt.print_freq
                    message = visualizer.print_current_errors(epoch, epoch_iter, errors, per_iter)
                    visualizer.plot_current_errors(errors, total_steps)
                    progress.set_postfix({name: f'{value:.3f}' for name, value in errors.items()})
                    if progress.disable:
                        print(message)

            if save_fake:
                visuals = {'input_label': tensor2label(data['label'][0], opt.label_nc),
                           'synthesized_image': tensor2im(generated.detach()[0].float().cpu()),
                           'real_image': tensor2im(data['image'][0])}
                visualizer.display_current_results(visuals, epoch, total_steps)

            if total_steps % opt.save_latest_freq == save_delta:
                tqdm.write(f'saving the latest model (epoch {epoch}, total_steps {total_steps})')
                save_latest(epoch, epoch_iter)

            if any_rank(stop.requested, trainer.device):
                progress.close()
                save_latest(epoch, epoch_iter)
                print(f'Stopped by {stop.signal_name or "a signal on another process"} at epoch {epoch}, iteration {epoch_iter}; '
                      f'latest checkpoint and training state saved in {experiment_dir(opt)}. '
                      f'Resume with the same command plus --continue_train')
                finish()
                return

            if epoch_iter >= dataset_size:
                break
        progress.close()
        print(f'End of epoch {epoch} / {n_epochs} \t Time Taken: {time.time() - epoch_start_time:.0f} sec')

        # The schedule moves before the end-of-epoch save (the reference saves first) so that the saved
        # training state holds the optimiser and lr the next epoch starts with; the weights are the same.
        if opt.niter_fix_global != 0 and epoch == opt.niter_fix_global:
            trainer.update_fixed_params()
        if epoch > opt.niter:
            trainer.update_learning_rate()

        if epoch % opt.save_epoch_freq == 0:
            print(f'saving the model at the end of epoch {epoch}, iters {total_steps}')
            save_latest(epoch + 1, 0)
            if is_main:
                trainer.save(str(epoch), epoch + 1, 0)
        elif epoch == n_epochs:
            # The reference loses the final weights when the last epoch is not a multiple of save_epoch_freq.
            print(f'saving the final model (epoch {epoch}, total_steps {total_steps})')
            save_latest(epoch + 1, 0)
    if is_main:
        visualizer.close()
        print(f'Training finished; checkpoints and web/index.html are in {experiment_dir(opt)}')
    finish()


if __name__ == '__main__':
    run_main(main)
