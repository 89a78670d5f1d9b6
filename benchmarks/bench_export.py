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

The cost of one fusion relative to another over the same encoders (e.g. an ensemble of
fusion heads against one head) is measured with --vs-fusion: the second model is the same
encoders (a copy) with that fusion's head, exported the same way, and all four engines
(PyTorch and ORT, each model) are timed interleaved:

    python benchmarks/bench_export.py --random-head --fusion ensemble --vs-fusion ote \
        --batch-sizes 1,16 --out benchmarks/results/ensemble_cost_cpu.json \
        --md benchmarks/results/ensemble_cost_cpu.md --machine "2-core dev CPU, shared"
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
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
from mmsa_cli.models import create_model, fusion_class  # noqa: E402
from mmsa_cli.models.fusion import check_fusion_config  # noqa: E402
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


def with_fusion(model, name: str):
    """A copy of `model` (same encoders, same weights) with an untrained `name` fusion head."""
    other = copy.deepcopy(model)
    other.cfg = dataclasses.replace(model.cfg, fusion=name)
    check_fusion_config(other.cfg)
    torch.manual_seed(1)
    other.fusion = fusion_class(name)(model.text_encoder.hidden_size, model.image_encoder.hidden_size, other.cfg)
    return other.eval()


def make_inputs(batch: int, seq_len: int, image_size: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq_len), dtype=np.int64)
    mask = np.ones((batch, seq_len), np.int64)
    pixels = rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32)
    return ids, mask, pixels


