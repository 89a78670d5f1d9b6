"""Score one tweet with an exported mmsa model folder, using plain ONNX Runtime, the
`tokenizers` library, Pillow and numpy (no mmsa, torch or transformers needed).
A model trained with `--text-normalization tweet` (manifest `text_normalization`) must see
its text rewritten the same way first: for such a model only, this imports that rewrite
from mmsa (mmsa_cli.data.tweet_text; regular expressions and the `emoji` package, no torch).

    python export/run_with_onnxruntime.py models/NAME "what a great day at the beach" photo.jpg
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps
from tokenizers import Tokenizer


def load_folder(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    if digest != manifest["model_sha256"]:
        raise SystemExit(f"{folder / 'model.onnx'} does not match its manifest (sha256 {digest[:12]}...)")
    return manifest


def normalize(text: str, how: str) -> str:
    """The model's text normalization (manifest `text_normalization`, "none" when absent)."""
    if how == "none":
        return text
    try:
        from mmsa_cli.data.tweet_text import normalize_text
    except ImportError as exc:
        raise SystemExit(f"this model expects text_normalization {how!r}: install mmsa to rewrite "
                         f"the text as in training (mmsa_cli.data.tweet_text; {exc})")
    return normalize_text(text, how)


def encode_text(folder: Path, text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)  # [CLS] ... [SEP], at most max_length tokens
    tokenizer.no_padding()
    ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)        # [1, L]
    return ids, np.ones_like(ids)                                          # mask: all real tokens


def encode_image(path: Path, size: int, mean: list[float], std: list[float]) -> np.ndarray:
    """Exactly the training preprocessing: RGB (alpha over white), shorter side -> size
    (bilinear), centre crop size x size, /255, (x - mean) / std, CHW."""
    img = Image.open(path)
    if img.format == "JPEG":
        img.draft("RGB", (size, size))  # DCT-domain downscale, as training decodes
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = round((new_w - size) / 2), round((new_h - size) / 2)
    img = img.crop((left, top, left + size, top + size))
    arr = (np.asarray(img, dtype=np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))[None]             # [1, 3, S, S]


def main(folder: str, text: str, image: str) -> None:
    folder_path = Path(folder)
    m = load_folder(folder_path)
    ids, mask = encode_text(folder_path, normalize(text, m.get("text_normalization", "none")), m["max_length"])
    pixels = encode_image(Path(image), m["image_size"], m["image_mean"], m["image_std"])
    # onnxruntime-gpu lists CUDA even where it cannot load it (no GPU): ORT then logs an error
    # and falls back to the CPU, which the last column of the output shows.
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(folder_path / "model.onnx"), providers=providers)
    probs, _logits = session.run(["probs", "logits"], {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels})
    best = int(probs[0].argmax())
    print(f"{m['labels'][best]}  " + "  ".join(f"{label} {p:.3f}" for label, p in zip(m["labels"], probs[0]))
          + f"  ({session.get_providers()[0]})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
