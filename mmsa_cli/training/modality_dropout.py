"""Modality dropout: training rows made to look like the rows that scoring predicts with one
modality missing. An unreadable image is scored as the blank (mean) image and a null or empty
text as the empty text, [CLS] [SEP] (the policy in mmsa_cli/contract/rows.py). A model that
saw such rows in training gives those fallback predictions from what it learned, not from
inputs it never met."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

Encoded = tuple[torch.Tensor | None, torch.Tensor]  # (tokens [1, T, H] or None, pooled [1, H])


@dataclass
class Blanks:
    text_ids: list[int]                  # the empty text's token ids
    text_features: Encoded | None        # a frozen text encoder's output for it (when texts are cached)
    image_features: Encoded | None       # a frozen image encoder's output for the blank image (same)


@torch.no_grad()
def make_blanks(model, device, *, text_cached: bool, image_cached: bool, keep_tokens: bool) -> Blanks:
    """The missing-modality inputs, and the frozen encoders' outputs for them where training
    uses cached features instead of running those encoders."""
    ids = model.text_encoder.tokenizer("", return_token_type_ids=False)["input_ids"]
    text = image = None
    if text_cached:
        t = torch.tensor([ids], device=device)
        tokens, pooled = model.text_encoder.eval().to(device)(t, torch.ones_like(t))
        text = (tokens.float().cpu() if keep_tokens else None, pooled.float().cpu())
    if image_cached:
        size = model.image_encoder.image_size
        tokens, pooled = model.image_encoder.eval().to(device)(torch.zeros((1, 3, size, size), device=device))
        image = (tokens.float().cpu() if keep_tokens else None, pooled.float().cpu())
    return Blanks(ids, text, image)


def draw_dropped(rows: int, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, (text blanked, image blanked): with chance p a row loses one of the two, either
    with even odds, never both (a row without either gets no prediction when scored)."""
    dropped = torch.rand(rows, generator=generator) < p
    image_side = torch.rand(rows, generator=generator) < 0.5
    return dropped & ~image_side, dropped & image_side


def blank_token_lists(token_lists: Sequence[list[int]], drop_text: torch.Tensor, blanks: Blanks) -> list[list[int]]:
    return [blanks.text_ids if d else t for t, d in zip(token_lists, drop_text.tolist())]


def blank_encoded(encoded: Encoded, drop: torch.Tensor, blank: Encoded, width: int | None = None) -> Encoded:
    """Cached encoder outputs of a batch with the dropped rows replaced by the blank's. width
    trims text tokens to the batch's padded length, which blanking may have shortened."""
    tokens, pooled = encoded
    drop = drop.to(pooled.device)
    pooled[drop] = blank[1].to(pooled)
    if tokens is not None:
        tokens = tokens[:, :width] if width is not None else tokens
        blank_tokens = blank[0].to(tokens)[0]                     # [T, H]
        tokens[drop] = 0.0
        tokens[drop, : blank_tokens.shape[0]] = blank_tokens
    return tokens, pooled
