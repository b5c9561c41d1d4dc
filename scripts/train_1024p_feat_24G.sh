#!/usr/bin/env bash
# 1024p with instance features (24 GB GPU): 512p with E, precompute its feature maps, then the local enhancer.
set -e
python train.py --name label2city_512p_feat --instance_feat
python precompute_feature_maps.py --name label2city_512p_feat
python train.py --name label2city_1024p_feat --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p_feat/ --niter 50 --niter_decay 50 --niter_fix_global 10 \
  --resize_or_crop none --instance_feat --load_features "$@"
