#!/usr/bin/env bash
# End to end on a CPU in about five minutes (2 cores), no download: make the built-in synthetic street
# scenes, train a small pix2pixHD with instance features on them, cluster the features, synthesize
# each test layout in three styles, then print the figures that say whether it worked and the pages.
# Override with environment variables, e.g. NITER=5 NITER_DECAY=0 scripts/quickstart.sh
# It sets itself up first: creates or reuses .venv in the checkout (scripts/setup_env.sh core; a second run
# installs nothing). PYTHON=/path/to/python skips that and runs with an environment you manage yourself.
set -euo pipefail
# Ctrl-C (or a SIGTERM to the script) stops the whole quickstart: train.py saves and returns when a signal stops it,
# which bash would otherwise take as done and go on to cluster and synthesize from a half-trained model.
trap 'echo "[quickstart] stopped by a signal: the later steps did not run" >&2; exit 130' INT TERM
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  scripts/setup_env.sh core
  PYTHON=${VENV:-.venv}/bin/python
fi
NAME=${NAME:-quickstart}
DATAROOT=${DATAROOT:-./datasets/synthetic}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
RESULTS_DIR=${RESULTS_DIR:-./results}
WIDTH=${WIDTH:-128}
HEIGHT=${HEIGHT:-64}
N_TRAIN=${N_TRAIN:-32}
N_TEST=${N_TEST:-8}
# 90 epochs of 32 images: 2,880 iterations (docs/QUICKSTART.md, "Pictures that convince").
NITER=${NITER:-45}
NITER_DECAY=${NITER_DECAY:-45}
GPU_IDS=${GPU_IDS:--1}
# One thread per process: on a machine shared with other work a second OpenMP thread made these small
# networks 3x slower (measured), and with one thread the CPU time is also the time on an idle 2-core
# machine (the data loader has the other core).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

timed() {  # timed LABEL COMMAND...: run it, then say how long it took
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "[quickstart] $label: $((SECONDS - start)) s"
}

# The scenes are drawn at the training size, so every car the encoder sees is one styles.json lists.
timed "synthetic data" "$PYTHON" scripts/make_synthetic_dataset.py --dataroot "$DATAROOT" \
  --width "$WIDTH" --height "$HEIGHT" --n_train "$N_TRAIN" --n_test "$N_TEST"

# The reference's model and losses, sized for 128x64 scenes, no VGG loss (its ImageNet weights would
# need a download). Measured (README, "The two commands"), each flag against the reference's defaults:
#  --n_downsample_E 2: four halvings leave E an 8x4 bottleneck that blurs a car's paint into the road
#    around it; its features then carry brightness only (one axis) and the clusters mix paints.
#  --n_downsample_global 0, --n_blocks_global 6: the global generator without its transposed
#    convolutions, whose checkerboard stays as a grid texture at this size and training length.
#  --n_layers_D 1, --lambda_feat 30: every discriminator layer after the first instance-normalises,
#    which hides how strong a texture is; a shallow D and more weight on feature matching (its first
#    layer is not normalised) take grain off flat regions.
#  --netG_init delta (not a reference flag): G's kernels start without the reference's spatial noise,
#    which this short a run leaves in place as coloured speckle along every outline ("The coloured fringes").
timed "training" "$PYTHON" train.py --name "$NAME" --dataroot "$DATAROOT" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --gpu_ids "$GPU_IDS" --loadSize "$WIDTH" --no_vgg_loss --instance_feat \
  --ngf 16 --n_downsample_global 0 --n_blocks_global 6 --n_downsample_E 2 --netG_init delta \
  --ndf 16 --n_layers_D 1 --lambda_feat 30 \
  --niter "$NITER" --niter_decay "$NITER_DECAY" --save_epoch_freq 1000 \
  --print_freq 32 --display_freq 320 --nThreads 1 --seed 0

# Cluster E's per-instance features of the training set (the styles of each class) ...
timed "encoding and clustering features" "$PYTHON" encode_features.py --name "$NAME" --dataroot "$DATAROOT" \
  --checkpoints_dir "$CHECKPOINTS_DIR" --gpu_ids "$GPU_IDS" --loadSize "$WIDTH"

# ... and synthesize every test layout in 3 styles (a cluster drawn per instance for each).
timed "synthesizing the test layouts" "$PYTHON" test.py --name "$NAME" --dataroot "$DATAROOT" \
  --checkpoints_dir "$CHECKPOINTS_DIR" --results_dir "$RESULTS_DIR" --gpu_ids "$GPU_IDS" --loadSize "$WIDTH" \
  --n_styles 3 --seed 0

echo "[quickstart] total: $SECONDS s"
echo
"$PYTHON" scripts/quickstart_report.py --results "$RESULTS_DIR/$NAME/test_latest" --dataroot "$DATAROOT" \
  --experiment "$CHECKPOINTS_DIR/$NAME"
echo
echo "Training page: $CHECKPOINTS_DIR/$NAME/web/index.html"
echo "Results page:  $RESULTS_DIR/$NAME/test_latest/index.html"
