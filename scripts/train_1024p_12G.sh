#!/usr/bin/env bash
# Coarse-to-fine on a 12 GB GPU, the reference's recipe (which it marks "not tested"): the local enhancer
# trains on random 1024x1024 crops of the 2048x1024 images for the default 100 + 100 epochs, the global
# generator fixed for the first 20. Train scripts/train_512p.sh first.
set -e
python train.py --name label2city_1024p --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p/ --niter_fix_global 20 --resize_or_crop crop --fineSize 1024 "$@"
