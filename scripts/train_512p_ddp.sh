#!/usr/bin/env bash
# 512p on all GPUs of one machine: one process per GPU through torchrun; --batchSize is per process.
# Several machines: add torchrun's --nnodes/--node_rank/--rdzv_endpoint flags (see torchrun --help).
set -e
NPROC=${NPROC:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
torchrun --nproc_per_node "$NPROC" train.py --name label2city_512p_ddp "$@"
