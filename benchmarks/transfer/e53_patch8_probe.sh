#!/bin/bash
# E53: do 8-px patches let pretraining learn nuclear shape? (issue 10, item 3: "patch
# size against nucleus size"; E49 with 8-px patches)
#
# Written 2026-12-07 09:47 UTC, before any E53 pretraining run (one 2-epoch timing run
# before it, not probed: DAMA with 8-px patches at 43 img/s on one thread, 3.1x slower
# than E49's 16-px 134 img/s).
# Why: E49's 16-px patches are about one small nucleus wide, so a masked patch hides a
# whole nucleus and its shape cannot be reconstructed from its neighbours; pretraining
# there added +1.9 ± 2.1 points (not on every seed) to an untrained encoder's 71.9 %.
# With 8-px patches a nucleus spans several patches and reconstructing the masked ones
# needs its outline and texture.
# Data: E49's (DAPI + Histones crops of data seed 0 for pretraining, labels unused; data
# seed 1's for the probes, 500 crops of unseen cells, 5 types x 100, 2 stratified folds).
# Pretraining: E49's recipe (mini ViT, today's defaults, batch 32, blr 1e-3, `--amp auto`)
# with `--patch-size 8`, at E49's compute: 80 epochs (1200 steps, ~15 min on one core,
# as E49's 3600 16-px steps), 6 warm-up epochs, seeds 0-2, DAMA and MAE. Encoders probed
# frozen at 0 (the same seed's untrained 8-px export), 20, 40 and 80 epochs (300 / 600 /
# 1200 steps). The `centre` readout is the 2 x 2 patches at the centre of the 16 x 16
# grid, i.e. the central 16 x 16 px (32 x 32 px with E49's 16-px patches).
# Rules (linear probe balanced accuracy, `centre` readout, per-seed paired differences):
#  (a) 8-px pretraining learns what the nuclei show of cell type: DAMA-1200 - its
#      untrained 8-px export > 0 on every seed, with the mean > its std.
#  (b) DAMA >= MAE: mean paired DAMA-1200 - MAE-1200 >= 0.
#  (c) at equal compute the patch size is the better lever: DAMA-8px-1200 - E49's
#      DAMA-16px-3600 (same seed) > 0 on every seed, with the mean > its std.
# Reported beside, not ruled on: the untrained 8-px export against E49's untrained
# 16-px one (what the finer grid alone gives), the `mean` readout, k-NN, 300/600 steps.
# Consequence: no default changes from a probe. If (a) and (c) are met, fine-tuning
# (`dama-det classify` on E50's folds, 8-px exports) is the next experiment,
# pre-registered separately; README's "what gain to expect" states the result either way.
#   [SEEDS="0 1 2"] [METHODS="dama mae"] bash benchmarks/transfer/e53_patch8_probe.sh [OUT] [STAGE: pretrain|probe|all]
# Tables: python benchmarks/transfer/e41_table.py OUT/probes --epochs 20 40 80
#         python benchmarks/transfer/e53_table.py OUT/probes E49_OUT/probes   (rule c)
set -e
export EPOCHS="20 40 80" WARMUP=6 SAVE_EVERY=20 PRETRAIN_ARGS="--patch-size 8"
bash $(dirname "$0")/e49_nuclear_probe.sh "${1:-outputs/transfer/e53_patch8_probe}" "${2:-all}"
