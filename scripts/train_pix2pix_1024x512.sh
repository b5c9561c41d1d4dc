#!/usr/bin/env bash
# pix2pix at 1024x512, the resolution of pix2pixHD's 512p comparison: the same U-Net 256 (its bottleneck is 4x2
# here), PatchGAN, losses and 100 + 100 epochs as train_pix2pix_256.sh, on whole images scaled to 1024 pixels wide.
set -e
python train.py --name label2city_pix2pix_1024x512 --model pix2pix --no_instance \
  --resize_or_crop scale_width --loadSize 1024 "$@"
