#!/usr/bin/env bash
# Global generator G1 on Cityscapes at 1024x512 (the first stage of the 1024p recipe).
set -e
python train.py --name label2city_512p "$@"
