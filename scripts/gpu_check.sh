#!/usr/bin/env bash
# One command for a lent GPU: the CUDA tests (tests/test_cuda.py, marker `cuda`), then the measurements,
# each step under its own time budget, every log under OUT_DIR and a summary table in OUT_DIR/summary.md
# (printed at the end). A failing or timed-out step is recorded and the next one runs; the exit status is 1
# when any step failed or timed out.
#
#   scripts/gpu_check.sh OUT_DIR            # on the GPU: budgets add up to 630 s (caps); the steps took ~460 s on an H200
#                                           # before the vid2vid row (8.; not yet timed on a GPU)
#   scripts/gpu_check.sh OUT_DIR --dry_run  # the same steps at tiny sizes on the CPU (a rehearsal, ~30 s): every step
#                                           # must run; no budget applies (a busy machine is slow, not wrong)
#
# Nothing is downloaded. Environment:
#   PYTHON                 the interpreter (default: python)
#   PIX2PIXHD_BENCH        folder of step_pairs.py (default: ../shared/bench beside the repository)
#   PIX2PIXHD_REFERENCE    the 2018 reference code for step_pairs.py (its default: ../anchors/pix2pixHD beside the bench)
#   PIX2PIXHD_VGG_WEIGHTS  torchvision VGG19 ImageNet state_dict for the benchmarks' VGG loss; without it a
#                          random-weights VGG19 is written to OUT_DIR (same cost per step, and the summary says so)
set -u
# Ctrl-C stops the whole check (a step's own handler, e.g. train.py's, may return normally from it); the message goes
# to the terminal's stderr (fd 3), not to the log of the step it interrupted.
exec 3>&2
trap 'echo "== stopped by a signal: the later steps did not run" >&3; exit 130' INT TERM

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: scripts/gpu_check.sh OUT_DIR [--dry_run]" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "error: $1: cannot create the output folder" >&2; exit 1; }
DRY=0
if [[ ${2:-} == --dry_run ]]; then
    DRY=1
