#!/bin/bash
# E50: the paper's headline, small, on crops where a cell's type is not one marker's
# brightness (issue 10, item 7; E43's classification on E49's nuclear-channel crops)
#
# Written 2026-12-07 07:19 UTC, while E49 pretrained and before any E49 probe or E50 run.
# Why: E43 fine-tuned on the 7-channel crops, where every init reaches 95-97 % and the
# type is one marker channel's brightness (E41). With only DAPI and Histones (E49's
# crops) the type has to be read from the nucleus, a task with room above an untrained
# encoder (E49's pilot: linear probe 73.8 %), so pretraining has a place to show.
# Data: E49's pretraining crops (data seed 0, DAPI + Histones, 5 types x 100): the crops
# the encoders saw unlabelled, as E43's evaluation and the paper (pretraining on the
# crops it then classifies).
# Methods, one `dama-det classify` run (the same 10 stratified folds for all), E43's
# recipe (mini ViT, whole crop, blr 1e-2, 20 epochs, 2 warm-up, batch 32, `--amp auto`):
#   random   today's default (timm init, sin-cos position start);
#   init     E49's seed-0 untrained export (the null control);
#   dama-900, dama-3600, mae-3600   E49's seed-0 encoders at 60 and 240 epochs.
# Rules (test accuracy, per-fold paired differences, 10 folds, population std as E43):
#  (b) DAMA beats random init: DAMA-3600 - random has mean > std;
#  (c) DAMA >= MAE: mean DAMA-3600 - MAE-3600 >= 0.
# Reported, no rule: DAMA-3600 - init (the pretraining's own gain), DAMA-900 - init.
# Nothing is chosen from it (no dev split needed): no default changes either way;
# README's "what gain to expect" states the result.
#   bash benchmarks/transfer/e50_classify_nuclear.sh [E49_OUT] [OUT]
set -e
E=${1:-outputs/transfer/e49_nuclear_probe}
D=${2:-outputs/transfer/e50_classify_nuclear}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
for f in dama/seed0/untrained dama/seed0/ep60 dama/seed0/ep240 mae/seed0/ep240; do
  [ -f $E/$f.pth ] || { echo "missing $E/$f.pth: run e49_nuclear_probe.sh first" >&2; exit 2; }
done
$B classify --data $E/data_pre/crops_nuc --out $D --method random \
    --embed-dim 128 --depth 4 --num-heads 4 \
    --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-2 --crop-scale 1 1 --amp auto \
    --workers 0 --quiet --folds 10 \
    --method init=$E/dama/seed0/untrained.pth --method dama-900=$E/dama/seed0/ep60.pth \
    --method dama-3600=$E/dama/seed0/ep240.pth --method mae-3600=$E/mae/seed0/ep240.pth
