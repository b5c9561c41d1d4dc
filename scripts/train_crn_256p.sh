#!/usr/bin/env bash
# CRN (Chen and Koltun 2017) at 256x512 as demo_256p.py trains it: refinement modules 4x8 ... 256x512 at the official
# widths, 9 images per label map and the per-class diversity VGG loss, Adam lr 1e-4, 200 epochs, batch 1, no flips,
# input the 19 trainIds plus a void channel (--model crn's defaults). The loss needs the VGG19 the CRN code loads:
# put MatConvNet's imagenet-vgg-verydeep-19.mat where the official code keeps it (or pass --vgg_weights FILE,
# torchvision's VGG19, the documented alternative). Nothing is downloaded.
set -e
python train.py --name label2city_crn_256p --model crn --crn_sp 256 \
  --crn_vgg_mat VGG_Model/imagenet-vgg-verydeep-19.mat "$@"
