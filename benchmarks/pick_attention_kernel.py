"""For gpu_checks.sh: the text attention kernel worth an end-to-end scoring run, and the share.

Reads bench_export_gpu.py's JSON (text case) and bench_score.py's JSON; prints
"SDPA_KERNEL SHARE" when an `sdpa_kernel=K` variant beat the default options by at least 2%
while matching them on padded rows (max |diff| <= 1e-2, the fp16 tolerance of issue 3), with
SHARE the fastest --gpu-decode-share of the scoring sweep; prints nothing otherwise.
"""
from __future__ import annotations

import json
import re
import sys


def main(export_json: str, score_json: str) -> str:
    rows = [r for r in json.load(open(export_json))["results"] if r["case"].startswith("a)") and "items_per_s" in r]
    default = next((r for r in rows if r["variant"] == "ORT CUDA fused fp16"), None)
    if default is None:
        return ""
    best = None
    for r in rows:
        m = re.search(r"sdpa_kernel=(\d+)", r["variant"])
        ok = r.get("max_abs_diff_vs_default_on_padded_rows", 1.0) <= 1e-2
        if m and ok and r["items_per_s"] >= 1.02 * default["items_per_s"]:
            if best is None or r["items_per_s"] > best[1]:
                best = (m.group(1), r["items_per_s"])
    if best is None:
        return ""
    sweep = [r for r in json.load(open(score_json))["sweep"] if not r.get("skipped")]
    share = max(sweep, key=lambda r: r["rows_per_second"])["gpu_decode_share"]
    return f"{best[0]} {share}"


if __name__ == "__main__":
    print(main(*sys.argv[1:3]))
