#!/usr/bin/env bash
# 512p with instance features: cluster the training features per class, then sample a style per
# instance (--n_styles K for K variants, --feat_choice 26:3 to pick one, --relabel 21:11 to edit).
set -e
python encode_features.py --name label2city_512p_feat
python test.py --name label2city_512p_feat --instance_feat "$@"
