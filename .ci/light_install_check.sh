#!/usr/bin/env bash
# The scoring install, proven in a fresh virtual environment (issue 16): `pip install '.[cpu]'`
# has no torch and no transformers, and `mmsa score` scores a model folder with it. The
# folder is exported first with the full test environment (the `python` on PATH, with
# [train,cpu,test] installed). Then pip's resolver shows that [train,gpu] and [train,cpu]
# each bring exactly one ONNX Runtime flavour, dependencies of dependencies included.
# Run by .ci/run after the test suite; any failure exits non-zero with a line saying what.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "light install check FAILED: $*" >&2; exit 1; }

echo "light install check: exporting a tiny model folder with the full environment"
PYTHONPATH=tests python -c "
import sys
from scoring_helpers import make_model_folder
make_model_folder(sys.argv[1], 'ote', parity_rows=8)" "$work/model" >/dev/null

echo "  (${SECONDS}s)"
echo "light install check: pip install '.[cpu]' into a fresh venv"
python3 -m venv "$work/light"
light="$work/light/bin"
"$light/python" -m pip install -q --upgrade pip
"$light/python" -m pip install -q '.[cpu]'
"$light/python" -m pip check || fail "pip check of the [cpu] install"
for heavy in torch torchvision transformers onnxruntime_gpu; do
  if "$light/python" -c "import $heavy" 2>/dev/null; then fail "the [cpu] install can import $heavy"; fi
done
echo "  site-packages: $(du -sh "$("$light/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1)"

echo "  (${SECONDS}s)"
version=$("$light/mmsa" --version)
[[ "$version" == "mmsa $("$light/python" -c 'import mmsa_cli; print(mmsa_cli.__version__)') (mmsa-tweets)" ]] \
  || fail "mmsa --version printed '$version'"
"$light/mmsa" score samples/tweets.parquet --model "$work/model" --out "$work/scored.parquet" --device cpu \
  --no-progress || fail "mmsa score in the [cpu] install exited $?"
"$light/python" - "$work/scored.parquet" samples/tweets.parquet <<'EOF' || fail "scored output"
import sys
import pyarrow.parquet as pq
scored, source = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
assert scored.num_rows == source.num_rows, (scored.num_rows, source.num_rows)
assert scored.column("label").null_count < scored.num_rows
print(f"  scored {scored.num_rows} rows without torch")
EOF

echo "  (${SECONDS}s)"
echo "light install check: one ONNX Runtime flavour per install (pip's resolution)"
for case in "train,gpu:onnxruntime-gpu:onnxruntime" "train,cpu:onnxruntime:onnxruntime-gpu"; do
  IFS=: read -r extras want banned <<<"$case"
  "$light/python" -m pip install -q --dry-run --ignore-installed --report "$work/report.json" ".[$extras]" \
    >/dev/null || fail "pip could not resolve .[$extras]"
  "$light/python" - "$work/report.json" "$want" "$banned" "$extras" <<'EOF' || fail "resolution of .[$extras]"
import json, re, sys
report, want, banned, extras = sys.argv[1:]
names = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower() for item in json.load(open(report))["install"]}
assert want in names and banned not in names, (extras, sorted(n for n in names if "onnxruntime" in n))
print(f"  .[{extras}] resolves {len(names)} distributions, ONNX Runtime: {want} only")
EOF
done
echo "light install check: ok (${SECONDS}s)"
