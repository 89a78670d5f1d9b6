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
    text_bottom: torch.Tensor | None = None  # [1, T, H] its fixed bottom's (when those are cached)


@torch.no_grad()
def make_blanks(model, device, *, text_cached: bool, image_cached: bool, keep_tokens: bool,
                bottom_depth: int = 0) -> Blanks:
    """The missing-modality inputs, and the frozen encoders' outputs for them where training
    uses cached features instead of running those encoders (bottom_depth: the text encoder's
    fixed bottom, when its hidden states are cached)."""
    ids = model.text_encoder.tokenizer("", return_token_type_ids=False)["input_ids"]
    text = image = bottom = None
    t = torch.tensor([ids], device=device)
    if text_cached:
        tokens, pooled = model.text_encoder.eval().to(device)(t, torch.ones_like(t))
        text = (tokens.float().cpu() if keep_tokens else None, pooled.float().cpu())
    if bottom_depth:
        bottom = model.text_encoder.eval().to(device).bottom(t, torch.ones_like(t), bottom_depth).float().cpu()
    if image_cached:
        size = model.image_encoder.image_size
        tokens, pooled = model.image_encoder.eval().to(device)(torch.zeros((1, 3, size, size), device=device))
        image = (tokens.float().cpu() if keep_tokens else None, pooled.float().cpu())
    return Blanks(ids, text, image, bottom)


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
        tokens = blank_tokens(tokens, drop, blank[0], width)
    return tokens, pooled


def blank_tokens(tokens: torch.Tensor, drop: torch.Tensor, blank: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Per-token states of a batch [B, L, H] with the dropped rows replaced by the blank's [1, T, H]."""
    tokens = tokens[:, :width] if width is not None else tokens
    drop = drop.to(tokens.device)
    blank = blank.to(tokens)[0]                                   # [T, H]
    tokens[drop] = 0.0
    tokens[drop, : blank.shape[0]] = blank
    return tokens
