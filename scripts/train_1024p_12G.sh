#!/usr/bin/env bash
# Coarse-to-fine on a 12 GB GPU: the local enhancer trains on random 576x576 crops of the full-size images.
# Train scripts/train_512p.sh first (as in the reference, this variant was not tested on the full schedule).
set -e
python train.py --name label2city_1024p_576 --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p/ --niter 50 --niter_decay 50 --niter_fix_global 20 \
  --resize_or_crop crop --fineSize 576 "$@"
