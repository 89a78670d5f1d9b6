"""The paper's seven models as fusion stages, and the one registry that names them.

Every fusion takes the encoders' outputs and returns (logits [B,C], aux) where
softmax(logits) is the prediction and aux holds unimodal logits (for auxiliary losses).
Models that fuse probabilities (naive-combine, hstec, cmac) return log(mean of the two
classifiers' probabilities), so softmax(logits) is exactly the fused distribution.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .layers import MultiHeadAttention, TransformerEncoder, classifier, masked_mean, projection


class Features(NamedTuple):
    text_tokens: torch.Tensor | None   # [B, L, Ht]
    text_mask: torch.Tensor | None     # [B, L], 1 = real token
    text_pooled: torch.Tensor | None   # [B, Ht]
    image_tokens: torch.Tensor | None  # [B, N, Hi]
    image_pooled: torch.Tensor | None  # [B, Hi]


def fuse_probabilities(*logits: torch.Tensor) -> torch.Tensor:
    """Sum the classifiers' probabilities, normalise, and return them as log-probabilities."""
    probs = torch.stack([l.softmax(-1) for l in logits]).mean(0)
    return probs.clamp_min(1e-12).log()


class Fusion(nn.Module):
    uses_text = True
    uses_image = True
    uses_tokens = False  # needs token-level features, not just pooled vectors

    def __init__(self, text_dim: int, image_dim: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg


class SingleModality(Fusion):
    """The unimodal baselines: one modality's pooled vector -> projection -> classifier."""

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.proj = projection(text_dim if self.uses_text else image_dim, d, cfg.dropout)
        self.head = classifier(d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        return self.head(self.proj(f.text_pooled if self.uses_text else f.image_pooled)), ()


class TextOnly(SingleModality):
    uses_image = False


class ImageOnly(SingleModality):
    uses_text = False


class NaiveCat(Fusion):
    """concat(text, image) -> MLP."""

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.text_proj = projection(text_dim, d, cfg.dropout)
        self.image_proj = projection(image_dim, d, cfg.dropout)
        self.head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        fused = torch.cat([self.text_proj(f.text_pooled), self.image_proj(f.image_pooled)], dim=-1)  # [B,2d]
        return self.head(fused), ()


class NaiveCombine(Fusion):
    """Separate text and image classifiers; their probabilities are averaged."""

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.text_proj = projection(text_dim, d, cfg.dropout)
        self.image_proj = projection(image_dim, d, cfg.dropout)
        self.text_head = classifier(d, d, cfg.num_classes, cfg.dropout)
        self.image_head = classifier(d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        t = self.text_head(self.text_proj(f.text_pooled))
        i = self.image_head(self.image_proj(f.image_pooled))
        return fuse_probabilities(t, i), (t, i)


class OutputTransformerEncoder(Fusion):
    """OTE. The reference feeds one concatenated vector as a length-1 sequence, where
    attention is the identity; here text and image are two tokens (plus a learned
    modality embedding) so each can attend to the other, then both outputs are
    concatenated and classified."""

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.text_proj = projection(text_dim, d, cfg.dropout)
        self.image_proj = projection(image_dim, d, cfg.dropout)
        self.modality = nn.Parameter(torch.zeros(2, d))
        self.encoder = TransformerEncoder(d, cfg.num_heads, cfg.num_layers, cfg.dropout)
        self.head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        tokens = torch.stack([self.text_proj(f.text_pooled), self.image_proj(f.image_pooled)], dim=1)  # [B,2,d]
        out = self.encoder(tokens + self.modality)                                                     # [B,2,d]
        return self.head(out.flatten(1)), ()


class HiddenStateTransformerEncoderCombine(Fusion):
    """HSTEC: text hidden states and image feature-map tokens in one sequence through a
    transformer encoder (padding masked), mean-pooled over real tokens, appended to each
    modality's pooled vector; two classifiers whose probabilities are fused."""

    uses_tokens = True

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.text_proj = projection(text_dim, d, cfg.dropout)
        self.image_proj = projection(image_dim, d, cfg.dropout)
        self.text_token_proj = nn.Linear(text_dim, d)
        self.image_token_proj = nn.Linear(image_dim, d)
        self.modality = nn.Parameter(torch.zeros(2, d))
        self.encoder = TransformerEncoder(d, cfg.num_heads, cfg.num_layers, cfg.dropout)
        self.text_head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)
        self.image_head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        text_tok = self.text_token_proj(f.text_tokens) + self.modality[0]                 # [B,L,d]
        image_tok = self.image_token_proj(f.image_tokens) + self.modality[1]              # [B,N,d]
        seq = torch.cat([text_tok, image_tok], dim=1)                                     # [B,L+N,d]
        mask = torch.cat([f.text_mask, torch.ones_like(image_tok[..., 0])], dim=1)        # [B,L+N]
        joint = masked_mean(self.encoder(seq, mask), mask)                                # [B,d]
        t = self.text_head(torch.cat([self.text_proj(f.text_pooled), joint], dim=-1))
        i = self.image_head(torch.cat([self.image_proj(f.image_pooled), joint], dim=-1))
        return fuse_probabilities(t, i), (t, i)


class CrossModalityAttentionCombine(Fusion):
    """CMAC: image tokens attend to text tokens and text tokens to image tokens (padding
    masked). Each result, a summary of the attended modality, is averaged over its query
    tokens and appended to the other modality's pooled vector, so both classifiers see
    both modalities; their probabilities are fused."""

    uses_tokens = True

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        d = cfg.fusion_dim
        self.text_proj = projection(text_dim, d, cfg.dropout)
        self.image_proj = projection(image_dim, d, cfg.dropout)
        self.text_token_proj = nn.Linear(text_dim, d)
        self.image_token_proj = nn.Linear(image_dim, d)
        self.image_to_text = MultiHeadAttention(d, cfg.num_heads, cfg.dropout)
        self.text_to_image = MultiHeadAttention(d, cfg.num_heads, cfg.dropout)
        self.text_head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)
        self.image_head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward(self, f: Features):
        text_tok = self.text_token_proj(f.text_tokens)                                    # [B,L,d]
        image_tok = self.image_token_proj(f.image_tokens)                                 # [B,N,d]
        image_reads_text = self.image_to_text(image_tok, text_tok, f.text_mask).mean(1)   # [B,d]
        text_reads_image = masked_mean(self.text_to_image(text_tok, image_tok), f.text_mask)  # [B,d]
        t = self.text_head(torch.cat([self.text_proj(f.text_pooled), text_reads_image], dim=-1))
        i = self.image_head(torch.cat([self.image_proj(f.image_pooled), image_reads_text], dim=-1))
        return fuse_probabilities(t, i), (t, i)


FUSIONS: dict[str, type[Fusion]] = {
    "text-only": TextOnly,
    "image-only": ImageOnly,
    "naive-cat": NaiveCat,
    "naive-combine": NaiveCombine,
    "ote": OutputTransformerEncoder,
    "hstec": HiddenStateTransformerEncoderCombine,
    "cmac": CrossModalityAttentionCombine,
}
# The paper's Table 4 names, for reports.
PAPER_NAMES = {"text-only": "BERT", "image-only": "ResNet", "naive-cat": "NaiveCat",
               "naive-combine": "NaiveCombine", "ote": "OTE", "hstec": "HSTEC", "cmac": "CMAC"}


def fusion_class(name: str) -> type[Fusion]:
    try:
        return FUSIONS[name]
    except KeyError:
        raise ConfigError(f"unknown fusion '{name}'; valid names: {', '.join(FUSIONS)}") from None
