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
NITER=${NITER:-80}
NITER_DECAY=${NITER_DECAY:-20}
GPU_IDS=${GPU_IDS:--1}

"$PYTHON" scripts/make_synthetic_dataset.py --dataroot "$DATAROOT"

# A small model at 128x64: ngf/ndf 16, 3 residual blocks, the instance-feature encoder E, no VGG
# loss (its ImageNet weights would need a download); otherwise the reference's training recipe.
# 100 epochs of 24 images are enough for G to take the car paint from E's features.
"$PYTHON" train.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --gpu_ids "$GPU_IDS" --loadSize 128 --ngf 16 --ndf 16 --n_blocks_global 3 --no_vgg_loss --instance_feat \
  --niter "$NITER" --niter_decay "$NITER_DECAY" --save_epoch_freq 20 \
  --print_freq 240 --display_freq 480 --nThreads 1 --seed 0

# Cluster E's per-instance features of the training set (the styles of each class) ...
"$PYTHON" encode_features.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --gpu_ids "$GPU_IDS" --loadSize 128

# ... and synthesize every test layout in 3 styles (a cluster drawn per instance for each).
"$PYTHON" test.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --results_dir "$RESULTS_DIR" --gpu_ids "$GPU_IDS" --loadSize 128 --n_styles 3 --seed 0

echo
echo "Training page: $CHECKPOINTS_DIR/$NAME/web/index.html"
echo "Results page:  $RESULTS_DIR/$NAME/test_latest/index.html"
