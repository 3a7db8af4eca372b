#!/bin/bash
# E42: the paper's headline, small, with a crop that keeps the cell (issue 10, item 7)
#
# Written 2026-12-06 23:03 UTC (commit e7f8f06), before any E42 run.
# Why: E8's 10-fold classification (paper's fine-tuning recipe) reached 45 % on the
# synthetic crops with train-fold accuracy equal to test accuracy (underfit), while the
# 7 channel means of the central 16 x 16 px separate the 5 types perfectly (E41's floor)
# and a linear probe of an untrained encoder's central tokens reaches 0.98 (E41's pilot).
# The paper's RandomResizedCrop(scale 0.08-1) cuts a random 8-100 % of a 128 px
# cell-centred crop whose cell is 8-27 px wide: most small crops miss the labelled cell,
# so the label is noise for them. One factor: the crop's minimum area (`--crop-scale MIN 1`).
# Dev screen (the choice; never the evaluation crops): data seed 1's 500 crops, random
# init, 2 folds, E8's settings otherwise (20 epochs, 2 warm-up, batch 32, blr 1e-3, bf16,
# mixup / cutmix / erasing / smoothing as the paper), MIN in {0.08 (paper), 0.35, 1.0};
# the highest mean accuracy is chosen (a tie within 1 point keeps the larger crop range).
# Evaluation: E8's 500 crops (data seed 0), 5 stratified folds (10 in E8; time),
# random init at the paper's 0.08 and at the chosen MIN; E41's DAMA and MAE seed-0
# encoders (60 epochs, 900 steps on these same unlabelled crops) and the untrained
# export at the chosen MIN.
# Amended 23:31 UTC, during the first dev fold pair (MIN 0.08, fold 0 done: 44 % test,
# 41 % train), before any other E42 run: a fold takes 18 min on this machine (4.5 img/s,
# three jobs on two cores; E8 measured 65 img/s on an Intel Xeon with AMX-BF16), so the
# dev screen drops MIN 0.35 (DEV_MINS="0.08 1.0") and the evaluation stage is not run in
# this session: E42 reports the dev screen only, a lead for the recipe, not a result.
# Second amendment, 00:10 UTC, after the dev screen's MIN 0.08 (41.0 %, folds 44 / 38)
# and MIN 1.0's fold 0 (44.8 %), before any evaluation run: this machine's CPU has AVX2
# only (no avx512_bf16, no AMX), so the `--amp bf16` E8 used is emulated here: 8.5 img/s
# against 106-111 fp32 for this classifier's training step (`--amp auto` picks fp32 on
# such CPUs; E8's bf16 parity check gave identical test predictions). All E42 runs now
# use `--amp off`; the dev screen restarts in fp32 (MIN 0.08 and 1.0, blr 1e-3), then
# screens one more factor on the dev crops at the chosen MIN: blr 1e-2 (the paper's
# fine-tuning table) against E8's 1e-3 (same choice rule: the higher dev mean, a tie
# within 1 point keeps E8's 1e-3). The evaluation stage (5 folds) runs as described with
# the chosen MIN and blr, E8's recipe (MIN 0.08, blr 1e-3) as its baseline.
# Finished folds are kept (`dama-det classify` resumes), so the script can be rerun.
# Rules (test accuracy, per-fold paired differences, 5 folds):
#  (a) the crop helps: random init at the chosen MIN - at 0.08 > 0 with mean > std
#      (after the second amendment: the chosen MIN and blr against E8's 0.08 and 1e-3);
#  (b) the headline: DAMA - random (chosen recipe) > 0 with mean > std;
#  (c) DAMA >= MAE (mean paired difference >= 0); `init` reported as the null control.
# If (a) holds, `dama-det classify`'s default --crop-scale changes to the chosen MIN
# (the paper's stays documented).
#   bash benchmarks/transfer/e42_classify_crop_scale.sh E41_OUT [OUT] [STAGE: dev|dev-lr|eval|all]
set -e
E41=${1:?E41 output folder (encoders and data)}
D=${2:-outputs/transfer/e42_classify_crop_scale}
STAGE=${3:-all}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=${DAMA_DET:-dama-det}
MINI="--embed-dim 128 --depth 4 --num-heads 4"  # random init alone: the mini ViT, as with the exports
C="--epochs 20 --warmup-epochs 2 --batch-size 32 --amp off --workers 0 --quiet --random-pos-embed trunc_normal"  # E42 ran before the sin-cos default (E43)
if [ $STAGE = dev ] || [ $STAGE = all ]; then
  for m in ${DEV_MINS:-0.08 0.35 1.0}; do
    $B classify --data $E41/data_probe/crops --out $D/dev_$m --method random $MINI --folds 2 $C --blr 1e-3 --crop-scale $m 1.0
  done
fi
if [ $STAGE = dev-lr ] || [ $STAGE = all ]; then
  MIN=${MIN:?set MIN to the dev screen choice}
  $B classify --data $E41/data_probe/crops --out $D/dev_${MIN}_blr1e-2 --method random $MINI --folds 2 $C --blr 1e-2 --crop-scale $MIN 1.0
fi
if [ $STAGE = eval ] || [ $STAGE = all ]; then
  MIN=${MIN:?set MIN to the dev screen choice}
  BLR=${BLR:?set BLR to the dev screen choice}
  $B classify --data $E41/data_pre/crops --out $D/eval_paper --method random $MINI --folds 5 $C --blr 1e-3 --crop-scale 0.08 1.0
  $B classify --data $E41/data_pre/crops --out $D/eval_${MIN}_$BLR --method random \
      --method dama=$E41/dama/seed0/ep60.pth --method mae=$E41/mae/seed0/ep60.pth \
      --method init=$E41/dama/seed0/untrained.pth --folds 5 $C --blr $BLR --crop-scale $MIN 1.0
fi
