"""Build small exported model folders for scoring tests and benchmarks.

make_model_folder() uses `mmsa_cli.onnx_export.export_model` (the real `mmsa export`:
fusions, parity checks) when it is available; otherwise `export_model` below, a minimal
export that follows the model-folder contract (mmsa_cli/model_folder.py): model.onnx with
the three inputs and probs/logits outputs, tokenizer/, manifest.json with the sha256, checksums.sha256.
"""
from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmsa_cli import LABELS, __version__
from mmsa_cli.config import ModelConfig
from mmsa_cli.model_folder import INPUT_NAMES, OUTPUT_NAMES, Manifest, sha256_file, write_checksums
from mmsa_cli.models import create_model

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "mvsa"  # parity rows for exports


class _Exported(nn.Module):
    """The graph's signature: (input_ids, attention_mask, pixel_values) -> (probs, logits)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, pixel_values):
        logits = self.model(input_ids, attention_mask, pixel_values).float()
        return logits.softmax(-1), logits


def _keep_all_inputs(onnx_bytes: bytes, batch_len: dict[str, list]) -> bytes:
    """torch.onnx drops unused inputs (text-only / image-only models); the contract has all three."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(onnx_bytes)
    present = {i.name for i in proto.graph.input}
    for name in INPUT_NAMES:
        if name not in present:
            dtype = TensorProto.FLOAT if name == "pixel_values" else TensorProto.INT64
            proto.graph.input.append(helper.make_tensor_value_info(name, dtype, batch_len[name]))
    order = {n: i for i, n in enumerate(INPUT_NAMES)}
    inputs = sorted(proto.graph.input, key=lambda v: order.get(v.name, 99))
    del proto.graph.input[:]
    proto.graph.input.extend(inputs)
    return proto.SerializeToString()


def export_model(model: nn.Module, out: Path, *, max_length: int, image_size: int, mean, std,
                 fusion: str, text_encoder: str, image_encoder: str, uses_text: bool, uses_image: bool,
                 tokenizer, precision: str = "fp32") -> Path:
    """Write `out` as a model folder for `model` (eval mode, fp32, CPU)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Export a copy: the legacy exporter can leave the exported module changed (see GPU.md).
    wrapper = _Exported(copy.deepcopy(model)).eval()
    batch, length = 2, 8
    ids = torch.randint(1000, 2000, (batch, length), dtype=torch.long)
    mask = torch.ones((batch, length), dtype=torch.long)
    mask[1, 5:] = 0
    pixels = torch.randn(batch, 3, image_size, image_size)
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
               "pixel_values": {0: "batch"}, "probs": {0: "batch"}, "logits": {0: "batch"}}
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(wrapper, (ids, mask, pixels), buf, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=17, dynamo=False)
    shapes = {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"],
              "pixel_values": ["batch", 3, image_size, image_size]}
    (out / "model.onnx").write_bytes(_keep_all_inputs(buf.getvalue(), shapes))
    tokenizer.save_pretrained(out / "tokenizer")
    manifest = Manifest(
        labels=list(LABELS), max_length=max_length, image_size=image_size, image_mean=list(mean),
        image_std=list(std), text_encoder=text_encoder, image_encoder=image_encoder, fusion=fusion,
        precision=precision, target="cpu", opset=17, model_sha256=sha256_file(out / "model.onnx"),
        uses_text=uses_text, uses_image=uses_image, versions={"mmsa": __version__, "torch": torch.__version__},
    )
    (out / "manifest.json").write_text(manifest.to_json())
    write_checksums(out)
    return out


def build_model(fusion: str = "ote", *, text_encoder: str = "tiny-bert", image_encoder: str = "tiny-cnn",
                max_length: int = 32, seed: int = 0, pretrained: bool = False):
    """A model with eager attention (what ORT fuses); deterministic weights from `seed`."""
    torch.manual_seed(seed)
    model = create_model(ModelConfig(fusion=fusion, text_encoder=text_encoder, image_encoder=image_encoder,
                                     max_length=max_length), pretrained=pretrained)
    model.text_encoder.set_attention("eager")
    # Random BatchNorm statistics: make them non-trivial so images matter to the prediction.
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and not pretrained:
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def make_model_folder(out: Path, fusion: str = "ote", *, text_encoder: str = "tiny-bert",
                      image_encoder: str = "tiny-cnn", max_length: int = 32, seed: int = 0,
                      pretrained: bool = False, precision: str = "fp32", target: str = "cpu",
                      parity_rows: int = 16, decision_rule: dict | None = None) -> Path:
    model = build_model(fusion, text_encoder=text_encoder, image_encoder=image_encoder, max_length=max_length,
                        seed=seed, pretrained=pretrained)
    try:
        from mmsa_cli.onnx_export import export_model as mmsa_export, find_parity_rows
    except ImportError:  # before `mmsa export` exists
        mmsa_export = None
    if mmsa_export is not None:
        rows = find_parity_rows(None, None, parity_data=SAMPLES, max_rows=parity_rows)
        mmsa_export(model, model.text_encoder.tokenizer, out, rows, precision=precision, target=target,
                    device="cuda" if target == "cuda" else "cpu", decision_rule=decision_rule)
        return Path(out)
    if precision != "fp32":
        raise RuntimeError("fp16 model folders need mmsa_cli.onnx_export")
    enc = model.image_encoder
    return export_model(model, out, max_length=max_length, image_size=enc.image_size, mean=enc.mean, std=enc.std,
                        fusion=fusion, text_encoder=text_encoder, image_encoder=image_encoder,
                        uses_text=model.uses_text, uses_image=model.uses_image,
                        tokenizer=model.text_encoder.tokenizer)


def noisy_jpeg(path: Path, size: tuple[int, int], seed: int, quality: int = 85, noise: float = 18.0) -> Path:
    """A JPEG with texture (gradient + shapes + noise) so its file size is realistic."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    base = np.zeros((h, w, 3), np.float32)
    base += np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(40, 200, 3)
    base += np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * rng.uniform(-60, 60, 3)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    arr = np.asarray(img, np.int16) + rng.normal(0, noise, (h, w, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=quality)
    return path
