#!/usr/bin/env bash
# Synthesize the test set at 1024x512 with the pix2pix model of train_pix2pix_1024x512.sh.
set -e
python test.py --name label2city_pix2pix_1024x512 --model pix2pix --resize_or_crop scale_width --loadSize 1024 "$@"
