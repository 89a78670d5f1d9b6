#!/usr/bin/env python
"""Peak memory of `mmsa score` against input size: 20,000 vs 200,000 rows.

Each size runs in a fresh process (score_files in-process there), which reports its own peak
RSS (VmHWM: reader, tokenizer, model, queues, writer) and the largest peak among its image
worker processes (VmHWM, read just before they exit). Memory must depend on batch
size, prefetch depth and row-group size, not on the number of rows.

    python benchmarks/bench_score_memory.py --out benchmarks/results/score_memory.json

Tiny model (tiny-bert + tiny-cnn, ote), 64 small JPEGs reused by path, the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from mmsa_cli.scoring import ScoreOptions  # noqa: E402


def make_input(path: Path, rows: int, images: list[str]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(rows)
    words = np.array("love great awful meeting report sunny rain team win lose city today news".split())
    writer = None
    for start in range(0, rows, 50_000):  # written in pieces: the generator itself stays small
        n = min(50_000, rows - start)
        texts = [" ".join(rng.choice(words, k)) for k in rng.integers(3, 30, n)]
        table = pa.table({"guid": [str(start + i) for i in range(n)], "text": texts,
                          "image": [images[(start + i) % len(images)] for i in range(n)]})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=10_000)
    writer.close()


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child(args) -> None:
    from mmsa_cli.scoring import score_files
    from mmsa_cli.scoring.images.workers import WorkerPool

    # Workers' own peak (VmHWM, read just before they exit): ru_maxrss of children would count
    # the parent's pages shared at fork time, before exec.
    worker_peak = [0]
    shutdown = WorkerPool.shutdown

    def measured_shutdown(pool):
        worker_peak[0] = max([worker_peak[0], *(_peak_kib(p.pid) for p in pool._procs)])
        shutdown(pool)

    WorkerPool.shutdown = measured_shutdown
    t0 = time.perf_counter()
    summary = score_files(args.child_input, args.model, args.child_out,
                          ScoreOptions(device="cpu", workers=args.workers, batch_size=args.batch_size,
                                       prefetch=args.prefetch, row_group_size=args.row_group_size, overwrite=True,
                                       progress=False))
    own = _peak_kib(os.getpid()) / 1024  # VmHWM: ru_maxrss would count the parent's pages shared at fork
    workers = worker_peak[0] / 1024
    print(json.dumps({"rows": summary.rows, "seconds": round(time.perf_counter() - t0, 1),
                      "rows_per_second": summary.rows_per_second, "peak_rss_mib": round(own, 1),
                      "worker_peak_rss_mib": round(workers, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--prefetch", type=int, default=4)
    ap.add_argument("--row-group-size", type=int, default=ScoreOptions.row_group_size, help="[mmsa's default]")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-input", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_input:
        return child(args)

    from scoring_helpers import make_model_folder, noisy_jpeg

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-score-memory-"))
    (work / "img").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(64):
        noisy_jpeg(work / "img" / f"{i}.jpg", (160, 120), seed=i, quality=75, noise=10.0)
        images.append(f"img/{i}.jpg")
    model = work / "model"
    if not model.exists():
        make_model_folder(model, "ote")
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        data = work / f"in-{rows}.parquet"
        if not data.exists():
            make_input(data, rows, images)
        cmd = [sys.executable, __file__, "--model", str(model), "--child-input", str(data),
               "--child-out", str(work / f"out-{rows}.parquet"), "--workers", str(args.workers),
               "--batch-size", str(args.batch_size), "--prefetch", str(args.prefetch),
               "--row-group-size", str(args.row_group_size)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results.append({"input_mib": round(data.stat().st_size / 2**20, 1), **json.loads(line)})
        print(results[-1], flush=True)
    print("| rows | input MiB | seconds | rows/s | peak RSS MiB (main) | peak RSS MiB (largest worker) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['input_mib']} | {r['seconds']} | {r['rows_per_second']:,.0f} | "
              f"{r['peak_rss_mib']} | {r['worker_peak_rss_mib']} |")
    growth = results[-1]["peak_rss_mib"] - results[0]["peak_rss_mib"]
    print(f"growth from {results[0]['rows']:,} to {results[-1]['rows']:,} rows: {growth:+.1f} MiB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "options": vars(args) | {
            "work": str(work), "out": str(args.out)}, "results": results, "growth_mib": round(growth, 1)},
            indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
