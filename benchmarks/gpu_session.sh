#!/usr/bin/env bash
# Issue 30 in ONE device call of under 9 minutes (../shared/GPU.md: H200, Python 3.12, torch 2.11):
#  1. benchmarks/gpu_dali_checks.sh: BERT-base + ResNet-50 ote trained on real MVSA rows, exported
#     fp16, then bench_score.py: mmsa score with DALI at hw_decoder_load 0.65 (the default), 0.5,
#     0.9 and 1.0, with nvJPEG, at batch 256 and 512; the ONNX-Runtime-only ceiling; PyTorch eager
#     + DataLoader; label agreement with the CPU image path; the cold CLI on 60,000 rows;
#  2. benchmarks/bench_ray.py on the same model folder and JPEGs: the local engine, then Ray pools
#     of 1 actor x 1 GPU and 2 actors x 0.5 GPU on one local cluster.
# Here first (about 5 min): bash benchmarks/gpu_dali_pack.sh -> .whl/part.NN (onnxruntime-gpu,
# DALI, Ray) and .gpu/ (tokenizer stand-in, efficientnet-lite-pytorch, an MVSA subset). Then
# the device calls back to back, one per part:
#     run(command="mkdir -p /tmp/parts && cp .whl/part.NN /tmp/parts/", carry=[".whl/part.NN"])
# and last:  run(command="bash benchmarks/gpu_session.sh", carry=[".gpu"], timeout_s=560)
# Results under $OUT: score_gpu_dali.{json,md}, ray_gpu.json, env.txt, logs.tar.gz.
# Dry run on a CPU machine (about 3 min on 2 cores):
#   DEV=cpu TEXT=tiny-bert IMAGE=tiny-cnn ROWS=64 BASELINE=32 IMAGES=32 EPOCHS=1 PRECISION=fp32 \
#     RAY_ROWS=64 POOLS=1x0,2x0 RAY_CPUS=2 BENCH_ARGS="--extra-batch-sizes 16" bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export OUT DEV=${DEV:-cuda} PRECISION=${PRECISION:-fp16}
export DECODERS=${DECODERS:-dali,nvjpeg,dali@0.5,dali@0.9,dali@1.0}
export BENCH_ARGS=${BENCH_ARGS:---extra-batch-sizes 512}
export BUDGET_S=${BUDGET_S:-380}   # training + bench_score
TOTAL_S=${TOTAL_S:-520}            # everything: Ray gets what is left
bash benchmarks/gpu_dali_checks.sh
echo "== Ray engine ($((TOTAL_S - SECONDS)) s left)"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD
model=$(ls -d /tmp/bw/model-run-ote-"$PRECISION" 2>/dev/null)
left=$((TOTAL_S - SECONDS))
if [ -z "$model" ]; then
  echo "no exported model under /tmp/bw: Ray skipped"
elif [ $left -lt 60 ]; then
  echo "Ray skipped: $left s left"
else
  timeout $left python3 benchmarks/bench_ray.py --device "$DEV" --model "$model" --images-dir .gpu/mvsa/data \
    --images "${IMAGES:-1000}" --rows "${RAY_ROWS:-60000}" --ray-cpus "${RAY_CPUS:-16}" --pools "${POOLS:-1x1,2x0.5}" \
    --rows-per-call 1024 --budget $((left - 30)) --work /tmp/bray --out "$OUT/ray_gpu.json" > "$OUT/ray.log" 2>&1
  echo "ray: exit $?, $SECONDS s"; grep -v "^\s*$" "$OUT/ray.log" | tail -12
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv >> "$OUT/env.txt"
(cd "$OUT" && tar -czf logs.tar.gz ./*.log && rm -f ./*.log)
echo "session: $SECONDS s"
