#!/bin/bash
# E59: E57's protocol with 16-px patches (issue 10, item 7: does pretraining's fine-tuning
# gain need 8-px patches, or did 50-crop test folds hide a 16-px one too?)
#
# Written 2026-12-07 14:19 UTC, after E57's and E58's results (8-px DAMA-1200 - its
# untrained export +4.4 ± 1.2 over 15 pairs) and before any E59 run.
# At 16 px, E52 measured DAMA-3600 - its untrained export at +1.0 ± 2.6 over 30 (seed,
# fold) pairs of 50-crop test folds: not established, and too noisy to say whether
# there is a gain at all. E57's crops, folds (5 x 400 test crops) and `--label-fraction
# 0.28` (450 training crops) measure it with E57's precision.
# Encoders: E49's 16-px exports of pretraining seeds 0-2 (untrained `init`, DAMA-3600:
# the same pretraining compute as E57's 8-px DAMA-1200), and random init (mini ViT,
# 16-px patches). Recipe: E57's but for the patch size (E51/E52's 16-px recipe).
# Rules (per (seed, fold) pair, population std):
#  (m) 16-px pretraining's own gain: DAMA-3600 - init over the 15 pairs has mean > std,
#      and a positive mean on each seed.
#  (n) E54's recipe rule (g) on new crops: E57's DAMA-8px-1200 - DAMA-16px-3600 of the
#      same pretraining seed and fold: mean > std over the 15 pairs.
# Reported beside: random-8px (E57) - random-16px; init-8px - init-16px.
# Consequence: README's "what gain to expect" says whether CPU-length pretraining pays
# off in fine-tuning at 16-px patches too, or only with 8-px ones; no default changes.
#   SEED=0|1|2|random bash benchmarks/transfer/e59_classify_patch16_large_test.sh E49_OUT E57_OUT
# Tables: python benchmarks/transfer/e59_table.py E57_OUT
set -e
E49=${1:-outputs/transfer/e49_nuclear_probe}
D=${2:-outputs/transfer/e57_classify_patch8_large_test}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
S=${SEED:-0}
C="--data $D/data/crops_nuc --folds-file $D/folds.json --folds 5 --label-fraction 0.28 --pool centre --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-2 --crop-scale 1 1 --amp auto --workers 0 --quiet --no-random"
if [ "$S" = random ]; then
  $B classify $C --out $D/p16/random --method random --embed-dim 128 --depth 4 --num-heads 4 --patch-size 16
else
  $B classify $C --out $D/p16/seed$S --method init=$E49/dama/seed$S/untrained.pth \
      --method dama-3600=$E49/dama/seed$S/ep240.pth
fi
