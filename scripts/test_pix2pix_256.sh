#!/usr/bin/env bash
# Synthesize the test set with the 256x256 pix2pix model; results/label2city_pix2pix_256/test_latest/index.html.
# Each label map is resized to 256x256 whole (no random crop, unlike the authors' test.py defaults), so every
# pixel is scored; BatchNorm and dropout run as the authors' test.py runs them (pass --eval for eval mode).
set -e
python test.py --name label2city_pix2pix_256 --model pix2pix --loadSize 256 --fineSize 256 "$@"
