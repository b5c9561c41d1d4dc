#!/usr/bin/env bash
# 1024p with instance features on a 12 GB GPU: as train_1024p_feat_24G.sh on random 576x576 crops.
set -e
python train.py --name label2city_512p_feat --instance_feat
python precompute_feature_maps.py --name label2city_512p_feat
python train.py --name label2city_1024p_feat_576 --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p_feat/ --niter 50 --niter_decay 50 --niter_fix_global 20 \
  --resize_or_crop crop --fineSize 576 --instance_feat --load_features "$@"
