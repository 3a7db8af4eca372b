#!/bin/bash
# E54: fine-tuning with 8-px patches on the nuclear-channel crops (issue 10, item 7 at
# E53's patch size: does the finer grid, and pretraining on it, show in `dama-det classify`?)
#
# Written 2026-12-07 10:18 UTC, before any E54 run and before E53's DAMA probes (E53's
# MAE probes were seen: the untrained 8-px export's linear centre probe 82.4 ± 1.2 %,
# E49's 16-px one 71.9 ± 1.6; MAE-1200 83.8 ± 1.0).
# Data and folds: E50's (the DAPI + Histones crops of data seed 0, the crops E49 and E53
# pretrained on, labels now used; E50's 10 stratified folds, `--folds-file`).
# Recipe: E51's (mini ViT, `--pool centre`, 20 epochs, 2 warm-up, batch 32, blr 1e-2,
# whole crop, `--amp auto`) with 8-px patches: random init (`--patch-size 8`), the seed-0
# untrained 8-px export (`init`), E53's seed-0 DAMA-1200 and MAE-1200 8-px exports.
# Compared per fold with E51's 16-px results on the same folds (random 71.0, init 75.0,
# DAMA-3600 75.8, MAE-3600 75.6 %).
# Rules (accuracy, per-fold paired differences, 10 folds):
#  (d) the paper's ordering at 8 px: DAMA-8px - random-8px > 0 with the mean > its std.
#  (e) pretraining itself: DAMA-8px - init-8px > 0 with the mean > its std.
#  (f) DAMA >= MAE: mean DAMA-8px - MAE-8px >= 0.
#  (g) the recipe: DAMA-8px - E51's DAMA-16px-3600 > 0 with the mean > its std (equal
#      pretraining compute).
# Consequence: if (g) holds, README's classification recipe recommends 8-px patches for
# crops whose cells are about one 16-px patch wide (both `pretrain` and `classify`
# `--patch-size 8`; ~3x the compute); no code default changes (the `mini` default stays
# 16-px, which the detector's tests and configs use).
#   [PART=1|2] bash benchmarks/transfer/e54_classify_patch8.sh E49_OUT E53_OUT E50_OUT/folds.json [OUT]
#   PART 1: random and init; PART 2: DAMA and MAE (one core each).
# Tables: python benchmarks/transfer/e51_table.py (E51/E52's) and e54_table.py.
set -e
E49=${1:-outputs/transfer/e49_nuclear_probe}
E53=${2:-outputs/transfer/e53_patch8_probe}
F=${3:-outputs/transfer/e50_classify_nuclear/folds.json}
D=${4:-outputs/transfer/e54_classify_patch8}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
C="--data $E49/data_pre/crops_nuc --folds-file $F --pool centre --embed-dim 128 --depth 4 --num-heads 4 --patch-size 8 --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-2 --crop-scale 1 1 --amp auto --workers 0 --quiet --folds 10"
[ "${PART:-1}" = 1 ] && $B classify $C --out $D/part1 --method random --method init=$E53/dama/seed0/untrained.pth
[ "${PART:-1}" = 2 ] && $B classify $C --out $D/part2 --no-random \
    --method dama-1200=$E53/dama/seed0/ep80.pth --method mae-1200=$E53/mae/seed0/ep80.pth
true
