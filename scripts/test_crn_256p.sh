#!/usr/bin/env bash
# Synthesize the test set with the 256p CRN model (256x512); results/label2city_crn_256p/test_latest/index.html.
set -e
python test.py --name label2city_crn_256p --model crn --loadSize 512 "$@"
