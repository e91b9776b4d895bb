#!/usr/bin/env bash
# The digits demo workflow: the CIFAR-10 stages on scikit-learn's 8x8 digits, in minutes on a CPU:
#   clean -> noisy_gt_ft_clean -> ntype -> init -> noisy_label_loss -> test
# A stage whose final snapshot exists is skipped.  Usage: scripts/digits/train.sh [--stage S]
cd "$(dirname "$0")/../.." && exec .venv/bin/python tools/run_stages.py digits "$@"
