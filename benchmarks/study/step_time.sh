#!/usr/bin/env bash
# Median seconds per training step of one method through solo-learn's main_pretrain.py, on
# CIFAR-10 as an ImageFolder (all 50k images, data loading included), steps 6-30.
#   benchmarks/study/step_time.sh DATA METHOD WIDTH BATCH PRECISION [CONFIG]
# e.g. benchmarks/study/step_time.sh /data/cifar10 co_simclr 16 128 bf16-mixed
# Another backbone: BACKBONE=rf_resnet18 EXTRA="++backbone.kwargs.cifar_stem=True ..." step_time.sh ...
# Tiny-ImageNet at 64 px: CONFIGS=tiny-imagenet CROP=64 BACKBONE=rf_resnet18 step_time.sh /data/tin ...
# STEPS (default 30) sets how many steps run; the median is over steps 6 to STEPS.
set -euo pipefail
BACKBONE=${BACKBONE:-resnet18_cifar}
CONFIGS=${CONFIGS:-cifar} CROP=${CROP:-32} STEPS=${STEPS:-30}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
DATA=$1 METHOD=$2 WIDTH=$3 BATCH=$4 PRECISION=$5 CONFIG=${6:-co_${2#co_}.yaml}
SOLO=$(python -c "import solo, pathlib; print(pathlib.Path(solo.__file__).parents[1])" 2>/dev/null)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
SOLO_CO_STEP_LOG="$work/steps.csv" python "$SOLO/main_pretrain.py" \
  --config-path "pkg://solo_coplugin.configs.$CONFIGS" --config-name "$CONFIG" method="$METHOD" \
  data.dataset=custom data.train_path="$DATA/train" ++data.val_path=null data.num_workers=2 \
  backbone.name="$BACKBONE" ++backbone.kwargs.width="$WIDTH" optimizer.batch_size="$BATCH" \
  max_epochs=1 ++max_steps="$STEPS" accelerator=cpu 'devices="1"' precision="$PRECISION" \
  strategy=auto sync_batchnorm=False wandb.enabled=False checkpoint.enabled=False \
  auto_resume.enabled=False ++knn_eval.enabled=False ++auto_umap.enabled=False \
  augmentations.0.crop_size="$CROP" "${EXTRA_ARGS[@]}" > log.txt 2>&1 || { tail -20 log.txt; exit 1; }
python - "$work/steps.csv" "$METHOD $BACKBONE w$WIDTH b$BATCH $PRECISION" <<'PY'
import csv, statistics, sys
seconds = [float(row["seconds"]) for row in csv.DictReader(open(sys.argv[1]))]
steps = [b - a for a, b in zip(seconds, seconds[1:])][5:]
print(f"{sys.argv[2]}: {statistics.median(steps):.3f} s/step (median of {len(steps)})")
PY
