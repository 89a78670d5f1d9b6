"""Image geometry: how a decoded image becomes the model's pixel input, for training,
export's parity rows, `mmsa score` (CPU and GPU paths) and evaluate/predict alike.

    shorter side -> S (PIL bilinear, antialiased; JPEGs first DCT-downscaled by `draft`)
    centre crop S x S (torchvision's rounding)
    uint8 [S,S,3] -> float32 [3,S,S]: x / 255, (x - mean) / std

The sizes come from plan_resize() alone, so the GPU resize (mmsa_cli/scoring/images/gpu.py),
which reproduces the same arithmetic with matrices, cannot drift from the CPU one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image


def draft_factor(w: int, h: int, size: int) -> int:
    """The DCT scale PIL's img.draft("RGB", (size, size)) picks for a JPEG (1, 2, 4 or 8)."""
    scale = min(w // size, h // size)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def plan_resize(w: int, h: int, size: int, draft: bool = False) -> tuple[int, int, int, int, int, int, int]:
    """(k, reduced_w, reduced_h, new_w, new_h, left, top) for a w x h image: the draft factor k
    (draft=True: a JPEG not yet drafted), the size after drafting, after the resize, and the
    crop's corner. round() is Python's (banker's) rounding, as torchvision's centre crop."""
    k = draft_factor(w, h, size) if draft else 1
    rw, rh = -(-w // k), -(-h // k)
    scale = size / min(rw, rh)
    new_w, new_h = max(size, round(rw * scale)), max(size, round(rh * scale))
    return k, rw, rh, new_w, new_h, round((new_w - size) / 2), round((new_h - size) / 2)


def resize_crop(img: Image.Image, size: int) -> np.ndarray:
    """An RGB image (already drafted, see load_image's draft_size) -> uint8 [S,S,3]."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    _, w, h, new_w, new_h, left, top = plan_resize(*img.size, size)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(img.crop((left, top, left + size, top + size)))


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [n,S,S,3] -> float32 [n,3,S,S]. The all-zero result is the mean image, the input
    every backend gets for a row whose image is unusable."""
    arr = pixels.astype(np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def preprocess_image(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """One RGB image -> float32 [3,S,S], the model's pixel input."""
    return normalise(resize_crop(img, size)[None], mean, std)[0]
