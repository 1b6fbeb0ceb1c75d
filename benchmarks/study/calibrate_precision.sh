#!/usr/bin/env bash
# bf16-mixed against 32-bit on the study's network: SimCLR and CO-SimCLR, ResNet-18 width 16,
# batch 128, all 50k CIFAR-10 training images, 2 epochs, seed 0, evaluated on the 10k test images.
#   benchmarks/study/calibrate_precision.sh DATA WORK
set -euo pipefail
DATA=$1 WORK=$2
for precision in bf16-mixed 32; do
  OMP_NUM_THREADS=1 solo-co-bench --data "$DATA" --pairs simclr,co_simclr --epochs 2 \
    --batch-size 128 --seeds 0 --precision "$precision" --override ++backbone.kwargs.width=16 \
    --out "$WORK/precision-$precision"
done
