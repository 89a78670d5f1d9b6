"""GPU speed of the exported graphs: PyTorch eager fp16 vs ONNX Runtime CUDA fp16.

Run on the H100 box (random weights: nothing pretrained is there), onnxruntime-gpu on
PYTHONPATH (see shared/GPU.md). Here, first:

    ../shared/tools/device-wheels.sh onnxruntime-gpu==1.31.1      # .whl/part.00 .. part.04
    mkdir -p .gpu/site && cp -r .venv/lib/python3.11/site-packages/efficientnet_lite_pytorch .gpu/site/
    grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude

(efficientnet-lite-pytorch is pure Python and has no wheel on the index.) Then one device
call per part, back to back, carrying [".whl/part.NN"]: `mkdir -p /tmp/parts && cp
.whl/part.NN /tmp/parts/`; the last one carries [".whl/part.04", ".gpu"] and runs:

    mkdir -p /tmp/whl && cat /tmp/parts/part.* | tar -xf - -C /tmp/whl \
      && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/*.whl \
      && PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/bench_export_gpu.py \
           --out $OUT/export_gpu.json --md $OUT/export_gpu.md

It takes about 110 s there (exports included; measured 2026-11-26 on the H100).

Cases (batch 256, seq 64, fp16, inputs already on the GPU, ORT through IO binding):
  a) BERT-base text encoder alone: PyTorch SDPA vs ORT fused (Attention, EmbedLayerNorm,
     SkipLayerNorm, BiasGelu; counts reported), without and with a CUDA graph, under each
     attention backend (sdpa_kernel) and other optimizer options, each checked against the
     default on right-padded rows; two diagnostics: no pooling, Attention without its mask;
  b) ResNet-50 image encoder alone (static shapes): PyTorch channels_last vs ORT with CUDA EP
     option variants: default, prefer_nhwc=1, nhwc + cudnn_conv_algo_search=EXHAUSTIVE +
     enable_cuda_graph=1 (preallocated inputs/outputs), and nhwc + fuse_conv_bias=1 (cuDNN
     frontend conv+bias fusion) alone and with the other two;
  c) full ote graphs end to end, exported by the product path (mmsa_cli.onnx_export):
     BERT-base + ResNet-50 and MiniLM-L6 + EfficientNet-Lite2 (the latter needs the
     efficientnet-lite-pytorch package; reported as failed without it).
Every variant runs in its own try/except and a failure is reported, not raised; results
are written after every case; cases not started by --deadline-s are reported as skipped.
`--device cpu --quick` runs the same code on tiny models on the CPU (a smoke test).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch  # noqa: I001  (before onnxruntime: onnxruntime-gpu uses the CUDA libraries torch loads)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402

ort.set_default_logger_severity(3)  # ORT 1.31 warns about plugin EP devices on every CUDA session
from torch import nn  # noqa: E402

from mmsa_cli.config import ModelConfig  # noqa: E402
from mmsa_cli.models import MultimodalModel, create_image_encoder  # noqa: E402
from mmsa_cli.models.text_encoders import TextEncoder  # noqa: E402
from mmsa_cli.onnx_export import fusions as fz  # noqa: E402
from mmsa_cli.onnx_export.graph import export_onnx  # noqa: E402
from mmsa_cli.onnx_export.precision import to_fp16  # noqa: E402
from mmsa_cli.onnx_export.spec import spec_for  # noqa: E402

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
MINILM_L6 = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
REFERENCE = {  # measured on this H100 before (shared/GPU.md), shown beside the new figures
    ("a) BERT-base text encoder", "PyTorch eager SDPA fp16"): 30500,
    ("a) BERT-base text encoder", "ORT CUDA fused fp16"): 34300,
    ("b) ResNet-50 image encoder", "PyTorch channels_last fp16"): 13800,
    ("b) ResNet-50 image encoder", "ORT CUDA fp16 default"): 8700,
}


class Clock:
    def __init__(self, deadline_s: float):
        self.start, self.deadline = time.perf_counter(), deadline_s

    def left(self) -> float:
        return self.deadline - (time.perf_counter() - self.start)


def text_encoder(config: dict, vocab: int = 30522) -> TextEncoder:
    from transformers import AutoModel, BertConfig

    bert = AutoModel.from_config(BertConfig(vocab_size=vocab, max_position_embeddings=512, **config),
                                 attn_implementation="sdpa")
    return TextEncoder(bert, tokenizer=None, pooling="mean").eval()


class TextPart(nn.Module):
    """The text encoder alone; the attribute name keeps the product's `/text_encoder/` scope."""

    def __init__(self, encoder: TextEncoder):
        super().__init__()
        self.text_encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.text_encoder(input_ids, attention_mask)[1]      # pooled [B, H]


