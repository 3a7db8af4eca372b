#!/bin/bash
# E52: E51's evaluation with E49's other two pretraining seeds (issue 10, item 7: is
# DAMA's own gain over its untrained export real?)
#
# Written 2026-12-07 08:58 UTC, after E51, before any E52 run.
# Why: E51 (centre pooling, E50's crops and folds) measured the pretraining's own gain on
# one pretraining seed: DAMA-3600 - `init` +0.8 ± 2.6 over 10 folds, MAE-3600 - `init`
# +0.6 ± 3.0. E49 pretrained seeds 1 and 2 too; their untrained exports and 3600-step
# DAMA / MAE encoders are fine-tuned here on the same crops and folds with the same
# recipe (today's defaults: `--pool centre`), one classify run per seed.
# Rules, over the 30 (seed, fold) pairs of seeds 0-2 (seed 0 from E51), per-pair paired
# differences, population std:
#  (g) pretraining's own gain: DAMA-3600 - init has mean > std;
#  (c) DAMA >= MAE: mean DAMA-3600 - MAE-3600 >= 0.
# Reported: per seed means, DAMA - random (random init from E51, the same folds).
# Nothing is chosen from it; README's "what gain to expect" states the result.
#   bash benchmarks/transfer/e52_classify_nuclear_seeds.sh SEED [E49_OUT] [E50_OUT] [OUT]
set -e
S=$1
E=${2:-outputs/transfer/e49_nuclear_probe}
F=${3:-outputs/transfer/e50_classify_nuclear}/folds.json
D=${4:-outputs/transfer/e52_classify_nuclear_seeds}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
$B classify --data $E/data_pre/crops_nuc --folds-file $F --out $D/seed$S --no-random \
    --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-2 --crop-scale 1 1 --amp auto \
    --workers 0 --quiet --folds 10 --method init=$E/dama/seed$S/untrained.pth \
    --method dama-3600=$E/dama/seed$S/ep240.pth --method mae-3600=$E/mae/seed$S/ep240.pth
