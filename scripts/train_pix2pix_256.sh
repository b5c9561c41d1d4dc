#!/usr/bin/env bash
# pix2pix (Isola et al. 2017) on Cityscapes as its authors trained it: U-Net 256 (--netG unet_256), 70x70 PatchGAN,
# vanilla GAN + 100 x L1, Adam 0.0002 / 0.5, 100 epochs at lr then 100 decaying, batch 1, every image resized to
# 286x286 and randomly cropped to 256x256 with flips (--model pix2pix's defaults). Their Cityscapes had no instance
# maps, hence --no_instance: the input is the one-hot label map.
set -e
python train.py --name label2city_pix2pix_256 --model pix2pix --no_instance "$@"
