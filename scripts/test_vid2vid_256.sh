#!/usr/bin/env bash
# Synthesize the test sequences with the 256-wide vid2vid model: videos and frames on
# results/label2city_vid2vid_256/test_latest/index.html (the first 2 frames of each video are its photos).
set -e
python test.py --name label2city_vid2vid_256 --model vid2vid --dataroot datasets/cityscapes_video --loadSize 256 "$@"
