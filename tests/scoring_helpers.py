"""Build small exported model folders for scoring tests and benchmarks.

make_model_folder() exports with `mmsa_cli.onnx_export.export_model`, the real `mmsa export`
(fusions, parity checks, manifest, checksums).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmsa_cli.config import ModelConfig
from mmsa_cli.models import create_model

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "mvsa"  # parity rows for exports


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
    from mmsa_cli.onnx_export import export_model, find_parity_rows

    rows = find_parity_rows(None, None, parity_data=SAMPLES, max_rows=parity_rows)
    export_model(model, model.text_encoder.tokenizer, out, rows, precision=precision, target=target,
                 device="cuda" if target == "cuda" else "cpu", decision_rule=decision_rule)
    return Path(out)


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


@contextlib.contextmanager
def local_s3_server():
    """A real S3-compatible server (moto) on localhost, empty, its address in the environment
    that pyarrow, boto3 and processes started meanwhile read; the environment is restored after.
    Yields its URL."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets per process: start from none
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    saved = dict(os.environ)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
