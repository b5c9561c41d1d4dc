#!/usr/bin/env bash
# CRN at 1024x2048 as demo_1024p.py: the 512p model (train_crn_512p.sh first) with a 1024x2048 module added, of
# which only the last two modules train (--crn_train_modules 2), single-image VGG loss, 5 epochs.
set -e
python train.py --name label2city_crn_1024p --model crn --crn_sp 1024 --crn_n_images 1 --crn_loss single \
  --loadSize 2048 --niter 5 --crn_train_modules 2 --load_pretrain checkpoints/label2city_crn_512p/ \
  --crn_vgg_mat VGG_Model/imagenet-vgg-verydeep-19.mat "$@"
