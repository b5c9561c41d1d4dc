#!/usr/bin/env bash
# CRN at 512x1024 as demo_512p.py: one image per label map with the single-image VGG loss, 20 epochs, every module
# trained, starting from the 256p model (train_crn_256p.sh first): its modules load by name and shape, the new
# 512x1024 module and the last 1x1 convolution start fresh.
set -e
python train.py --name label2city_crn_512p --model crn --crn_sp 512 --crn_n_images 1 --crn_loss single \
  --loadSize 1024 --niter 20 --load_pretrain checkpoints/label2city_crn_256p/ \
  --crn_vgg_mat VGG_Model/imagenet-vgg-verydeep-19.mat "$@"
