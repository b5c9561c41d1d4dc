"""Run N training steps with Pix2PixHDTrainer in this process (one rank under torchrun) and save each
rank's weights to OUT/rank<r>.pt; used by tests/test_scaling.py."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from builders import build_data, build_trainer  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util.distributed import finish, init_distributed  # noqa: E402


def main() -> None:
    """argv: OUT STEPS then train.py flags."""
    out_dir, steps, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    opt = TrainOptions().parse(flags, save=False)
    init_distributed(opt)
    torch.manual_seed(opt.seed)
    _, loader = build_data(opt)
    loader.sampler.set_epoch(1)
    trainer = build_trainer(opt)
    batches = iter(loader)
    for _ in range(steps):
        trainer.train_step(next(batches))
    state = {f'{label}.{key}': value for label, net in trainer.model.networks_by_name().items() for key, value in net.state_dict().items()}
    torch.save(state, os.path.join(out_dir, f'rank{opt.rank}.pt'))
    finish()


if __name__ == '__main__':
    main()
