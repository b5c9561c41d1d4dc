#!/usr/bin/env bash
# 512p with instance features: cluster the training features, then sample a style per instance.
set -e
python encode_features.py --name label2city_512p_feat
python test.py --name label2city_512p_feat --instance_feat "$@"
