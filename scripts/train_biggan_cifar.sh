#!/usr/bin/env bash
# BigGAN on CIFAR-10 (32x32) as its authors' scripts/launch_cifar_ema.sh: batch 64, one D step per G step, G lr 1e-4,
# D lr 4e-4, no attention, xavier init, no ortho reg, 500 epochs, EMA of G from iteration 1000; G_ch = D_ch = 64 and
# the rest at their parser's defaults. Their --dataset C10 is --resolution 32 --n_classes 10 over the training images
# in one folder per class (docs/BIGGAN.md says how to unpack CIFAR-10 that way).
set -e
python train.py --model biggan --name biggan_cifar10 \
    --dataset folder --dataroot ./datasets/cifar10/train --resolution 32 --n_classes 10 \
    --batch_size 64 \
    --num_G_accumulations 1 --num_D_accumulations 1 --niter 500 \
    --num_D_steps 1 --G_lr 1e-4 --D_lr 4e-4 \
    --G_ortho 0.0 \
    --G_attn 0 --D_attn 0 \
    --G_init xavier --D_init xavier \
    --ema --ema_start 1000 \
    --seed 0 "$@"
