#!/usr/bin/env bash
# vid2vid at 512 wide on all GPUs of one machine (the authors' scripts/street/train_512.sh ran 8 GPUs, 6 of them
# for G's frames): here one process per GPU through torchrun, each training its own sequence (data parallel),
# 2 frames per forward, clips of 6 made frames at first. Same flags otherwise: instance edges, foreground branch.
set -e
NPROC=${NPROC:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
torchrun --nproc_per_node "$NPROC" train.py --name label2city_vid2vid_512 --model vid2vid --dataroot datasets/cityscapes_video \
  --label_nc 35 --loadSize 512 --use_instance --fg --n_frames_total 6 --max_frames_per_gpu 2 \
  --flow_weights checkpoints/raft_large.pth "$@"
