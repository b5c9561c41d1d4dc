#!/usr/bin/env bash
# Synthesize the test set with the 512p CRN model (512x1024); results/label2city_crn_512p/test_latest/index.html.
set -e
python test.py --name label2city_crn_512p --model crn --loadSize 1024 "$@"
