#!/usr/bin/env bash
# Coarse-to-fine: local enhancer at 2048x1024 around the 512p global generator (24 GB GPU).
# Train scripts/train_512p.sh first: its G and D (scales 0-1) are loaded with --load_pretrain.
set -e
python train.py --name label2city_1024p --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p/ --niter 50 --niter_decay 50 --niter_fix_global 10 \
  --resize_or_crop none "$@"