class ImagePart(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.image_encoder = encoder

    def forward(self, pixel_values):
        return self.image_encoder(pixel_values)[1]                   # pooled [B, C]


# ---------------------------------------------------------------------------------------------
# Timing

def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def throughput(fn, batch: int, device: str, budget_s: float, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    sync(device)
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < budget_s:
        fn()
        n += 1
        if n % 5 == 0 or device != "cuda":
            sync(device)
    sync(device)
    seconds = time.perf_counter() - start
    return {"items_per_s": round(batch * n / seconds, 1), "ms_per_batch": round(1000 * seconds / n, 3), "iterations": n}


def torch_runner(module: nn.Module, inputs: tuple, device: str):
    def run():
        with torch.inference_mode():
            return module(*inputs)
    return run


def torch_throughput(module: nn.Module, inputs: tuple, batch: int, args) -> dict:
    """A run_variant body that owns the PyTorch copy: its GPU memory goes when the variant is done."""
    return throughput(torch_runner(module, inputs, args.device), batch, args.device, args.budget_s)


def ort_session(path: Path, device: str, options: dict | None = None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if device == "cuda":
        providers = [("CUDAExecutionProvider", {"device_id": 0, **(options or {})}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), so, providers=providers)
    if device == "cuda":
        assert session.get_providers()[0] == "CUDAExecutionProvider", session.get_providers()
    return session


def ort_runner(session, feeds: dict[str, np.ndarray], device: str, *, cuda_graph: bool = False):
    """IO binding: inputs copied to the device once, outputs left there (as PyTorch's are)."""
    binding = session.io_binding()
    ort_device = "cuda" if device == "cuda" else "cpu"
    keep = []
    for name, value in feeds.items():
        v = ort.OrtValue.ortvalue_from_numpy(value, ort_device, 0)
        keep.append(v)
        binding.bind_ortvalue_input(name, v)
    for out in session.get_outputs():
        if cuda_graph:  # CUDA graphs replay fixed addresses: preallocate the outputs
            shape = [feeds[next(iter(feeds))].shape[0] if isinstance(d, str) or d is None else d for d in out.shape]
            dtype = np.float16 if "float16" in out.type else np.float32
            v = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, ort_device, 0)
            keep.append(v)
            binding.bind_ortvalue_output(out.name, v)
        else:
            binding.bind_output(out.name, ort_device)

    def run():
        session.run_with_iobinding(binding)
    run.keep = keep  # the bound buffers must outlive the runner
    return run


# ---------------------------------------------------------------------------------------------
# Export helpers (the product's own path: legacy exporter, eager attention, BERT fusions, fp16)

def export_part(module: nn.Module, example: tuple, names: list[str], dynamic: dict, path: Path, *,
                bert: dict | None, fp16: bool, keep_raw: Path | None = None) -> dict:
    import warnings

    import onnx

    module = module.eval()
    for m in module.modules():
        if isinstance(m, TextEncoder):
            m.set_attention("eager")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["pooled"], dynamic_axes=dynamic, do_constant_folding=True)
    graph = onnx.load(str(path))
    if keep_raw is not None:
        onnx.save_model(graph, str(keep_raw))
    if bert:
        graph = fz.optimize_bert(graph, bert["num_attention_heads"], bert["hidden_size"])
    counts = fz.bert_fusion_counts(fz.op_counts(graph)["text_encoder"])
    if fp16:
        graph = to_fp16(graph)
    onnx.save_model(graph, str(path))
    return counts


def optimize_text_variant(raw: Path, out: Path, cfg: dict, flags: dict) -> dict:
    """The product's BERT fusions with non-default FusionOptions (or use_gpu), then its fp16."""
    import onnx

    flags = dict(flags)
    use_gpu = flags.pop("use_gpu", False)
    model = fz.optimize_bert(onnx.load(str(raw)), cfg["num_attention_heads"], cfg["hidden_size"], options=flags,
                             use_gpu=use_gpu)
    counts = fz.op_counts(model)["text_encoder"]
    onnx.save_model(to_fp16(model), str(out))
    return {k: v for k, v in counts.items() if k in (*fz.BERT_FUSED_OPS, "GemmFastGelu", "MatMul")}


def full_model(text_cfg: dict, image: str, fusion: str = "ote") -> MultimodalModel:
    cfg = ModelConfig(fusion=fusion, text_encoder=f"random bert {text_cfg['hidden_size']}x{text_cfg['num_hidden_layers']}",
                      image_encoder=image)
    return MultimodalModel(cfg, text_encoder(text_cfg), create_image_encoder(image, pretrained=False)).eval()


# ---------------------------------------------------------------------------------------------
# Cases

def case_text(args, tmp: Path, results: list, clock: Clock) -> None:
    name = "a) BERT-base text encoder"
    cfg = TINY_BERT if args.quick else BERT_BASE
    torch.manual_seed(0)
    encoder = text_encoder(cfg)
    b, n = args.batch, args.seq_len
    ids = torch.randint(1000, 30000, (b, n))
    mask = torch.ones(b, n, dtype=torch.long)
    run_variant(results, name, "PyTorch eager SDPA fp16" if args.device == "cuda" else "PyTorch eager SDPA",
                functools.partial(torch_throughput, TextPart(copy.deepcopy(encoder)).to(args.device, args.dtype),
                                  (ids.to(args.device), mask.to(args.device)), b, args))
    path = tmp / "text.onnx"
    fused = {}

    def export():
        # Ragged example mask: an all-ones mask could let the trace skip the masking path.
        example_mask = torch.ones(5, 13, dtype=torch.long)
        for row in range(1, 5):
            example_mask[row, 13 - row:] = 0
        fused.update(export_part(TextPart(encoder), (torch.randint(1000, 30000, (5, 13)), example_mask), ["input_ids", "attention_mask"],
                                 {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}, path,
                                 bert=cfg, fp16=args.fp16, keep_raw=tmp / "text-raw.onnx"))
        return {"text_encoder_fusions": dict(fused)}
    if not run_variant(results, name, "export + fuse + fp16", export, timed=False):
        return
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    # Parity feed: right-padded rows of 4..seq tokens, as the scorer's batches are.
    lengths = torch.randint(4, n + 1, (b,))
    ragged = {"input_ids": feeds["input_ids"], "attention_mask": (torch.arange(n)[None] < lengths[:, None]).long().numpy()}
    reference = {}

    def timed(path_: Path, options: dict, cuda_graph: bool = False) -> dict:
        session = ort_session(path_, args.device, options)
        out = session.run(None, ragged)[0].astype(np.float32)
        reference.setdefault("out", out)  # the first variant (default options) is the reference
        parity = {"max_abs_diff_vs_default_on_padded_rows": float(np.abs(out - reference["out"]).max())}
        return throughput(ort_runner(session, feeds, args.device, cuda_graph=cuda_graph), b, args.device,
                          args.budget_s) | parity | {"text_encoder_fusions": fused}

    run_variant(results, name, "ORT CUDA fused fp16" if args.device == "cuda" else "ORT CPU fused",
                lambda: timed(path, {}))
    if args.device == "cuda":
        # 12 layers x ~10 kernels: launch gaps are worth a CUDA graph.
        run_variant(results, name, "ORT CUDA fused fp16 + cuda graph",
                    lambda: timed(path, {"enable_cuda_graph": "1"}, True))
        # The Attention kernel ORT picks: sdpa_kernel is a bit mask of its attention backends
        # (1 flash, 2 memory-efficient, 4 TensorRT fused, 8 cuDNN flash). Flash needs no mask;
        # cuDNN flash and memory-efficient take the 1D sequence-length mask the optimizer makes.
        for label, kernel in (("cuDNN flash", "8"), ("memory-efficient", "2"), ("TensorRT fused", "4"), ("flash", "1")):
            if clock.left() < 20:
                break
            run_variant(results, name, f"ORT CUDA fused fp16 sdpa_kernel={kernel} ({label})",
                        lambda: timed(path, {"sdpa_kernel": kernel}))
    # Other optimizer settings, from the same raw export (the product uses the defaults).
    for i, (label, flags) in enumerate((("gelu approximation (FastGelu)", {"enable_gelu_approximation": True}),
                                        ("gelu approximation + GemmFastGelu", {"enable_gelu_approximation": True,
                                                                               "enable_gemm_fast_gelu": True}),
                                        ("MultiHeadAttention", {"use_multi_head_attention": True}),
                                        ("use_gpu=True", {"use_gpu": True}))):
        if clock.left() < 25:
            break
        variant = tmp / f"text-variant-{i}.onnx"

        def optimized(flags=flags, variant=variant) -> dict:
            counts = optimize_text_variant(tmp / "text-raw.onnx", variant, cfg, flags)
            return timed(variant, {}) | {"text_encoder_fusions": counts}
        run_variant(results, name, f"ORT {args.device.upper()} fused fp16, optimizer {label}", optimized)
    # Diagnostic: the encoder's token outputs alone, without the mean pooling.
    tokens = tmp / "text-tokens.onnx"

    def tokens_only() -> dict:
        import onnx

        graph = onnx.load(str(path))
        last = [n for n in graph.graph.node if n.op_type == "SkipLayerNormalization"][-1].output[0]
        onnx.save_model(onnx.utils.Extractor(graph).extract_model(["input_ids", "attention_mask"], [last]), str(tokens))
        session = ort_session(tokens, args.device)
        return throughput(ort_runner(session, feeds, args.device), b, args.device, args.budget_s)
    run_variant(results, name, f"ORT {args.device.upper()} fused fp16, tokens output without pooling (diagnostic)",
                tokens_only)
    # Diagnostic, not a product option: Attention without its mask (what a benchmark of the
    # encoder on unpadded input measures); padded rows then differ, as the parity shows.
    import onnx

    graph = onnx.load(str(path))
    for node in graph.graph.node:
        if node.op_type in fz.ATTENTION_OPS and len(node.input) > 3:
            node.input[3] = ""
    unmasked = tmp / "text-unmasked.onnx"
    onnx.save_model(graph, str(unmasked))
    run_variant(results, name, f"ORT {args.device.upper()} fused fp16, Attention without mask (diagnostic)",
                lambda: timed(unmasked, {}))


def case_image(args, tmp: Path, results: list, clock: Clock) -> None:
    name = "b) ResNet-50 image encoder"
    image = "tiny-cnn" if args.quick else "resnet50"
    torch.manual_seed(0)
    encoder = create_image_encoder(image, pretrained=False).eval()
    size = encoder.image_size
    pixels = torch.randn(args.batch, 3, size, size)
    run_variant(results, name, "PyTorch channels_last fp16" if args.device == "cuda" else "PyTorch channels_last",
                functools.partial(
                    torch_throughput,
                    ImagePart(copy.deepcopy(encoder)).to(args.device, args.dtype).to(memory_format=torch.channels_last),
                    (pixels.to(args.device, args.dtype).contiguous(memory_format=torch.channels_last),), args.batch, args))
    path = tmp / "image.onnx"
    # Static shapes (no dynamic axes): what CUDA graphs need, and the same graph for every variant.
    def export():
        export_part(ImagePart(encoder), (pixels,), ["pixel_values"], {}, path, bert=None, fp16=args.fp16)
    if not run_variant(results, name, "export + fp16", export, timed=False):
        return
    feeds = {"pixel_values": pixels.numpy()}
    # Session 1 measured EXHAUSTIVE alone and CUDA graphs alone at the default's speed; kept here
    # are the reference rows and the combinations with cuDNN's conv+bias fusion (fuse_conv_bias).
    variants = [("default", {}), ("prefer_nhwc=1", {"prefer_nhwc": "1"}),
                ("nhwc + exhaustive + cuda graph", {"prefer_nhwc": "1", "cudnn_conv_algo_search": "EXHAUSTIVE",
                                                    "enable_cuda_graph": "1"}),
                ("nhwc + fuse_conv_bias", {"prefer_nhwc": "1", "fuse_conv_bias": "1"}),
                ("nhwc + fuse_conv_bias + exhaustive + cuda graph",
                 {"prefer_nhwc": "1", "fuse_conv_bias": "1", "cudnn_conv_algo_search": "EXHAUSTIVE",
                  "enable_cuda_graph": "1"})]
    if args.device != "cuda":
        variants = variants[:1]
    for label, options in variants:
        if clock.left() < 20:
            results.append({"case": name, "variant": f"ORT CUDA fp16 {label}", "status": "skipped: deadline"})
            continue
        graph = "enable_cuda_graph" in options
        run_variant(results, name, f"ORT CUDA fp16 {label}" if args.device == "cuda" else f"ORT CPU {label}",
                    lambda: throughput(ort_runner(ort_session(path, args.device, options), feeds, args.device,
                                                  cuda_graph=graph), args.batch, args.device, args.budget_s))


def case_full(args, tmp: Path, results: list, clock: Clock, text_cfg: dict, image: str, label: str) -> None:
    name = f"c) ote {label}"
    torch.manual_seed(0)
    model = full_model(text_cfg, image)
    size = model.image_encoder.image_size
    b, n = args.batch, args.seq_len
    ids, mask = torch.randint(1000, 30000, (b, n)), torch.ones(b, n, dtype=torch.long)
    pixels = torch.randn(b, 3, size, size)
    torch_model = copy.deepcopy(model).to(args.device, args.dtype)
    torch_model.image_encoder.to(memory_format=torch.channels_last)
    inputs = (ids.to(args.device), mask.to(args.device),
              pixels.to(args.device, args.dtype).contiguous(memory_format=torch.channels_last))
    run_variant(results, name, "PyTorch eager fp16 (SDPA, channels_last)" if args.device == "cuda" else "PyTorch eager",
                functools.partial(torch_throughput, torch_model, inputs, b, args))
    del torch_model, inputs  # the partial above is gone: this frees the PyTorch copy's GPU memory
    path = tmp / f"full-{image}.onnx"
    fused = {}

    def export():
        import onnx

        raw = export_onnx(model, spec_for(model), path)
        graph = fz.optimize_bert(raw, text_cfg["num_attention_heads"], text_cfg["hidden_size"])
        fused.update(fz.bert_fusion_counts(fz.op_counts(graph)["text_encoder"]))
        onnx.save_model(to_fp16(graph) if args.fp16 else graph, str(path))
        return {"text_encoder_fusions": dict(fused)}
    if not run_variant(results, name, "export + fuse + fp16", export, timed=False):
        return
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "pixel_values": pixels.numpy()}
    for variant, options in (("default", {}), ("prefer_nhwc=1", {"prefer_nhwc": "1"}),
                             ("nhwc + fuse_conv_bias + cuda graph",
                              {"prefer_nhwc": "1", "fuse_conv_bias": "1", "enable_cuda_graph": "1"})):
        if args.device != "cuda" and options:
            continue
        graph = "enable_cuda_graph" in options
        run_variant(results, name, f"ORT CUDA fp16 {variant}" if args.device == "cuda" else f"ORT CPU {variant}",
                    lambda: throughput(ort_runner(ort_session(path, args.device, options), feeds, args.device,
                                                  cuda_graph=graph), b, args.device, args.budget_s)
                    | {"text_encoder_fusions": fused})


