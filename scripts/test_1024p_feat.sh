#!/usr/bin/env bash
# 1024p with instance features: cluster the training features, then sample a style per instance.
set -e
python encode_features.py --name label2city_1024p_feat --netG local --ngf 32 --resize_or_crop none
python test.py --name label2city_1024p_feat --netG local --ngf 32 --resize_or_crop none --instance_feat "$@"
