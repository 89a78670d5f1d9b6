#!/usr/bin/env python
"""`mmsa score --engine ray` (one scoring actor) against `--engine local` on the same input,
same model, same machine, one after the other: rows/s and their ratio (goal >= 0.9).

CPU (figures in benchmarks/results/ray_cpu.md; default backbones MiniLM-L6 +
EfficientNet-Lite2, ote, fp32, the model of score_cpu.md):
    python benchmarks/bench_ray.py --rows 768 --out benchmarks/results/ray_cpu.json

The Ray run starts a local cluster (--ray-cpus logical CPUs: the actor, image tasks and
write tasks each take one) and is timed twice: the job alone (cluster already up: what a
long job converges to) and the cluster start (ray.init), reported apart. Both engines use
batch 32 and check that they give the same rows (by id, probabilities to 1e-6).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import bench_score  # noqa: E402  (images, input and model export of the scoring benchmark)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=768)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--ray-cpus", type=int, default=3)
    p.add_argument("--rows-per-call", type=int, default=128)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsa-bench-ray")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    model_args = argparse.Namespace(fusion="ote", text_encoder="minilm-l6", image_encoder="efficientnet-lite2",
                                    precision="fp32", max_length=64, random_weights=False, seed=0, device="cpu")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    images = bench_score.make_images(work, args.images, max(1, (os.cpu_count() or 2)))
    data = work / f"tweets-{args.rows}.parquet"
    bench_score.make_input(data, args.rows, images)
    model_dir, _ = bench_score.export(model_args, work)

    import pyarrow.parquet as pq
    import ray

    from mmsa_cli.scoring import ScoreOptions, score_files
    from mmsa_cli.scoring.ray_job import RayOptions, score_files_ray

    opts = dict(device="cpu", batch_size=32, overwrite=True, progress=False)
    local_out = work / "local.parquet"
    t0 = time.perf_counter()
    local = score_files(data, model_dir, local_out, ScoreOptions(workers=1, **opts)).to_dict()
    local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.ray_cpus, object_store_memory=300 * 1024 ** 2, include_dashboard=False,
             log_to_driver=False)
    init_s = time.perf_counter() - t0
    try:
        ray_out = work / "ray-out"
        t0 = time.perf_counter()
        summary = score_files_ray(data, model_dir, ray_out, ScoreOptions(row_group_size=args.rows, **opts),
                                  RayOptions(actors=(1, 1), rows_per_call=args.rows_per_call), progress=False)
        ray_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    same = _same_rows(pq.read_table(local_out), pq.read_table(ray_out, ignore_prefixes=["_", "."]))
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "load_average": os.getloadavg()},
        "command": "python benchmarks/bench_ray.py " + " ".join(sys.argv[1:]),
        "model": model_dir.name, "rows": args.rows, "batch_size": 32, "ray_cpus": args.ray_cpus,
        "local": {"seconds": round(local_s, 2), "rows_per_s": round(args.rows / local_s, 2), "workers": 1},
        "ray": {"seconds": round(ray_s, 2), "rows_per_s": round(args.rows / ray_s, 2), "actors": 1,
                "cluster_start_seconds": round(init_s, 2),
                "rows_per_s_with_cluster_start": round(args.rows / (ray_s + init_s), 2)},
        "ratio_ray_over_local": round(local_s / ray_s, 3),
        "ratio_with_cluster_start": round(local_s / (ray_s + init_s), 3),
        "same_rows": same, "local_summary": local, "ray_summary": summary.to_dict(),
    }
    print(json.dumps({k: result[k] for k in ("local", "ray", "ratio_ray_over_local", "ratio_with_cluster_start",
                                             "same_rows")}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _same_rows(local, ray_table) -> dict:
    a = {r["guid"]: r for r in local.to_pylist()}
    b = {r["guid"]: r for r in ray_table.to_pylist()}
    probs = ("prob_positive", "prob_neutral", "prob_negative")
    delta = max((abs(a[g][c] - b[g][c]) for g in a if g in b for c in probs if a[g][c] is not None), default=0.0)
    return {"ids_equal": a.keys() == b.keys(), "labels_equal": all(a[g]["label"] == b[g]["label"] for g in a if g in b),
            "max_abs_prob_delta": delta}


if __name__ == "__main__":
    main()
