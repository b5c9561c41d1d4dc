#!/usr/bin/env bash
# 512p with bfloat16 mixed precision (Ampere or newer GPUs; no loss scaling needed), channels-last memory and
# torch.compile: the fastest 512p step measured on an H200 (docs/PERFORMANCE.md; measured before the fixes of
# channels-last gradients and of --compile at a new input size). --compile spends about a minute compiling
# before the first iteration. --fp16 (= --amp fp16) is the reference's spelling, with a
# GradScaler per optimiser.
set -e
python train.py --name label2city_512p_amp --amp bf16 --channels_last --compile "$@"
