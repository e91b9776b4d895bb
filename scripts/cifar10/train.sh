#!/usr/bin/env bash
# CIFAR-10 workflow (docs/recipe.md#cifar-10), run from the repository root with the stock `caffe` tool:
#   clean              CIFAR-quick on the 10k clean images            (5000 iterations)
#   noisy_gt_ft_clean  baseline: fine-tune it on the mixed set, noisy labels taken as truth
#   ntype              noise-type net fine-tuned from the clean model  (1500 iterations)
#   init               clean net -> *_clean tower, noise-type convs -> *_ntype tower
#   noisy_label_loss   the joint net with the noisy-label loss          (6000 iterations)
#   test               caffe test of the joint net's clean tower
# Finished stages are skipped, stopped ones resumed.  Usage: scripts/cifar10/train.sh [--stage S] [--seed N] [--set "k=v ..."]
cd "$(dirname "$0")/../.." && exec .venv/bin/python tools/run_stages.py cifar10 "$@"
