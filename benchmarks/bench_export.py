"""Model-level speed: the exported ONNX graph (ORT) against the PyTorch eager model it came
from, same inputs, same process, interleaved iterations (so background load hits both).

    python benchmarks/bench_export.py --random-head \
        --out benchmarks/results/export_cpu.json --md benchmarks/results/export_cpu.md \
        --machine "CPU: 2 cores of this dev machine"

Model: a trained run (--run RUN [--fusion F]) or, with --random-head, pretrained default
encoders (MiniLM-L6 + EfficientNet-Lite2) and an untrained fusion head: speed does not
depend on training. PyTorch: torch.inference_mode, its default SDPA attention, `threads`
intra-op threads. ORT: CPU EP, graph optimisation ALL, intra_op threads = `threads`.
Inputs: random token ids, full attention mask of --seq-len tokens, random pixels.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmsa_cli.config import ModelConfig  # noqa: E402
from mmsa_cli.models import create_model  # noqa: E402
from mmsa_cli.onnx_export import export_model, find_parity_rows  # noqa: E402
from mmsa_cli.onnx_export.export import library_versions  # noqa: E402
from mmsa_cli.onnx_export.runtime import cpu_cores, make_session  # noqa: E402


def build_model(args):
    """(model, tokenizer, description)."""
    if args.run:
        from mmsa_cli.runs import load_run

        run = load_run(args.run, args.fusion)
        return run.model, run.model.text_encoder.tokenizer, f"run {run.folder}"
    cfg = ModelConfig(fusion=args.fusion or "ote", text_encoder=args.text_encoder, image_encoder=args.image_encoder)
    torch.manual_seed(0)
    model = create_model(cfg, pretrained=not args.random_weights).eval()
    weights = "random encoder weights" if args.random_weights else "pretrained encoders"
    return model, model.text_encoder.tokenizer, f"{weights}, untrained {cfg.fusion} head"


def make_inputs(batch: int, seq_len: int, image_size: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq_len), dtype=np.int64)
    mask = np.ones((batch, seq_len), np.int64)
    pixels = rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32)
    return ids, mask, pixels


def bench_batch(torch_model, session, batch: int, args, image_size: int, vocab: int) -> dict:
    ids, mask, pixels = make_inputs(batch, args.seq_len, image_size, vocab)
    feeds = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
    t_in = [torch.from_numpy(x) for x in (ids, mask, pixels)]

    def run_torch():
        with torch.inference_mode():
            return torch_model(*t_in).softmax(-1).numpy()

    def run_ort():
        return session.run(["probs"], feeds)[0]

    # Warm-up only where it is cheap: larger batches follow smaller ones, so threads and
    # allocators are already warm, and one call at batch 256 costs minutes on 2 cores.
    outputs = {}
    if batch <= args.warmup_max_batch:
        outputs = {"pytorch": run_torch(), "ort": run_ort()}
    times = {"pytorch": [], "ort": []}
    # Interleaved, until each engine has used the time budget (at least min, at most max iterations).
    min_iters = args.min_iters_256 if batch >= 256 else args.min_iters
    while len(times["ort"]) < args.max_iters and (len(times["ort"]) < min_iters
                                                  or sum(times["pytorch"]) + sum(times["ort"]) < 2 * args.budget_s):
        for name, fn in (("pytorch", run_torch), ("ort", run_ort)):
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    p_torch, p_ort = outputs["pytorch"], outputs["ort"]
    result = {"batch": batch, "seq_len": args.seq_len, "iterations": len(times["ort"]),
              "max_abs_diff_probs": float(np.abs(p_torch - p_ort).max())}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = {"median_ms": round(1000 * median, 2), "min_ms": round(1000 * min(values), 2),
                        "items_per_s": round(batch / median, 1)}
    result["speedup"] = round(result["pytorch"]["median_ms"] / result["ort"]["median_ms"], 2)
    return result


def markdown(report: dict) -> str:
    lines = [
        f"# Export benchmark: ONNX Runtime vs PyTorch eager ({report['model']['fusion']})",
        "",
        f"- machine: {report['machine']} ({report['platform']})",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}; load average at start: {report['loadavg_start']}",
        f"- model: {report['model']['text_encoder']} + {report['model']['image_encoder']}, {report['model']['fusion']} "
        f"({report['model']['source']}); exported {report['export']['precision']} for {report['export']['target']}, "
        f"text encoder fusions {report['export']['text_encoder_fusions']}",
        f"- PyTorch {report['versions']['torch']} eager, torch.inference_mode, SDPA attention, {report['threads']} threads; "
        f"ONNX Runtime {report['versions']['onnxruntime']} CPUExecutionProvider, ORT_ENABLE_ALL, "
        f"intra_op_num_threads={report['threads']}",
        f"- inputs: seq length {report['seq_len']} (full mask), {report['image_size']}x{report['image_size']} images; "
        f"median of interleaved timed iterations (one warm-up call first at batch <= {report['warmup_max_batch']})",
        "",
        "| batch | PyTorch eager ms | PyTorch items/s | ORT ms | ORT items/s | ORT speedup | iterations | max abs diff prob |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['batch']} | {r['pytorch']['median_ms']:.1f} | {r['pytorch']['items_per_s']:.1f} | "
                     f"{r['ort']['median_ms']:.1f} | {r['ort']['items_per_s']:.1f} | **{r['speedup']:.2f}x** | "
                     f"{r['iterations']} | {r['max_abs_diff_probs']:.1e} |")
    if report.get("notes"):
        lines += ["", *[f"Note: {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="A trained run folder (else --random-head).")
    ap.add_argument("--fusion", default=None)
    ap.add_argument("--random-head", action="store_true", help="Pretrained encoders, untrained head (no run needed).")
    ap.add_argument("--random-weights", action="store_true", help="Random encoders too (no weights needed).")
    ap.add_argument("--text-encoder", default="minilm-l6")
    ap.add_argument("--image-encoder", default="efficientnet-lite2")
    ap.add_argument("--batch-sizes", default="1,16,64,256")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=cpu_cores())
    ap.add_argument("--budget-s", type=float, default=30.0, help="Timed seconds per engine and batch size.")
    ap.add_argument("--min-iters", type=int, default=2)
    ap.add_argument("--min-iters-256", type=int, default=1, help="At batch >= 256 (minutes per call on 2 cores).")
    ap.add_argument("--max-iters", type=int, default=20)
    ap.add_argument("--warmup-max-batch", type=int, default=16)
    ap.add_argument("--machine", default=f"{cpu_cores()} CPU cores")
    ap.add_argument("--model-out", help="Keep the exported model folder here.")
    ap.add_argument("--out", help="JSON results path.")
    ap.add_argument("--md", help="Markdown table path.")
    ap.add_argument("--append-md", action="store_true", help="Append to --md instead of replacing it.")
    args = ap.parse_args(argv)
    if not (args.run or args.random_head):
        ap.error("give --run RUN or --random-head")

    torch.set_num_threads(args.threads)
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else ()
    model, tokenizer, source = build_model(args)
    torch_model = copy.deepcopy(model).eval()  # untouched by the export (see parity.py on tracing)
    rows = find_parity_rows(None, None, max_rows=8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model_out or Path(tmp) / "model")
        start = time.perf_counter()
        exported = export_model(model, tokenizer, folder, rows, precision="fp32", target="cpu", device="cpu")
        export_s = time.perf_counter() - start
        session = make_session(folder / "model.onnx", threads=args.threads)
        image_size, vocab = model.image_encoder.image_size, int(model.text_encoder.bert.config.vocab_size)
        results = []
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            results.append(bench_batch(torch_model, session, batch, args, image_size, vocab))
            r = results[-1]
            print(f"batch {batch:>4}: PyTorch {r['pytorch']['median_ms']:9.1f} ms  ORT {r['ort']['median_ms']:9.1f} ms  "
                  f"speedup {r['speedup']:.2f}x", flush=True)
    report = {
        "machine": args.machine, "platform": f"{platform.machine()}, {platform.processor() or 'cpu'}, {cpu_cores()} cores",
        "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg_start": [round(x, 2) for x in loadavg],
        "threads": args.threads, "seq_len": args.seq_len, "warmup_max_batch": args.warmup_max_batch, "image_size": image_size,
        "model": {"fusion": model.cfg.fusion, "text_encoder": model.cfg.text_encoder,
                  "image_encoder": model.cfg.image_encoder, "source": source},
        "export": {"precision": "fp32", "target": "cpu", "seconds": round(export_s, 1),
                   "text_encoder_fusions": exported.fusions.text, "ep": {k: v for k, v in exported.fusions.ep.items() if k != "ops"},
                   "parity_max_abs_diff_probs": exported.parity.max_abs_diff_probs},
        "versions": library_versions(), "results": results, "notes": [],
    }
    if loadavg and loadavg[0] > 0.5:
        report["notes"].append(f"the machine was not idle (load average {loadavg[0]:.1f} on {cpu_cores()} cores at "
                               f"start); iterations were interleaved so both engines saw the same load")
    print(markdown(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        previous = Path(args.md).read_text() + "\n" if args.append_md and Path(args.md).is_file() else ""
        Path(args.md).write_text(previous + markdown(report))
    return report


if __name__ == "__main__":
    main()
