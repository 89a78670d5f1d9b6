"""The training data, prepared once per run: tokens, checked images, frozen encoders' outputs,
then restricted to each split, and cut into batches of model inputs."""
from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import TrainConfig
from ..data import Example
from ..errors import DataError
from ..models import MultimodalModel
from .batches import (ImageDataset, loader_workers, ImageFeatures, TextBottoms, TextFeatures, cached_image_features, encode_images,
                      encode_text_bottoms, encode_texts, file_fingerprint, image_loader, pad_tokens, scan_images,
                      token_lists)
from .modality_dropout import Blanks, blank_encoded, blank_token_lists, blank_tokens, make_blanks

log = logging.getLogger(__name__)


def image_weights_id(pretrained: bool, image_weights: str | None) -> str:
    """Which image-encoder weights produced cached features (part of the feature-cache key)."""
    return f"pretrained={pretrained} image_weights={image_weights}"


@dataclass
class Prepared:
    """Data prepared once and shared by every fusion trained in one run."""
    examples: list[Example]
    labels: torch.Tensor                 # [N]
    tokens: list[list[int]]              # token ids per example, unpadded
    pad_id: int
    train_idx: list[int]                 # usable rows only (readable images)
    val_idx: list[int]
    images: ImageDataset
    features: ImageFeatures | None       # cached frozen image-encoder outputs, if any
    text_features: TextFeatures | None   # cached frozen text-encoder outputs, if any
    skipped: dict[int, str]              # example index -> image error
    blanks: Blanks                       # a missing image / text as scoring presents it (modality dropout)
    text_bottoms: TextBottoms | None = None  # cached hidden states of the text encoder's fixed bottom
    workers: int = 0                     # image-loader processes (--workers, auto resolved for the device)


def prepare(examples: list[Example], model: MultimodalModel, cfg: TrainConfig, device, keep_tokens: bool,
            weights_id: str = "") -> Prepared:
    """Tokenize, check every image and run the frozen encoders once; no split yet."""
    tok = model.text_encoder.tokenizer
    tokens = token_lists(tok, [e.text for e in examples], model.cfg.max_length,
                      normalization=model.cfg.text_normalization)
    enc = model.image_encoder
    workers = loader_workers(cfg.workers, device)
    images = ImageDataset([e.image_path for e in examples], model.inputs)
    features = text_features = None
    if cfg.freeze in ("image", "both") and not cfg.reencode_images:
        compute = lambda: encode_images(enc, images, batch_size=64, num_workers=workers,  # noqa: E731
                                        device=device, keep_tokens=keep_tokens)
        if cfg.feature_cache:
            key = [enc.name, weights_id, str(enc.image_size), *(file_fingerprint(e.image_path) for e in examples)]
            features = cached_image_features(cfg.feature_cache, key, keep_tokens, compute)
        else:
            features = compute()
        skipped = features.errors
    else:
        skipped = scan_images(images, num_workers=workers)
    if skipped:
        shown = "; ".join(f"{examples[i].guid}: {err}" for i, err in list(skipped.items())[:3])
        if cfg.strict:
            raise DataError(f"{len(skipped)} of {len(examples)} images cannot be used (--strict): {shown}")
        log.warning("skipping %d of %d rows whose image cannot be used (listed in skipped.csv): %s",
                    len(skipped), len(examples), shown)
    if cfg.freeze in ("text", "both"):
        text_features = encode_texts(model.text_encoder, tokens, tok.pad_token_id, batch_size=64, device=device,
                                     keep_tokens=keep_tokens)
    bottoms = None
    depth = model.text_encoder.fixed_depth(cfg.text_train_layers)
    if depth:  # --text-train-layers: the fixed layers' outputs, once for every fusion and fold of the run
        bottoms = encode_text_bottoms(model.text_encoder, tokens, tok.pad_token_id, depth, batch_size=64,
                                      device=device)
    blanks = make_blanks(model, device, text_cached=text_features is not None, image_cached=features is not None,
                         keep_tokens=keep_tokens, bottom_depth=bottoms.depth if bottoms else 0)
    return Prepared(examples, torch.tensor([e.label for e in examples]), tokens, tok.pad_token_id, [], [],
                    images, features, text_features, skipped, blanks, bottoms, workers)


def with_split(data: Prepared, train_idx: Sequence[int], val_idx: Sequence[int], cfg: TrainConfig) -> Prepared:
    """The prepared data restricted to one split's usable rows (readable images)."""
    if cfg.max_train_examples:
        train_idx = sorted(np.random.default_rng(cfg.seed).permutation(train_idx)[: cfg.max_train_examples].tolist())
    usable = lambda idx: [i for i in idx if i not in data.skipped]  # noqa: E731
    return dataclasses.replace(data, train_idx=usable(train_idx), val_idx=usable(val_idx))


def write_skipped(path: Path, data: Prepared) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["guid", "image", "error"])
        for i, err in sorted(data.skipped.items()):
            w.writerow([data.examples[i].guid, str(data.examples[i].image_path), err])


def batches(model: MultimodalModel, data: Prepared, idx: Sequence[int], batch_size: int, *, shuffle: bool,
            augment: bool, cfg: TrainConfig, epoch: int):
    """Yield (example indices, pixels or None) in batches."""
    order = list(idx)
    if shuffle:
        order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(cfg.seed + epoch))]
    if not model.uses_image or data.features is not None:
        for s in range(0, len(order), batch_size):
            yield torch.tensor(order[s: s + batch_size]), None
        return
    data.images.augment = augment
    data.images.set_epoch(epoch)
    for batch_idx, pixels, _ in image_loader(data.images, batch_size, data.workers, shuffle_indices=order):
        yield batch_idx, pixels


def batch_inputs(model: MultimodalModel, data: Prepared, idx: torch.Tensor, pixels, device,
                 dropped: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """A batch's model inputs on the device (forward_features' keyword arguments). dropped = (text, image) row masks: those rows get
    the empty text or the blank image instead of their own (modality dropout)."""
    tokens = [data.tokens[i] for i in idx.tolist()]
    if dropped is not None:
        tokens = blank_token_lists(tokens, dropped[0], data.blanks)
    ids, mask = pad_tokens(tokens, data.pad_id)
    ids, mask = ids.to(device), mask.to(device)
    cached = data.features.take(idx, device) if (data.features is not None and model.uses_image) else None
    cached_text = data.text_features.take(idx, device) if (data.text_features is not None and model.uses_text) else None
    bottom = data.text_bottoms.take(idx, device) if (data.text_bottoms is not None and model.uses_text) else None
    pix = pixels.to(device, non_blocking=True) if pixels is not None else None
    if dropped is not None:
        drop_text, drop_image = dropped
        if cached_text is not None:
            cached_text = blank_encoded(cached_text, drop_text, data.blanks.text_features, width=mask.shape[1])
        if bottom is not None:
            bottom = blank_tokens(bottom, drop_text, data.blanks.text_bottom, width=mask.shape[1])
        if cached is not None:
            cached = blank_encoded(cached, drop_image, data.blanks.image_features)
        if pix is not None:
            pix[drop_image.to(pix.device)] = 0.0                        # the normalised mean image
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "image_features": cached,
            "text_features": cached_text, "text_bottom": (data.text_bottoms.depth, bottom) if bottom is not None else None}
