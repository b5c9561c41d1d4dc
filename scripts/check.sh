#!/usr/bin/env bash
# The checks CI runs, on this checkout: set up .venv (the `dev` group), make sure the OS Chromium that the
# editor's browser test drives is there, then lint, format check, type check and the test suite.
# Extra arguments go to pytest, e.g. scripts/check.sh tests/test_data.py -x
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup_env.sh dev
VENV=${VENV:-.venv}
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# Debian's Chromium through Playwright (never `playwright install`: that downloads a browser build).
if [ ! -x /usr/bin/chromium ] && command -v apt-get > /dev/null; then
  echo "[check] installing the OS Chromium for the editor's browser test (apt-get install chromium)"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium > /dev/null
fi

step() { echo "[check] $*"; "$@"; }
# The tests that compare numbers with another code base's (the fixtures) or with a second path through ours.
# BigGAN's fixture tests by name: the rest of its file trains through the scripts, which the first run covers.
BIGGAN_FIXTURE=(construction_at_seed_0_draws_the_authors_initial_weights initial_G_and_D_give_the_authors_outputs_in_eval_and_train_mode
    truncation_samples_reproduce_the_authors the_training_step_gives_the_authors_outputs_and_losses
    the_training_step_gives_the_authors_gradients the_training_step_gives_the_authors_weights_and_spectral_norm_state
    the_ema_rule_averages_weights_and_buffers)
NUMERIC_TESTS=(tests/test_reference_fixture.py tests/test_reference_step.py tests/test_pix2pix.py tests/test_crn.py tests/test_losses.py
    tests/test_vid2vid_fixture.py "${BIGGAN_FIXTURE[@]/#/tests/test_biggan.py::test_}")
step ruff check .
step ruff format --check .
step mypy
step python -m pytest -q "$@"
if [[ $# == 0 ]]; then
    # The fixtures again with ATen's portable CPU kernels: their tolerances are bounds that hold on any CPU, not
    # figures read off this machine's widest kernels (AVX-512 or AVX2).
    step env ATEN_CPU_CAPABILITY=default python -m pytest -q "${NUMERIC_TESTS[@]}"
fi
