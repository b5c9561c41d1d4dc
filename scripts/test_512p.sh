#!/usr/bin/env bash
# Synthesize the test set with the 512p model; results/label2city_512p/test_latest/index.html.
set -e
python test.py --name label2city_512p "$@"
