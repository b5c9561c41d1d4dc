#!/usr/bin/env bash
# Samples of scripts/train_biggan_cifar.sh's model with G_ema (their --use_ema): one page row per class.
set -e
python test.py --name biggan_cifar10 --use_ema "$@"
