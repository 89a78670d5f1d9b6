"""From examples to tensors: image datasets, dynamic-padding collation and the frozen
image-feature cache. Preprocessing here is the same function export and scoring use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..progress import progress
from ..contract.geometry import preprocess_image
from ..data.images import ImageLoadError, load_image, train_augment
from ..contract.inputs import ModelInputs
from ..contract.tokenizer import BatchTokenizer


class ImageDataset(Dataset):
    """index -> (index, pixels [3,S,S] float32, error or ""). A bad image yields zeros
    (the normalised mean image) and its error, so one bad file never stops a batch."""

    def __init__(self, paths: Sequence[Path], inputs: ModelInputs, *, augment: bool = False, seed: int = 0):
        self.paths, self.size, self.mean, self.std = list(paths), inputs.image_size, inputs.image_mean, inputs.image_std
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # new augmentation draws every epoch, reproducible from the seed

    def __getitem__(self, i: int):
        try:
            img = load_image(self.paths[i], draft_size=self.size)
        except ImageLoadError as exc:
            return i, np.zeros((3, self.size, self.size), np.float32), f"{exc.kind}: {exc}"
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            return i, train_augment(img, self.size, self.mean, self.std, rng), ""
        return i, preprocess_image(img, self.size, self.mean, self.std), ""


def collate_images(items):
    idx, pixels, errors = zip(*items)
    return torch.tensor(idx), torch.from_numpy(np.stack(pixels)), list(errors)


def loader_workers(requested: int, device) -> int:
    """--workers -1 (auto): none on the CPU, where the cores are the model's; on CUDA one per core
    but two, at most 8. With none, the H200 trained BERT-base + ResNet-50 at 28-86 rows/s, the GPU
    starved by decoding in the main process (benchmarks/results/score_gpu_dali.md, train.log)."""
    if requested >= 0:
        return requested
    return min(8, max(1, (os.cpu_count() or 2) - 2)) if torch.device(device).type == "cuda" else 0


def image_loader(dataset: Dataset, batch_size: int, num_workers: int, shuffle_indices: Sequence[int] | None = None):
    sampler = list(shuffle_indices) if shuffle_indices is not None else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_images, persistent_workers=False)


def pad_tokens(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence of the batch (not max_length): shorter batches, faster steps."""
    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask                                                   # [B, L], [B, L]


def token_lists(tokenizer, texts: Sequence[str], max_length: int, *, normalization: str) -> list[list[int]]:
    """Token ids of each text, unpadded, from the one tokenizer call scoring makes too
    (contract/tokenizer.py BatchTokenizer: the model's text normalization, truncation to
    max_length); training pads each batch to its longest text (pad_tokens)."""
    ids, mask = BatchTokenizer(tokenizer, max_length, normalization)(list(texts))
    return [row[: int(n)].tolist() for row, n in zip(ids, mask.sum(1))]


@dataclass
class ImageFeatures:
    """Outputs of a frozen image encoder for every example, kept in memory."""
    pooled: torch.Tensor                # [N, C] float32
    tokens: torch.Tensor | None         # [N, T, C] float16 (only when a fusion needs tokens)
    errors: dict[int, str]              # example index -> why its image could not be used

    def take(self, idx: torch.Tensor, device) -> tuple[torch.Tensor | None, torch.Tensor]:
        tokens = self.tokens[idx].to(device, torch.float32) if self.tokens is not None else None
        return tokens, self.pooled[idx].to(device)


@torch.no_grad()
def encode_images(encoder, dataset: ImageDataset, *, batch_size: int, num_workers: int, device,
                  keep_tokens: bool, desc: str = "encoding images") -> ImageFeatures:
    encoder.eval().to(device)
    pooled, tokens, errors = None, None, {}
    for idx, pixels, errs in progress(image_loader(dataset, batch_size, num_workers), desc=desc, unit="batch"):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            tok, pool = encoder(pixels.to(device))
        if pooled is None:
            pooled = torch.zeros((len(dataset), pool.shape[1]), dtype=torch.float32)
            if keep_tokens:
                tokens = torch.zeros((len(dataset), tok.shape[1], tok.shape[2]), dtype=torch.float16)
        pooled[idx] = pool.float().cpu()
        if keep_tokens:
            tokens[idx] = tok.to(torch.float16).cpu()
        errors.update({int(i): e for i, e in zip(idx, errs) if e})
    return ImageFeatures(pooled, tokens, errors)


