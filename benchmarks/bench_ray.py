#!/usr/bin/env python
"""`mmsa score --engine ray` (one scoring actor) against `--engine local` on the same input,
same model, same machine, one after the other: rows/s and their ratio (goal >= 0.9).

CPU (figures in benchmarks/results/ray_cpu.md; default backbones MiniLM-L6 +
EfficientNet-Lite2, ote, fp32, the model of score_cpu.md):
    python benchmarks/bench_ray.py --rows 768 --out benchmarks/results/ray_cpu.json

GPU (benchmarks/gpu_session.sh runs it on the model and real JPEGs of bench_score.py's run):
    python benchmarks/bench_ray.py --device cuda --model /tmp/bw/model-run-ote-fp16 \
        --images-dir .gpu/mvsa/data --rows 60000 --ray-cpus 16 --pools 1x1,2x0.5 \
        --rows-per-call 1024 --out $OUT/ray_gpu.json
--pools AxG,...: one Ray run per pool of A actors with G GPUs each (1x1: one actor holding the
GPU; 2x0.5: two actors sharing it), after one local run, on one cluster.

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
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--actors", type=int, default=1)
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="cuda: default 1")
    p.add_argument("--pools", default=None,
                   help="comma-separated ACTORSxGPUS runs on one cluster, e.g. 1x1,2x0.5 [--actors x --gpus-per-actor]")
    p.add_argument("--model", type=Path, default=None, help="an exported model folder (skips building one)")
    p.add_argument("--images-dir", type=Path, default=None, help="real *.jpg from this folder [synthetic]")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds: a pool is skipped when the time so far plus the slowest run would pass it")
    p.add_argument("--text-encoder", default="minilm-l6")
    p.add_argument("--image-encoder", default="efficientnet-lite2")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--batch-size", type=int, default=None, help="default: 32 on the CPU, 256 on CUDA")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsa-bench-ray")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    model_args = argparse.Namespace(fusion="ote", text_encoder=args.text_encoder, image_encoder=args.image_encoder,
                                    precision=args.precision, max_length=64, random_weights=args.random_weights,
                                    seed=0, device=args.device)
    gpus = args.gpus_per_actor or (1.0 if args.device == "cuda" else 0.0)
    pools = [(int(a), float(g)) for a, g in (v.split("x") for v in args.pools.split(","))] if args.pools \
        else [(args.actors, gpus)]
    batch = args.batch_size or (256 if args.device == "cuda" else 32)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    images = (bench_score.real_images(args.images_dir, work, args.images) if args.images_dir
              else bench_score.make_images(work, args.images, max(1, (os.cpu_count() or 2))))
    data = work / f"tweets-{args.rows}.parquet"
    bench_score.make_input(data, args.rows, images)
    model_dir = args.model or bench_score.export(model_args, work)[0]
    t_all = time.perf_counter()

    import pyarrow.parquet as pq
    import ray

    from mmsa_cli.scoring import ScoreOptions, score_files
    from mmsa_cli.scoring.engines.ray_files import RayOptions, score_files_ray

    opts = dict(device=args.device, batch_size=batch, overwrite=True, progress=False)
    local_out = work / "local.parquet"
    t0 = time.perf_counter()
    workers = 1 if args.device == "cpu" else None  # cuda: the local engine's default
    local = score_files(data, model_dir, local_out, ScoreOptions(workers=workers, **opts)).to_dict()
    local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.ray_cpus, object_store_memory=(300 if args.device == "cpu" else 8000)
             * 1024 ** 2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    runs = []
    try:
        for actors, gpus in pools:
            slowest = max((r["seconds"] for r in runs), default=0.0)
            if args.budget and runs and time.perf_counter() - t_all + slowest > args.budget:
                print(f"pool {actors}x{gpus}: skipped (--budget {args.budget:.0f}s)", flush=True)
                runs.append({"actors": actors, "gpus_per_actor": gpus, "skipped": True, "seconds": 0.0})
                continue
            ray_out = work / f"ray-out-{actors}x{gpus}"
            t0 = time.perf_counter()
            summary = score_files_ray(data, model_dir, ray_out, ScoreOptions(row_group_size=args.rows, **opts),
                                      RayOptions(actors=(actors, actors), gpus_per_actor=gpus,
                                                 rows_per_call=args.rows_per_call), progress=False)
            ray_s = time.perf_counter() - t0
            same = _same_rows(pq.read_table(local_out), pq.read_table(ray_out, ignore_prefixes=["_", "."]))
            runs.append({"actors": actors, "gpus_per_actor": gpus, "seconds": round(ray_s, 2),
                         "rows_per_s": round(args.rows / ray_s, 2), "ratio_ray_over_local": round(local_s / ray_s, 3),
                         "same_rows": same, "summary": summary.to_dict()})
            print(f"pool {actors}x{gpus}: {args.rows / ray_s:,.0f} rows/s, {local_s / ray_s:.3f}x local; {same}",
                  flush=True)
            if args.out:  # so far, in case a later pool outlives the caller's timeout
                args.out.write_text(json.dumps({"local_rows_per_s": round(args.rows / local_s, 2),
                                                "cluster_start_seconds": round(init_s, 2), "pools": runs}) + "\n")
    finally:
        ray.shutdown()
    first = next(r for r in runs if not r.get("skipped"))
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "load_average": os.getloadavg(), "gpu": _gpu_name()},
        "command": "python benchmarks/bench_ray.py " + " ".join(sys.argv[1:]),
        "model": model_dir.name, "rows": args.rows, "batch_size": batch, "ray_cpus": args.ray_cpus,
        "device": args.device, "images": str(args.images_dir or "synthetic"),
        "local": {"seconds": round(local_s, 2), "rows_per_s": round(args.rows / local_s, 2), "workers": workers},
        "ray": {"seconds": first["seconds"], "rows_per_s": first["rows_per_s"], "actors": first["actors"],
                "gpus_per_actor": first["gpus_per_actor"],
                "cluster_start_seconds": round(init_s, 2),
                "rows_per_s_with_cluster_start": round(args.rows / (first["seconds"] + init_s), 2)},
        "ratio_ray_over_local": first["ratio_ray_over_local"],
        "ratio_with_cluster_start": round(local_s / (first["seconds"] + init_s), 3),
        "same_rows": first["same_rows"], "pools": runs, "local_summary": local,
        "ray_summary": first["summary"],
    }
    print(json.dumps({k: result[k] for k in ("local", "ray", "ratio_ray_over_local", "ratio_with_cluster_start",
                                             "same_rows")}, indent=2))
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def markdown(result: dict) -> str:
    lines = [f"local engine: {result['local']['rows_per_s']:,.0f} rows/s; Ray cluster start "
             f"{result['ray']['cluster_start_seconds']:.1f}s (not in the rows/s below)", "",
             "| Ray pool (actors x GPUs each) | rows/s | Ray / local | same rows as local |", "|---|---:|---:|---|"]
    for r in result["pools"]:
        if r.get("skipped"):
            lines.append(f"| {r['actors']} x {r['gpus_per_actor']} | skipped (--budget) | | |")
            continue
        same = r["same_rows"]
        lines.append(f"| {r['actors']} x {r['gpus_per_actor']} | {r['rows_per_s']:,.0f} | {r['ratio_ray_over_local']:.3f} "
                     f"| ids {same['ids_equal']}, labels {same['labels_equal']}, max |d prob| "
                     f"{same['max_abs_prob_delta']:.1e} |")
    return "\n".join(lines)


def _same_rows(local, ray_table) -> dict:
    a = {r["guid"]: r for r in local.to_pylist()}
    b = {r["guid"]: r for r in ray_table.to_pylist()}
    probs = ("prob_positive", "prob_neutral", "prob_negative")
    delta = max((abs(a[g][c] - b[g][c]) for g in a if g in b for c in probs if a[g][c] is not None), default=0.0)
    return {"ids_equal": a.keys() == b.keys(), "labels_equal": all(a[g]["label"] == b[g]["label"] for g in a if g in b),
            "max_abs_prob_delta": delta}


if __name__ == "__main__":
    main()
