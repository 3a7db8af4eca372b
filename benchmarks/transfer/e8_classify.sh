#!/bin/bash
# E8: the paper's headline, small: 10-fold cell-type classification of synthetic 7-channel
# crops (5 types x 100), random init vs MAE vs DAMA pretrained with equal budgets (mini ViT,
# 60 epochs on the same crops), 20 fine-tuning epochs per fold, bf16 autocast.
#   bash benchmarks/transfer/e8_classify.sh [OUT]     (about 90 min on one CPU core)
set -e
D=${1:-outputs/transfer/e8_classify}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=dama-det
$B data synth --out $D/data --n-train-tiles 1 --n-val-tiles 1 --tile-size 128 --n-crops-per-type 100 --seed 0 --quiet
for m in mae dama; do
  [ -f $D/$m.pth ] || { $B pretrain --data $D/data/crops --output-dir $D/$m --method $m --model mini --weight-init xavier \
      --epochs 60 --batch-size 32 --blr 1e-3 --warmup-epochs 6 --seed 0 --num-workers 0 --no-progress \
      --resume auto && $B export $D/$m/checkpoint-last.pth --out $D/$m.pth; }
done
$B classify --data $D/data/crops --out $D/cls --method random --method mae=$D/mae.pth \
    --method dama=$D/dama.pth --folds 10 --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-3 --crop-scale 0.08 1.0 --random-pos-embed trunc_normal \
    --amp bf16 --workers 0 --quiet
