#!/usr/bin/env bash
# GPU check for a session that draws a lent GPU machine (torch and lightning there; no internet,
# no hydra, omegaconf, torchmetrics 0.11.4, timm or solo-learn). Under 8 minutes on an H100:
#   1. the CO overhead benchmark at bf16-mixed with channels_last (ResNet-18/CIFAR, ResNet-50 and
#      RF-ResNet-50 at 224 px; step time, FLOPs and peak GPU memory, CO/base ratios),
#   2. a 200-step CO-BYOL vs BYOL training throughput (images/s) and peak GPU memory.
# What to carry (ignored .device/, docs/speed_and_memory.md): .device/wheels/ with the wheels
# of hydra-core, omegaconf, antlr4-python3-runtime, torchmetrics==0.11.4, timm and einops, and
# .device/solo-learn/ an unpacked solo-learn checkout. Results go to $OUT (or benchmarks/results).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"

if [ -d .device/wheels ]; then
  python -m pip install -q --no-index --find-links .device/wheels \
    hydra-core omegaconf "torchmetrics==0.11.4" timm einops
fi
export PYTHONPATH="$PWD:$PWD/.device/solo-learn${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# 1. overhead at bf16-mixed, channels_last
timeout 300 python benchmarks/overhead.py --device cuda --precision bf16-mixed --channels-last \
  --settings r18-cifar-32 r50-224 rf50-224 --pairs byol simclr mocov3 dino --steps 20 \
  --batch-size 64 --local-hidden-dim 512 --local-recompute --out "$OUT/overhead-bf16"
# 2. 200-step training throughput of CO-BYOL vs BYOL (images/s = batch / median step time)
timeout 150 python benchmarks/overhead.py --device cuda --precision bf16-mixed --channels-last \
  --settings r50-224 --pairs byol --steps 200 --batch-size 128 --out "$OUT/throughput-bf16"