elif [[ $# -gt 1 ]]; then
    echo "error: $2: unknown argument; the only option is --dry_run" >&2
    exit 2
fi
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python}
STEPS="$OUT/steps.tsv"
: > "$STEPS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$([[ $DRY == 1 ]] && echo 1 || echo 8)}

# step NAME BUDGET_S JSON_OR_- COMMAND...: run COMMAND with its log in OUT/NAME.log, record one row.
step() {
    local name=$1 budget=$2 json=$3 limit=$2
    shift 3
    [[ $DRY == 1 ]] && limit=0 # timeout 0: no limit
    echo "== $name (budget ${budget} s): $*"
    local start end status rc
    start=$(date +%s%N)
    {
        echo "\$ $*"
        timeout --foreground --kill-after=10 "$limit" "$@" # --foreground: a Ctrl-C reaches the step too
    } > "$OUT/$name.log" 2>&1
    rc=$?
    end=$(date +%s%N)
    if [[ $rc == 0 ]]; then
        status=ok
    elif [[ $rc == 124 || $rc == 137 ]]; then
        status="timeout (${budget} s)"
    else
        status="failed (exit $rc)"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$(((end - start) / 1000000))" "$budget" "$json" >> "$STEPS"
    echo "   $status"
}

# skip NAME REASON: record a step that could not run.
skip() {
    printf '%s\t%s\t0\t0\t-\n' "$1" "skipped: $2" >> "$STEPS"
    echo "== $1: skipped: $2"
}

if [[ $DRY == 1 ]]; then
    # Tiny sizes on the CPU: every step runs, its figures mean nothing.
    GPU=(--gpu_ids -1)
    DEVICE=cpu
    export PIX2PIXHD_TEST_DEVICE=cpu
    ARCH=(--ngf 4 --ndf 4 --n_blocks_global 1)
    SIZE=(--loadSize 64)
    TIMING=(--iters 1 --warmup 1)
    LOCAL_SIZE=(--loadSize 128)
    PAIRS=(--pairs 2 --loadSize 64 --ngf 4 --ndf 4 --no_vgg_loss)
    EDIT_SIZE=(--width 64 --height 32)
    EDITS=5
    # The CUDA tests' CPU rehearsal costs minutes (PIX2PIXHD_TEST_DEVICE=cpu python -m pytest -m cuda tests/test_cuda.py);
    # here three quick ones (two skip on the CPU, as CUDA-only) check that the step runs and reports.
    TESTS=(-k "reference_forward_losses or data_type or norm_batch")
    COMPILE=()  # torch.compile takes about a minute on two CPU cores: the dry run measures bf16 + channels_last again
    VIDEO_SIZE=(--width 64 --height 32)
    VIDEO_ARCH=(--loadSize 64 --ngf 4 --ndf 4 --n_blocks 2)
    VIDEO_TIMING=(--iters 1 --warmup 1)
else
    GPU=(--gpu_ids 0)
    DEVICE=cuda
    ARCH=()
    SIZE=(--loadSize 1024)
    TIMING=(--iters 10 --warmup 3)
    LOCAL_SIZE=(--loadSize 2048)
    PAIRS=(--pairs 8 --loadSize 1024)
    EDIT_SIZE=(--width 1024 --height 512)
    EDITS=20
    TESTS=()
    COMPILE=(--compile)
    VIDEO_SIZE=(--width 512 --height 256)
    VIDEO_ARCH=(--loadSize 512)
    VIDEO_TIMING=(--iters 5 --warmup 2)
fi

# 1. what the machine is
step env 10 - "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); \
[print(i, torch.cuda.get_device_name(i), round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1), 'GiB') for i in range(torch.cuda.device_count())]"

# 2. VGG19 weights for the benchmarks' VGG loss (no download on the device)
VGG=${PIX2PIXHD_VGG_WEIGHTS:-}
if [[ -n $VGG && -f $VGG ]]; then
    echo "ImageNet VGG19 weights: $VGG" > "$OUT/vgg_weights.log"
    printf 'vgg_weights\tok\t0\t0\t-\n' >> "$STEPS"
else
    VGG="$OUT/vgg19_random.pth"
    step vgg_weights 15 - "$PY" -c "import torch, torchvision; torch.manual_seed(1234); \
torch.save(torchvision.models.vgg19(weights=None).state_dict(), '$VGG'); print('random-weights VGG19 (no ImageNet file given) written to $VGG')"
fi
[[ $DRY == 1 ]] && VGG_FLAGS=(--no_vgg_loss) || VGG_FLAGS=(--vgg_weights "$VGG")
[[ $DRY == 1 ]] && VIDEO_VGG=(--no_vgg) || VIDEO_VGG=(--vgg_weights "$VGG")

# 3. the CUDA tests
step tests 215 - "$PY" -m pytest -m cuda -q -rfEs --durations=10 -p no:cacheprovider tests/test_cuda.py "${TESTS[@]}"

# 4. the 2018 reference's fp32 step against ours (default 512p architecture, VGG on: step_time.py seeds its own VGG19)
BENCH=${PIX2PIXHD_BENCH:-../shared/bench}
if [[ -f $BENCH/step_pairs.py ]] && grep -q 'models.pix2pixHD_trainer' "$BENCH/step_time.py" 2> /dev/null; then
    # The harness drives our trainer through its import path before models/pix2pixhd/ (and TrainOptions() without
    # the registry): it needs `from models.pix2pixhd.trainer import Pix2PixHDTrainer` and TrainOptions('', METHODS).
    skip step_pairs "$BENCH/step_time.py imports models.pix2pixHD_trainer, which is now models.pix2pixhd.trainer; update it"
elif [[ -f $BENCH/step_pairs.py ]]; then
    step step_pairs 75 - "$PY" "$BENCH/step_pairs.py" --device "$DEVICE" "${PAIRS[@]}"
else
    skip step_pairs "not found ($BENCH/step_pairs.py; set PIX2PIXHD_BENCH)"
fi

# 5. training speed at 1024x512, batch 1 (the 512p model): fp32, bf16 (and its step's profile), bf16 + channels_last, + compile
BENCHMARK=("$PY" scripts/benchmark.py "${TIMING[@]}" "${GPU[@]}" "${SIZE[@]}" "${ARCH[@]}" "${VGG_FLAGS[@]}")
step bench_fp32_bf16 45 "$OUT/bench_fp32_bf16.json" "${BENCHMARK[@]}" --compare --amp bf16 --json "$OUT/bench_fp32_bf16.json" \
    --profile "$OUT/profile_bf16.txt"
step bench_bf16_cl 25 "$OUT/bench_bf16_cl.json" "${BENCHMARK[@]}" --amp bf16 --channels_last --json "$OUT/bench_bf16_cl.json"
step bench_bf16_cl_compile 75 "$OUT/bench_bf16_cl_compile.json" "${BENCHMARK[@]}" --amp bf16 --channels_last "${COMPILE[@]}" \
    --json "$OUT/bench_bf16_cl_compile.json"

# 6. the 1024p local enhancer at 2048x1024: training with bf16 (peak memory, ms/iter), inference fp32 and --data_type 16
LOCAL=(--netG local --ngf 32 --num_D 3 --resize_or_crop none "${LOCAL_SIZE[@]}")
[[ $DRY == 1 ]] && LOCAL+=(--n_blocks_global 1 --n_blocks_local 1 --ndf 4)
LOCAL_BENCH=("$PY" scripts/benchmark.py "${GPU[@]}" "${LOCAL[@]}" "${VGG_FLAGS[@]}")
step bench_local_2048_bf16 30 "$OUT/bench_local_2048_bf16.json" "${LOCAL_BENCH[@]}" --iters "$([[ $DRY == 1 ]] && echo 1 || echo 5)" \
    --warmup "$([[ $DRY == 1 ]] && echo 1 || echo 2)" --amp bf16 --json "$OUT/bench_local_2048_bf16.json"
step infer_1024p 25 "$OUT/infer_1024p.json" "${LOCAL_BENCH[@]}" "${TIMING[@]}" --inference_only --compare --data_type 16 \
    --json "$OUT/infer_1024p.json"

# 7. the editor's edit latency, 512p model (default architecture) on one synthetic 1024x512 scene
EDIT="$OUT/editor"
rm -rf "$EDIT"
step editor_prep 25 - bash -c "'$PY' scripts/make_synthetic_dataset.py --dataroot '$EDIT/data' --n_train 1 --n_test 1 ${EDIT_SIZE[*]} \
    && '$PY' train.py --name e512 --dataroot '$EDIT/data' --checkpoints_dir '$EDIT/checkpoints' ${GPU[*]} ${ARCH[*]} --no_vgg_loss \
       --loadSize ${EDIT_SIZE[1]} --niter 1 --niter_decay 0 --nThreads 0"
step editor_512p 20 - "$PY" scripts/editor.py --name e512 --dataroot "$EDIT/data" --checkpoints_dir "$EDIT/checkpoints" "${GPU[@]}" \
    --loadSize "${EDIT_SIZE[1]}" --port 0 --measure_latency "$EDITS"

# 8. vid2vid's training step, fp32 and bf16, on the built-in synthetic video at 512x256 (Cityscapes' aspect): the
# authors' 256 recipe (scripts/train_vid2vid_256.sh) but twice as wide, its flow from the video (no RAFT). An
# iteration is one clip: 2 given frames and 6 made in one forward.
VIDEO="$OUT/video"
rm -rf "$VIDEO"
step video_prep 10 - "$PY" scripts/make_synthetic_video.py --dataroot "$VIDEO" --n_train 1 --n_test 1 --n_frames 8 "${VIDEO_SIZE[@]}"
step bench_vid2vid_fp32_bf16 60 "$OUT/bench_vid2vid_fp32_bf16.json" "$PY" scripts/benchmark.py "${VIDEO_TIMING[@]}" "${GPU[@]}" \
    --model vid2vid --dataroot "$VIDEO" --label_nc 35 --use_instance --fg --n_downsample_G 2 --num_D 1 --max_frames_per_gpu 6 \
    --n_frames_total 6 "${VIDEO_ARCH[@]}" "${VIDEO_VGG[@]}" --compare --amp bf16 --json "$OUT/bench_vid2vid_fp32_bf16.json"

"$PY" scripts/gpu_check_summary.py "$OUT" $([[ $DRY == 1 ]] && echo --dry_run)
