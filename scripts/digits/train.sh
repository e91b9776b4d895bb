#!/usr/bin/env bash
# The digits demo workflow: the CIFAR-10 stages on scikit-learn's 8x8 digits, in minutes on a CPU:
#   clean -> noisy_gt_ft_clean -> ntype -> init -> noisy_label_loss -> test
# Finished stages are skipped, stopped ones resumed.  Usage: scripts/digits/train.sh [--stage S] [--seed N] [--set "k=v ..."]
cd "$(dirname "$0")/../.." && exec .venv/bin/python tools/run_stages.py digits "$@"
