#!/usr/bin/env bash
# 1024p with instance features on a 12 GB GPU, the reference's recipe (which it marks "not tested"):
# 512p+E, precompute its feature maps, then the local enhancer on random 896x896 crops for the default
# 100 + 100 epochs, the global generator fixed for the first 20.
set -e
python train.py --name label2city_512p_feat --instance_feat
python precompute_feature_maps.py --name label2city_512p_feat
python train.py --name label2city_1024p_feat --netG local --ngf 32 --num_D 3 \
  --load_pretrain checkpoints/label2city_512p_feat/ --niter_fix_global 20 --resize_or_crop crop --fineSize 896 \
  --instance_feat --load_features "$@"
