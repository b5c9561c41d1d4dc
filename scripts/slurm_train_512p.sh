#!/usr/bin/env bash
# 512p on several machines under SLURM: `sbatch scripts/slurm_train_512p.sh [train.py flags]`.
# One torchrun per node (srun), one training process per GPU (torchrun), rendezvous on the first node.
# --batchSize is per process: the global batch is nodes x GPUs per node x --batchSize x --accum_steps
# (here 2 x 8 x 1 = 16); the learning rate is not scaled with it (pass --lr yourself).
#SBATCH --job-name=label2city_512p
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=TERM@300
# Preemption, --signal's warning or scancel: SIGTERM reaches every process; rank 0 saves `latest` once after the
# current iteration and every rank exits. torchrun forwards its own SIGTERM too (the duplicate is ignored) and
# kills workers --shutdown-timeout seconds later, so that must cover one iteration and a save.
# A killed worker: torchrun --max-restarts restarts every process, which resume from the last committed
# checkpoint by themselves. A requeued job starts afresh: it resumes when iter.txt exists.
set -e
# Each restart gets a fresh rendezvous store: torchrun's shared one keeps the previous attempt's addresses, and
# across nodes train.py cannot tell the attempts apart (it refuses --max-restarts without this).
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
NAME=label2city_512p
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RESUME=()
if [ -f "checkpoints/$NAME/iter.txt" ]; then RESUME=(--continue_train); fi
srun --kill-on-bad-exit=1 torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
  --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:29500" \
  --max-restarts 3 --shutdown-timeout 120 \
  train.py --name "$NAME" "${RESUME[@]}" "$@"
