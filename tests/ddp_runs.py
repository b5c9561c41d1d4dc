"""Run train.py's main() several times in this process (one rank under torchrun, or a single process), so that
tests/test_ddp.py pays torchrun's and torch's start-up once for a group of runs.

argv: a JSON list of runs, each {"flags": [train.py flags], "stop_after": k, "how": "kill" | "preempt", "tag": t}
(all but flags optional). After each run every rank writes its networks' weights, the images it trained on
(their pixel sums, per iteration) and how many checkpoints it saved to <checkpoints_dir>/<name>/rank<r><t>.pt;
train.py itself writes only rank 0's checkpoint. A run whose rank file exists is skipped (torchrun
--max-restarts reruns the whole list).

On its first start (not after a torchrun restart) a run with "stop_after": k stops the job after k iterations:
"kill" SIGKILLs rank 1 (a crashed worker: torchrun restarts every worker), "preempt" sends SIGTERM to
torchrun and to rank 0 itself (a cluster's preemption, which SLURM delivers to every process of the job and
torchrun forwards to its workers as well).
"""

import gc
import json
import os
import signal
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import builders  # noqa: E402
import train  # noqa: E402
from util.distributed import elastic_restart  # noqa: E402


def instrument(trainer, run: dict, seen: list, saves: list) -> None:
    """Record each iteration's images and each save; stop the job as `run` asks."""
    step, save = trainer.train_step, trainer.save

    def count_save(*args, **kwargs):
        saves.append(args)
        return save(*args, **kwargs)

    def train_step(data, *args, **kwargs):
        result = step(data, *args, **kwargs)
        batches = data if isinstance(data, list) else [data]
        seen.append([float(image.double().sum()) for batch in batches for image in batch['image']])
        if len(seen) == run.get('stop_after') and not elastic_restart():
            if run['how'] == 'kill' and trainer.opt.rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            if run['how'] == 'preempt' and trainer.opt.rank == 0:
                os.kill(os.getppid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
        return result

    trainer.train_step = train_step
    trainer.save = count_save


def main() -> None:
    """Each run as `python train.py FLAGS` would, then this rank's weights and images."""
    built: list = []
    seen: list = []
    saves: list = []
    run: dict = {}

    def build_trainer(opt):
        built.append(builders.build_trainer(opt))
        instrument(built[-1], run, seen, saves)
        return built[-1]

    train.build_trainer = build_trainer  # to reach the trainer during and after main()
    # One process group for all runs: leaving and joining it again between runs races with the other rank.
    train.finish = lambda: None
    rank = int(os.environ.get('RANK', '0'))
    for run in json.loads(sys.argv[1]):
        flags = run['flags']
        folder = os.path.join(flags[flags.index('--checkpoints_dir') + 1], flags[flags.index('--name') + 1])
        out = os.path.join(folder, f"rank{rank}{run.get('tag', '')}.pt")
        if os.path.exists(out):
            continue
        built.clear()
        seen.clear()
        saves.clear()
        sys.argv = ['train.py', *flags]
        train.main()
        nets = built[0].model.networks_by_name()
        state = {f'{label}.{key}': value for label, net in nets.items() for key, value in net.state_dict().items()}
        torch.save({'weights': state, 'seen': list(seen), 'saves': len(saves)}, out)
        if dist.is_initialized():
            dist.barrier()  # every rank done with this run before the next one starts
    # The trainers (kept in reference cycles by instrument()'s wrappers) hold their DDP reducers and through them
    # the process group: freed only at interpreter shutdown, gloo's threads can abort the process as it exits
    # ("terminate called without an active exception", seen once). Free them first, then leave the group.
    built.clear()
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
