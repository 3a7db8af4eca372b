#!/bin/bash
# E55: E54 on E53's other two pretraining seeds (issue 10, item 7: is the 8-px
# pretraining's own gain in fine-tuning real?)
#
# Written 2026-12-07 11:13 UTC, after E54's random / init / DAMA-1200 results (seed 0:
# DAMA-1200 - init +3.2, population std 3.4, 7 folds ahead / 1 behind; rule (e) missed
# narrowly) and before E54's MAE result and any E55 run.
# Same crops, folds and recipe as E54 (`e54_classify_patch8.sh`); the methods are E53's
# seed 1 and seed 2 untrained 8-px exports and DAMA-1200 (MAE left out for time: four
# runs of ~25 min on one core each).
# Rule (e'), over the 30 (pretraining seed, fold) pairs with E54's seed 0, population
# std: DAMA-1200 - init has mean > std, and a positive mean on each seed. Reported
# beside: DAMA - random (E54's random-8px on the same folds) over the pairs.
# Amended 11:32 UTC, before any seed-2 run and with seed 1 half done: the runs take ~4
# min per fold with three jobs on the two cores, so seed 2 would not finish in this
# session; E55 is seed 1 only (init and DAMA-1200), and rule (e') is read over the 20
# (seed, fold) pairs of seeds 0-1. Seed 2 is left for a later session (SEED=2 runs it).
# E56, written 11:54 UTC after E55's seed-1 result (rule (e') not met: +2.9 ± 3.55 over
# 20 pairs, +3.2 / +2.6 per seed) and before any seed-2 run: seed 2 (init, DAMA-1200),
# two runs side by side, killed unfinished if the session ends first (then reported as
# not run). Rule (e''): over all 30 (seed, fold) pairs, DAMA-1200 - init has mean >
# population std and a positive mean on each seed. Same consequence.
# Consequence: README's "what gain to expect" says whether 8-px DAMA pretraining adds
# to fine-tuning beyond its untrained export; no default changes either way.
#   SEED=1|2 METHOD=init|dama bash benchmarks/transfer/e55_classify_patch8_seeds.sh E49_OUT E53_OUT E50_OUT/folds.json [OUT]
# Tables: python benchmarks/transfer/e54_table.py E51_OUT E54_OUT E55_OUT
set -e
E49=${1:-outputs/transfer/e49_nuclear_probe}
E53=${2:-outputs/transfer/e53_patch8_probe}
F=${3:-outputs/transfer/e50_classify_nuclear/folds.json}
D=${4:-outputs/transfer/e55_classify_patch8_seeds}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
C="--data $E49/data_pre/crops_nuc --folds-file $F --pool centre --embed-dim 128 --depth 4 --num-heads 4 --patch-size 8 --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-2 --crop-scale 1 1 --amp auto --workers 0 --quiet --folds 10 --no-random"
case ${METHOD:-init} in
  init) $B classify $C --out $D/seed$SEED-init --method init=$E53/dama/seed$SEED/untrained.pth ;;
  dama) $B classify $C --out $D/seed$SEED-dama --method dama-1200=$E53/dama/seed$SEED/ep80.pth ;;
  *) echo "METHOD must be init or dama" >&2; exit 2 ;;
esac
