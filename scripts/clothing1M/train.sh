#!/usr/bin/env bash
# Clothing1M workflow (docs/recipe.md#clothing1m), CaffeNet from ImageNet weights ($EXP/snapshots/bvlc_reference_caffenet.caffemodel):
#   clean                    clean-label net on the 47,570 clean train images   (15k iterations)
#   ntype                    noise-type net                                     (5k iterations)
#   init                     clean net -> *_clean tower, noise-type convs -> *_ntype tower
#   noisy_label_loss_stage1  clean loss weight 0.1, no noise-type loss, update_noise_lr 0 (100k)
#   noisy_label_loss_stage2  resumed from stage 1's solverstate: clean loss 1.0, noise-type
#                            loss 0.1, update_noise_lr 0.1                                 (160k)
#   test                     caffe test -iterations 106 on the clean test set
# Uses -gpu 0 when a GPU is present.  Usage: scripts/clothing1M/train.sh [--stage S] [--gpu N]
cd "$(dirname "$0")/../.." && exec .venv/bin/python tools/run_stages.py clothing1M "$@"
