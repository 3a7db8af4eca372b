#!/bin/bash
# E58: E57 with 10 % of the labels (issue 10, item 4's question for classification: does
# pretraining's gain in fine-tuning grow when few crops are labelled?)
#
# Written 2026-12-07 12:43 UTC, with E57's seed-0 init / DAMA-1200 runs started and none
# of their folds finished, before any E58 run.
# Same crops, folds, test folds (400 crops each) and recipe as E57
# (`e57_classify_patch8_large_test.sh`), but `--label-fraction 0.1`: 32 crops per type,
# 160 per fold (E57: 450). The optimisation steps are kept equal to E57's: 56 epochs of
# 5 steps (E57: 20 of 14, 280 steps), warm-up 5.6 epochs (28 steps, as E57).
# Methods: E53's seed-0 untrained 8-px export (`init`), DAMA-1200, random init, MAE-1200,
# run after E57's seed-0 methods (two side by side; unfinished runs reported as not run).
# Rules (accuracy, per-fold paired differences over the 5 folds, population std):
#  (k) pretraining itself at 10 % labels: DAMA-1200 - init has mean > 0 and mean > std.
#  (l) DAMA-1200 - random: mean > std.
# Reported beside, not ruled on: DAMA - MAE; each gain at 10 % against E57's at 28 % on
# the same test folds (does it widen with fewer labels?).
# Consequence: README's "what gain to expect" states the few-label gain of 8-px DAMA
# pretraining in fine-tuning (classification); no default changes either way.
#   SEED=0 METHOD=init|dama|mae|random bash benchmarks/transfer/e58_classify_patch8_few_labels.sh E53_OUT E57_OUT
# Tables: python benchmarks/transfer/e57_table.py E57_OUT/f0.1 0.1 E57_OUT
set -e
RUNS=$2/f0.1 LABEL_FRACTION=0.1 EPOCHS=56 WARMUP=5.6 \
  bash "$(dirname "$0")/e57_classify_patch8_large_test.sh" "$@"
