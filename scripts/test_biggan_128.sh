#!/usr/bin/env bash
# Samples of scripts/train_biggan_128.sh's model as the authors sample theirs (scripts/sample_BigGAN_bs256x8.sh):
# G_ema in eval mode; the page has a row per class (--how_many of them) with a truncation sweep and interpolations.
set -e
python test.py --name biggan_imagenet128 --use_ema --G_eval_mode --how_many 1000 "$@"
