#!/usr/bin/env bash
# BigGAN at 128x128 on ImageNet as its authors trained it (ajbrock/BigGAN-PyTorch, scripts/launch_BigGAN_bs256x8.sh):
# batch 256 x 8 accumulations = 2048 per step, one D step per G step, G lr 1e-4, D lr 4e-4, Adam (0, 0.999) eps 1e-6,
# SN eps 1e-6, G_ch = D_ch = 96, hierarchical z of 120 with a shared embedding of 128, attention at 64x64, ortho init,
# no ortho reg (their script's --G_ortho 0.0), EMA of G from iteration 20000. Their 8 GPUs ran one process
# (DataParallel, 256 split 8 ways); here torchrun runs one process per GPU with --batch_size 32 each (8 x 32 = 256)
# and batch norm statistics over all 8 processes (cross-replica, as the paper's TPU runs). Their --dataset I128_hdf5
# is --resolution 128 --n_classes 1000 over the ImageNet training set in one folder per class (docs/BIGGAN.md).
set -e
NPROC=${NPROC:-8}
torchrun --nproc_per_node "$NPROC" train.py --model biggan --name biggan_imagenet128 \
    --dataset folder --dataroot ./datasets/imagenet/train --resolution 128 --n_classes 1000 --nThreads 8 \
    --batch_size 32 --num_G_accumulations 8 --num_D_accumulations 8 \
    --num_D_steps 1 --G_lr 1e-4 --D_lr 4e-4 --D_B2 0.999 --G_B2 0.999 \
    --G_attn 64 --D_attn 64 \
    --G_nl inplace_relu --D_nl inplace_relu \
    --SN_eps 1e-6 --BN_eps 1e-5 --adam_eps 1e-6 \
    --G_ortho 0.0 \
    --G_shared \
    --G_init ortho --D_init ortho \
    --hier --dim_z 120 --shared_dim 128 \
    --G_ch 96 --D_ch 96 \
    --ema --ema_start 20000 \
    --seed 0 "$@"
