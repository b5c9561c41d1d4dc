#!/usr/bin/env bash
# vid2vid (Wang et al. 2018) on Cityscapes sequences as its authors trained it on one GPU (their
# scripts/street/train_g1_256.sh): 256-wide frames, instance edges, the foreground branch for cars (--fg, label 26),
# two downsamplings, one image scale in D, 6 frames per forward and clips of 6 made frames at first (doubling every
# 5 epochs), 10 + 10 epochs. The reference flow comes from RAFT (--flow_weights; docs/VIDEO.md says how to save it).
set -e
python train.py --name label2city_vid2vid_256 --model vid2vid --dataroot datasets/cityscapes_video \
  --label_nc 35 --loadSize 256 --use_instance --fg --n_downsample_G 2 --num_D 1 \
  --max_frames_per_gpu 6 --n_frames_total 6 --flow_weights checkpoints/raft_large.pth "$@"