@dataclass
class TextFeatures:
    """Outputs of a frozen text encoder for every example, padded to the longest text."""
    tokens: torch.Tensor | None         # [N, L, H] float16 (only when a fusion needs tokens)
    pooled: torch.Tensor                # [N, H] float32
    lengths: torch.Tensor               # [N] real tokens per example

    def take(self, idx: torch.Tensor, device) -> tuple[torch.Tensor | None, torch.Tensor]:
        width = int(self.lengths[idx].max())  # same trim as pad_tokens gives the batch's mask
        tokens = self.tokens[idx, :width].to(device, torch.float32) if self.tokens is not None else None
        return tokens, self.pooled[idx].to(device)


@torch.no_grad()
def encode_texts(encoder, tokens: Sequence[Sequence[int]], pad_id: int, *, batch_size: int, device,
                 keep_tokens: bool, desc: str = "encoding texts") -> TextFeatures:
    encoder.eval().to(device)
    n, width = len(tokens), max(len(t) for t in tokens)
    pooled = torch.zeros((n, encoder.hidden_size), dtype=torch.float32)
    hidden = torch.zeros((n, width, encoder.hidden_size), dtype=torch.float16) if keep_tokens else None
    for s in progress(range(0, n, batch_size), desc=desc, unit="batch"):
        ids, mask = pad_tokens(tokens[s: s + batch_size], pad_id)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            tok, pool = encoder(ids.to(device), mask.to(device))
        pooled[s: s + len(ids)] = pool.float().cpu()
        if keep_tokens:
            hidden[s: s + len(ids), : tok.shape[1]] = tok.to(torch.float16).cpu()
    return TextFeatures(hidden, pooled, torch.tensor([len(t) for t in tokens]))


@dataclass
class TextBottoms:
    """The hidden states after a text encoder's fixed bottom (--text-train-layers: the
    embeddings and the layers below the trained ones) for every example, padded to the longest
    text: they never change in training, so each epoch runs only the layers above."""
    depth: int                          # layers below the trained ones
    hidden: torch.Tensor                # [N, L, H] float16
    lengths: torch.Tensor               # [N] real tokens per example

    def take(self, idx: torch.Tensor, device) -> torch.Tensor:
        width = int(self.lengths[idx].max())  # same trim as pad_tokens gives the batch's mask
        return self.hidden[idx, :width].to(device, torch.float32)


@torch.no_grad()
def encode_text_bottoms(encoder, tokens: Sequence[Sequence[int]], pad_id: int, depth: int, *, batch_size: int,
                        device, desc: str = "encoding fixed text layers") -> TextBottoms:
    encoder.eval().to(device)
    lengths = torch.tensor([len(t) for t in tokens])
    hidden = torch.zeros((len(tokens), int(lengths.max()), encoder.hidden_size), dtype=torch.float16)
    order = torch.argsort(lengths)  # batches of similar lengths: little padding to compute
    for s in progress(range(0, len(tokens), batch_size), desc=desc, unit="batch"):
        idx = order[s: s + batch_size]
        ids, mask = pad_tokens([tokens[i] for i in idx.tolist()], pad_id)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            states = encoder.bottom(ids.to(device), mask.to(device), depth)
        hidden[idx, : states.shape[1]] = states.to(torch.float16).cpu()
    return TextBottoms(depth, hidden, lengths)


def cached_image_features(cache_dir: str | Path, key_parts: Sequence[str], keep_tokens: bool, compute) -> ImageFeatures:
    """Image features from a cache file keyed by encoder, weights and every file's size and
    content, or computed and saved there: a frozen encoder gives the same features every run.
    A file with token features also serves runs that need only pooled ones."""
    import hashlib

    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:24]
    path = folder / f"image-features-{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("tokens") is not None or not keep_tokens:
            tokens = saved.get("tokens") if keep_tokens else None
            return ImageFeatures(saved["pooled"], tokens, {int(k): v for k, v in saved["errors"].items()})
    feats = compute()
    tmp = path.with_suffix(".tmp")
    torch.save({"pooled": feats.pooled, "tokens": feats.tokens, "errors": {str(k): v for k, v in feats.errors.items()}}, tmp)
    tmp.replace(path)
    return feats


def file_fingerprint(path: Path) -> str:
    """Size and content hash, not path or mtime: the same images give the same key however the
    folder is named and after a copy or re-mount resets every mtime (MVSA's 4,000 JPEGs: ~1 s)."""
    import hashlib

    try:
        data = Path(path).read_bytes()
    except OSError:
        return "absent"
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=16).hexdigest()}"


def scan_images(dataset: ImageDataset, *, num_workers: int, desc: str = "checking images") -> dict[int, str]:
    """Decode every image once to find the unreadable ones before training starts."""
    errors: dict[int, str] = {}
    for idx, _, errs in progress(image_loader(dataset, 32, num_workers), desc=desc, unit="batch"):
        errors.update({int(i): e for i, e in zip(idx, errs) if e})
    return errors
