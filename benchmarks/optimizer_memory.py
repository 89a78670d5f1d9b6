"""Memory that ONNX Runtime's BERT optimizer adds while it fuses one graph: the export's
optimize_bert (which frees the optimizer's shape-inference copies, onnx_export/fusions.py)
against ORT's optimize_model called as it comes (--stock). Random BERT-base text encoder, tiny
CNN image encoder, naive-cat; the process's RSS sampled every 50 ms.

    python benchmarks/optimizer_memory.py            # the export's optimizer
    python benchmarks/optimizer_memory.py --stock    # ORT alone
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_cli.config import ModelConfig  # noqa: E402
from mmsa_cli.models import create_model  # noqa: E402
from mmsa_cli.onnx_export import fusions as fz  # noqa: E402
from mmsa_cli.onnx_export.graph import export_onnx  # noqa: E402
from mmsa_cli.onnx_export.spec import spec_for  # noqa: E402


def rss_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stock", action="store_true", help="ORT's optimize_model as it comes")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = create_model(ModelConfig(fusion="naive-cat", text_encoder="bert-base-uncased",
                                         image_encoder="tiny-cnn"), pretrained=False).eval()
        raw = export_onnx(model, spec_for(model), Path(tmp) / "raw.onnx")
        del model
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_gb())
            time.sleep(0.05)

    before = rss_gb()
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    if args.stock:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        graph = optimize_model(raw, model_type="bert", num_heads=12, hidden_size=768,
                               optimization_options=FusionOptions("bert"), opt_level=0).model
    else:
        graph = fz.optimize_bert(raw, 12, 768)
    seconds = time.perf_counter() - t0
    done.set()
    counts = fz.bert_fusion_counts(fz.op_counts(graph)["text_encoder"])
    print(f"{'ORT optimize_model' if args.stock else 'optimize_bert'}: graph {graph.ByteSize() / 2**30:.2f} GB, "
          f"RSS before {before:.2f} GB, peak {peak[0]:.2f} GB (+{peak[0] - before:.2f}), {seconds:.1f} s; "
          f"fusions {counts}; {platform.machine()}, {platform.processor() or 'cpu'}")


if __name__ == "__main__":
    main()
