#!/usr/bin/env bash
# Synthesize the test set with the 1024p CRN model (1024x2048); results/label2city_crn_1024p/test_latest/index.html.
set -e
python test.py --name label2city_crn_1024p --model crn --loadSize 2048 "$@"
