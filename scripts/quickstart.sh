#!/usr/bin/env bash
# End to end on a CPU in a few minutes, no download: make the built-in synthetic street scenes,
# train a small pix2pixHD with instance features on them, cluster the features, synthesize each
# test layout in three styles and print the results page.
# Override with environment variables, e.g. NITER=5 NITER_DECAY=0 scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
NAME=${NAME:-quickstart}
DATAROOT=${DATAROOT:-./datasets/synthetic}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
RESULTS_DIR=${RESULTS_DIR:-./results}
NITER=${NITER:-30}
NITER_DECAY=${NITER_DECAY:-10}
GPU_IDS=${GPU_IDS:--1}

"$PYTHON" scripts/make_synthetic_dataset.py --dataroot "$DATAROOT"

# A small model at 128x64: ngf/ndf 32, 6 residual blocks, the instance-feature encoder E, no VGG
# loss (its ImageNet weights would need a download); otherwise the reference's training recipe.
"$PYTHON" train.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --gpu_ids "$GPU_IDS" --loadSize 128 --ngf 32 --ndf 32 --n_blocks_global 6 --no_vgg_loss --instance_feat \
  --niter "$NITER" --niter_decay "$NITER_DECAY" --save_epoch_freq 10 \
  --print_freq 240 --display_freq 240 --nThreads 1 --seed 0

# Cluster E's per-instance features of the training set (the styles of each class) ...
"$PYTHON" encode_features.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --gpu_ids "$GPU_IDS" --loadSize 128

# ... and synthesize every test layout in 3 styles (a cluster drawn per instance for each).
"$PYTHON" test.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --results_dir "$RESULTS_DIR" --gpu_ids "$GPU_IDS" --loadSize 128 --n_styles 3 --seed 0

echo
echo "Training page: $CHECKPOINTS_DIR/$NAME/web/index.html"
echo "Results page:  $RESULTS_DIR/$NAME/test_latest/index.html"
