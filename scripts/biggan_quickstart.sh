#!/usr/bin/env bash
# BigGAN end to end on a CPU in about six minutes (2 cores), no download: train a small class-conditional BigGAN
# (--model biggan) on the built-in shapes (ten classes, each a shape in its own colour), sample its page with G_ema
# and the stored batch statistics (--use_ema --G_eval_mode, docs/BIGGAN.md), then print the figures that say whether
# each class looks like its class, and where the page is.
# Override with environment variables, e.g. NITER=2 scripts/biggan_quickstart.sh
# It sets itself up first: creates or reuses .venv in the checkout (scripts/setup_env.sh core; a second run
# installs nothing). PYTHON=/path/to/python skips that and runs with an environment you manage yourself.
set -euo pipefail
# Ctrl-C (or a SIGTERM to the script) stops the whole quickstart: train.py saves and returns when a signal stops it,
# which bash would otherwise take as done and go on to sample a half-trained model.
trap 'echo "[biggan quickstart] stopped by a signal: the later steps did not run" >&2; exit 130' INT TERM
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  scripts/setup_env.sh core
  PYTHON=${VENV:-.venv}/bin/python
fi
NAME=${NAME:-biggan_quickstart}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
RESULTS_DIR=${RESULTS_DIR:-./results}
GPU_IDS=${GPU_IDS:--1}
# The run's size and length (docs/BIGGAN.md, "Quick run on the built-in shapes": each measured).
RESOLUTION=${RESOLUTION:-32}
G_CH=${G_CH:-20}
D_CH=${D_CH:-12}
G_ATTN=${G_ATTN:-0}  # self-attention ('0': none; '16' costs 15% more per iteration here: docs/BIGGAN.md's runs)
D_ATTN=${D_ATTN:-0}
DIM_Z=${DIM_Z:-64}
SHARED_DIM=${SHARED_DIM:-32}
BATCH_SIZE=${BATCH_SIZE:-8}
NUM_D_STEPS=${NUM_D_STEPS:-1}
G_LR=${G_LR:-2e-4}
D_LR=${D_LR:-2e-4}
EMA_DECAY=${EMA_DECAY:-0.99}
EMA_START=${EMA_START:-100}
SAMPLES=${SAMPLES:-1600}  # images per epoch (drawn afresh each epoch)
NITER=${NITER:-12}  # epochs: 2400 iterations
SEED=${SEED:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

timed() {  # timed LABEL COMMAND...: run it, then say how long it took
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "[biggan quickstart] $label: $((SECONDS - start)) s"
}

ITERATIONS=$((NITER * SAMPLES / (BATCH_SIZE * NUM_D_STEPS)))
echo "[biggan quickstart] $ITERATIONS iterations ($NITER epochs of $SAMPLES images, $BATCH_SIZE per D step)"
# The training page and the latest checkpoint once an epoch (more often costs time at this size).
timed "training" "$PYTHON" train.py --model biggan --name "$NAME" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --dataset synthetic --resolution "$RESOLUTION" --G_ch "$G_CH" --D_ch "$D_CH" --dim_z "$DIM_Z" \
  --shared_dim "$SHARED_DIM" --hier --G_shared --G_attn "$G_ATTN" --D_attn "$D_ATTN" \
  --batch_size "$BATCH_SIZE" --num_D_steps "$NUM_D_STEPS" --G_lr "$G_LR" --D_lr "$D_LR" \
  --ema --ema_decay "$EMA_DECAY" --ema_start "$EMA_START" --synthetic_samples "$SAMPLES" --niter "$NITER" \
  --print_freq "$SAMPLES" --display_freq "$SAMPLES" --save_latest_freq "$SAMPLES" --save_epoch_freq 100000 \
  --gpu_ids "$GPU_IDS" --seed "$SEED" --nThreads 0

# G_ema with its stored batch statistics: a page row is a batch of one class, whose statistics are not training's.
timed "sampling the page" "$PYTHON" test.py --name "$NAME" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --results_dir "$RESULTS_DIR" --gpu_ids "$GPU_IDS" --use_ema --G_eval_mode --seed "$SEED"

echo "[biggan quickstart] total: $SECONDS s"
echo "[biggan quickstart] last losses: $(tail -n 1 "$CHECKPOINTS_DIR/$NAME/loss_log.txt")"
echo
"$PYTHON" scripts/biggan_quickstart_report.py --results "$RESULTS_DIR/$NAME/test_latest" --resolution "$RESOLUTION"
echo
echo "Training page: $CHECKPOINTS_DIR/$NAME/web/index.html"
echo "Results page:  $RESULTS_DIR/$NAME/test_latest/index.html"
