#!/usr/bin/env bash
# 512p with automatic mixed precision in bfloat16 (Ampere or newer GPUs; no loss scaling needed).
# --fp16 (= --amp fp16) is the reference's spelling, with a GradScaler per optimiser.
set -e
python train.py --name label2city_512p_amp --amp bf16 "$@"
