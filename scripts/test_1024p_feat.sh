#!/usr/bin/env bash
# 1024p with instance features. The 1024p model was trained on the 512p encoder's precomputed
# feature maps (--load_features) and has no encoder of its own, so the style clusters come from
# the 512p experiment (the reference re-encoded with an untrained encoder here).
set -e
python encode_features.py --name label2city_512p_feat
python test.py --name label2city_1024p_feat --netG local --ngf 32 --resize_or_crop none --instance_feat \
  --cluster_path checkpoints/label2city_512p_feat/features_clustered_010.npz "$@"
