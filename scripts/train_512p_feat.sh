#!/usr/bin/env bash
# 512p global generator with the instance-feature encoder E trained jointly.
set -e
python train.py --name label2city_512p_feat --instance_feat "$@"