def bench_batch(torch_model, session, batch: int, args, image_size: int, vocab: int, vs=None) -> dict:
    """Time PyTorch and ORT on one batch size; with vs = (name, torch model, session), time that
    model's two engines too, all four interleaved, and report the cost ratios."""
    ids, mask, pixels = make_inputs(batch, args.seq_len, image_size, vocab)
    feeds = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
    t_in = [torch.from_numpy(x) for x in (ids, mask, pixels)]

    def torch_engine(m):
        def run():
            with torch.inference_mode():
                return m(*t_in).softmax(-1).numpy()
        return run

    def ort_engine(s):
        return lambda: s.run(["probs"], feeds)[0]

    engines = {"pytorch": torch_engine(torch_model), "ort": ort_engine(session)}
    if vs is not None:
        engines |= {"pytorch_vs": torch_engine(vs[1]), "ort_vs": ort_engine(vs[2])}
    # Warm-up only where it is cheap: larger batches follow smaller ones, so threads and
    # allocators are already warm, and one call at batch 256 costs minutes on 2 cores.
    outputs = {}
    if batch <= args.warmup_max_batch:
        outputs = {name: fn() for name, fn in engines.items()}
    times = {name: [] for name in engines}
    # Interleaved, until each engine has used the time budget (at least min, at most max iterations).
    min_iters = args.min_iters_256 if batch >= 256 else args.min_iters
    while len(times["ort"]) < args.max_iters and (len(times["ort"]) < min_iters or sum(
            sum(v) for v in times.values()) < len(engines) * args.budget_s):
        for name, fn in engines.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    result = {"batch": batch, "seq_len": args.seq_len, "iterations": len(times["ort"]),
              "max_abs_diff_probs": float(np.abs(outputs["pytorch"] - outputs["ort"]).max())}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = {"median_ms": round(1000 * median, 2), "min_ms": round(1000 * min(values), 2),
                        "items_per_s": round(batch / median, 1)}
    result["speedup"] = round(result["pytorch"]["median_ms"] / result["ort"]["median_ms"], 2)
    if vs is not None:
        result["vs"] = {"fusion": vs[0], "pytorch": result.pop("pytorch_vs"), "ort": result.pop("ort_vs"),
                        "max_abs_diff_probs": float(np.abs(outputs["pytorch_vs"] - outputs["ort_vs"]).max())}
        # Cost of this model relative to the vs model: ratio of medians, and of minimums (the
        # least disturbed run of each, which background load on a shared machine distorts least).
        result["cost_vs"] = {engine: {stat: round(result[engine][stat] / result["vs"][engine][stat], 3)
                                      for stat in ("median_ms", "min_ms")} for engine in ("ort", "pytorch")}
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
        f"text encoder fusions {report['export']['text_encoder_fusions']}"
        + (f"; ensemble members {', '.join(report['model']['ensemble_members'])}"
           if report["model"].get("ensemble_members") else ""),
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
    vs = [r for r in report["results"] if "vs" in r]
    if vs:
        a, b = report["model"]["fusion"], vs[0]["vs"]["fusion"]
        sizes = report["export"].get("model_onnx_bytes", {})
        lines += [
            "",
            f"Cost of `{a}` relative to `{b}` (same encoders and weights, {b} head untrained too; "
            f"model.onnx {sizes.get(a, 0) / 1e6:.1f} MB vs {sizes.get(b, 0) / 1e6:.1f} MB):",
            "",
            f"| batch | {b} ORT ms | {a} ORT ms | ORT cost (median) | ORT cost (min) | {b} PyTorch ms | {a} PyTorch ms "
            f"| PyTorch cost (median) | max abs diff prob ({b}) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in vs:
            c = r["cost_vs"]
            lines.append(f"| {r['batch']} | {r['vs']['ort']['median_ms']:.1f} | {r['ort']['median_ms']:.1f} | "
                         f"**{c['ort']['median_ms']:.3f}x** | {c['ort']['min_ms']:.3f}x | "
                         f"{r['vs']['pytorch']['median_ms']:.1f} | {r['pytorch']['median_ms']:.1f} | "
                         f"{c['pytorch']['median_ms']:.3f}x | {r['vs']['max_abs_diff_probs']:.1e} |")
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
    ap.add_argument("--vs-fusion", default=None,
                    help="Also export this fusion over a copy of the same encoders and time it interleaved, "
                         "to report the main fusion's cost relative to it (e.g. --fusion ensemble --vs-fusion ote).")
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
    vs_model = with_fusion(model, args.vs_fusion) if args.vs_fusion else None
    torch_model = copy.deepcopy(model).eval()  # untouched by the export (see parity.py on tracing)
    torch_vs = copy.deepcopy(vs_model).eval() if vs_model is not None else None
    rows = find_parity_rows(None, None, parity_data=Path(__file__).resolve().parents[1] / "samples" / "mvsa", max_rows=8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model_out or Path(tmp) / "model")
        start = time.perf_counter()
        exported = export_model(model, tokenizer, folder, rows, precision="fp32", target="cpu", device="cpu")
        export_s = time.perf_counter() - start
        session = make_session(folder / "model.onnx", threads=args.threads)
        sizes = {model.cfg.fusion: (folder / "model.onnx").stat().st_size}
        vs = None
        if vs_model is not None:
            vs_folder = Path(tmp) / "vs-model"
            export_model(vs_model, tokenizer, vs_folder, rows, precision="fp32", target="cpu", device="cpu")
            vs = (args.vs_fusion, torch_vs, make_session(vs_folder / "model.onnx", threads=args.threads))
            sizes[args.vs_fusion] = (vs_folder / "model.onnx").stat().st_size
        image_size, vocab = model.image_encoder.image_size, int(model.text_encoder.bert.config.vocab_size)
        results = []
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            results.append(bench_batch(torch_model, session, batch, args, image_size, vocab, vs))
            r = results[-1]
            print(f"batch {batch:>4}: PyTorch {r['pytorch']['median_ms']:9.1f} ms  ORT {r['ort']['median_ms']:9.1f} ms  "
                  f"speedup {r['speedup']:.2f}x", flush=True)
            if vs is not None:
                print(f"            {vs[0]}: PyTorch {r['vs']['pytorch']['median_ms']:9.1f} ms  ORT "
                      f"{r['vs']['ort']['median_ms']:9.1f} ms; {model.cfg.fusion} costs "
                      f"{r['cost_vs']['ort']['median_ms']:.3f}x (ORT)", flush=True)
    report = {
        "machine": args.machine, "platform": f"{platform.machine()}, {platform.processor() or 'cpu'}, {cpu_cores()} cores",
        "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg_start": [round(x, 2) for x in loadavg],
        "threads": args.threads, "seq_len": args.seq_len, "warmup_max_batch": args.warmup_max_batch, "image_size": image_size,
        "model": {"fusion": model.cfg.fusion, "text_encoder": model.cfg.text_encoder,
                  "image_encoder": model.cfg.image_encoder, "source": source,
                  **({"ensemble_members": list(model.cfg.ensemble_members)} if model.cfg.fusion == "ensemble" else {}),
                  **({"vs_fusion": args.vs_fusion} if args.vs_fusion else {})},
        "export": {"precision": "fp32", "target": "cpu", "seconds": round(export_s, 1),
                   "text_encoder_fusions": exported.fusions.text, "ep": {k: v for k, v in exported.fusions.ep.items() if k != "ops"},
                   "parity_max_abs_diff_probs": exported.parity.max_abs_diff_probs, "model_onnx_bytes": sizes},
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
