#!/bin/bash
# E8b: E8's missing null control. The same 10-fold cell-type classification of synthetic
# 7-channel crops (5 types x 100, the data of E8, seed 0) with random init beside `init`: the
# mini DAMA model's untrained export (same architecture, seed and loader as E8's pretrained
# exports, no step taken). Both in one run: `classify` adds `random` and sizes it after the
# first export (the mini ViT); run alone it would build ViT-tiny, which pairs with nothing.
#   bash benchmarks/transfer/e8b_classify_init.sh [OUT]     (about an hour on one CPU core)
set -e
D=${1:-outputs/transfer/e8_classify}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
B=dama-det
[ -d $D/data/crops ] || $B data synth --out $D/data --n-train-tiles 1 --n-val-tiles 1 \
    --tile-size 128 --n-crops-per-type 100 --seed 0 --quiet
[ -f $D/init/encoder.pth ] || $B pretrain --data $D/data/crops --output-dir $D/init --method dama \
    --model mini --weight-init xavier --seed 0 --untrained
$B classify --data $D/data/crops --out $D/cls_init --method init=$D/init/encoder.pth \
    --folds 10 --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1e-3 --crop-scale 0.08 1.0 --random-pos-embed trunc_normal --amp bf16 --workers 0 --quiet
