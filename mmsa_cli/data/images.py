"""Training's image augmentation. Reading, decoding and the geometry every stage shares are the
contract's (mmsa_cli/contract/images.py, geometry.py); their names stay importable from here."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..contract.geometry import preprocess_image  # noqa: F401  (the one geometry, for data's users)
from ..contract.images import (IMAGE_ERROR_KINDS, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS,  # noqa: F401  (re-exported)
                               ImageLoadError, load_image, read_image_bytes, resolve_image_path, to_rgb)


def train_augment(
    img: Image.Image,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Random resized crop (area 0.6-1.0, aspect 0.8-1.25), h-flip, brightness/contrast/saturation jitter."""
    if img.mode != "RGB":
        img = to_rgb(img)
    w, h = img.size
    box = None
    for _ in range(10):
        area = w * h * rng.uniform(0.6, 1.0)
        aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            box = (x, y, x + cw, y + ch)
            break
    if box is None:  # tiny or extreme-aspect images: largest centred square
        side = min(w, h)
        x, y = (w - side) // 2, (h - side) // 2
        box = (x, y, x + side, y + side)
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    arr = np.asarray(img, dtype=np.float32) / 255.0
    brightness, contrast, saturation = rng.uniform(0.8, 1.2, size=3)
    arr = arr * brightness
    arr = (arr - arr.mean()) * contrast + arr.mean()
    grey = arr @ np.array([0.299, 0.587, 0.114], np.float32)
    arr = (arr - grey[..., None]) * saturation + grey[..., None]
    arr = np.clip(arr, 0.0, 1.0)
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
