#!/usr/bin/env bash
# Synthesize at 2048x1024 with the local enhancer; results/label2city_1024p/test_latest/index.html.
set -e
python test.py --name label2city_1024p --netG local --ngf 32 --resize_or_crop none "$@"