def run_variant(results: list, case: str, variant: str, fn, *, timed: bool = True) -> bool:
    start = time.perf_counter()
    entry = {"case": case, "variant": variant} | ({} if timed else {"setup": True})
    try:
        entry |= fn() or {}
        entry["status"] = "ok"
    except Exception as exc:  # one broken variant must not lose the others
        entry["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        entry["traceback"] = traceback.format_exc(limit=4)
    entry["seconds"] = round(time.perf_counter() - start, 1)
    results.append(entry)
    shown = f"{entry['items_per_s']:>10,.0f} items/s" if "items_per_s" in entry else entry["status"]
    if "max_abs_diff_vs_default_on_padded_rows" in entry:
        shown += f" (max |diff| vs default {entry['max_abs_diff_vs_default_on_padded_rows']:.1e})"
    print(f"[{entry['seconds']:6.1f}s] {case} | {variant}: {shown}", flush=True)
    return entry["status"] == "ok"


def markdown(report: dict) -> str:
    lines = [f"# Export GPU benchmark ({report['device_name']})", "",
             f"- command: `{report['command']}`",
             f"- batch {report['batch']}, seq length {report['seq_len']}, {'fp16' if report['fp16'] else 'fp32'}, "
             f"random weights; inputs on the device, ORT through IO binding",
             f"- versions: {report['versions']}", "",
             "| case | variant | items/s | ms/batch | reference (shared/GPU.md) | max abs diff vs default, padded rows | status |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in report["results"]:
        if r.get("setup"):
            continue
        ref = REFERENCE.get((r["case"], r["variant"]))
        ips = f"{r['items_per_s']:,.0f}" if "items_per_s" in r else "-"
        ms = f"{r['ms_per_batch']:.2f}" if "ms_per_batch" in r else "-"
        diff = r.get("max_abs_diff_vs_default_on_padded_rows")
        lines.append(f"| {r['case']} | {r['variant']} | {ips} | {ms} | {f'{ref:,}' if ref else ''} | "
                     f"{'' if diff is None else f'{diff:.1e}'} | {r['status']} |")
    setups = [r for r in report["results"] if r.get("setup")]
    if setups:
        lines += ["", "Exports (text encoder fusions found):", ""]
        lines += [f"- {r['case']}: {r['status']}, {r['seconds']}s, {r.get('text_encoder_fusions', '')}" for r in setups]
    lines += ["", f"Total: {report['total_s']}s"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="Tiny models and sizes (smoke test, CPU).")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=2.0, help="Timed seconds per variant.")
    ap.add_argument("--deadline-s", type=float, default=240.0, help="Skip cases not started by then.")
    ap.add_argument("--cases", default="text,image,full-bert-resnet,full-minilm-lite2")
    ap.add_argument("--out", required=True, help="JSON results path.")
    ap.add_argument("--md", help="Markdown table path [default: --out with .md].")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.seq_len, args.budget_s = min(args.batch, 4), min(args.seq_len, 16), min(args.budget_s, 0.3)
    if args.device == "cuda":
        assert torch.cuda.is_available(), "torch sees no CUDA GPU"
        assert "CUDAExecutionProvider" in ort.get_available_providers(), \
            f"onnxruntime {ort.__version__} from {ort.__file__} has no CUDAExecutionProvider (onnxruntime-gpu on PYTHONPATH?)"
    args.fp16 = True
    args.dtype = torch.float16 if args.device == "cuda" else torch.float32  # CPU PyTorch fp16 is not a fair baseline
    clock, results = Clock(args.deadline_s), []
    import transformers

    report = {"device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({platform.processor()})",
              "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
              "batch": args.batch, "seq_len": args.seq_len, "fp16": args.fp16,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "onnxruntime": ort.__version__, "python": platform.python_version()},
              "results": results}
    out = Path(args.out)
    md = Path(args.md) if args.md else out.with_suffix(".md")

    def save() -> None:
        report["total_s"] = round(time.perf_counter() - clock.start, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        md.write_text(markdown(report))

    minilm = TINY_BERT if args.quick else MINILM_L6
    bert = TINY_BERT if args.quick else BERT_BASE
    cases = {
        "text": lambda tmp: case_text(args, tmp, results, clock),
        "image": lambda tmp: case_image(args, tmp, results, clock),
        "full-bert-resnet": lambda tmp: case_full(args, tmp, results, clock, bert, "tiny-cnn" if args.quick else "resnet50",
                                                  "BERT-base + ResNet-50"),
        "full-minilm-lite2": lambda tmp: case_full(args, tmp, results, clock, minilm,
                                                   "tiny-cnn" if args.quick else "efficientnet-lite2",
                                                   "MiniLM-L6 + EfficientNet-Lite2"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.cases.split(","):
            if clock.left() < 30:
                results.append({"case": key, "variant": "all", "status": "skipped: deadline"})
                continue
            try:
                cases[key](Path(tmp))
            except Exception as exc:
                results.append({"case": key, "variant": "setup", "status": f"failed: {type(exc).__name__}: {exc}"[:300],
                                "traceback": traceback.format_exc(limit=4)})
            if args.device == "cuda":
                torch.cuda.empty_cache()
            save()
    save()
    print(md.read_text())
    return report


if __name__ == "__main__":
    main()
