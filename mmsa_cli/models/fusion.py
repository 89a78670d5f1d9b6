"""The paper's seven models as fusion stages, an ensemble of them, and the registry that
implements the fusion names of mmsa_cli/registry.py (which owns them, torch-free).

Every fusion takes the encoders' outputs and returns (logits [B,C], aux) where
softmax(logits) is the prediction and aux holds unimodal logits (for auxiliary losses).
Models that fuse probabilities (naive-combine, hstec, cmac) return log(mean of the two
classifiers' probabilities), so softmax(logits) is exactly the fused distribution; the
ensemble does the same over its members.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import FUSION_NAMES, PAPER_NAMES, bind
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

    @classmethod
    def needs_tokens(cls, cfg: ModelConfig) -> bool:
        """uses_tokens before any model exists (training decides from it what to cache)."""
        return cls.uses_tokens


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


class Ensemble(Fusion):
    """Several fusion stages over the same two encoders; their probabilities are averaged.

    One member per name in cfg.ensemble_members (any registered fusion except "ensemble";
    a name may repeat: members are initialised one after the other, so repeats differ),
    each built with the same text_dim / image_dim / cfg and kept in an nn.ModuleList, so
    state_dict keys are `members.<position>.*` and a run folder rebuilds from its config.
    The encoders run once, so the ensemble costs little more than its most expensive member.

    forward returns (log(mean of the members' probabilities), the members' logits): with
    `--aux-loss-weight 1` every member is also trained on its own cross-entropy, which is what
    makes it a real ensemble of models that are each good alone; with weight 0 only the
    average is trained and members are free to be individually poor (co-adapted heads).
    """

    def __init__(self, text_dim, image_dim, cfg):
        super().__init__(text_dim, image_dim, cfg)
        self.members = nn.ModuleList(FUSIONS[name](text_dim, image_dim, cfg) for name in ensemble_members(cfg))
        self.uses_text = any(m.uses_text for m in self.members)
        self.uses_image = any(m.uses_image for m in self.members)
        self.uses_tokens = any(m.uses_tokens for m in self.members)

    @classmethod
    def needs_tokens(cls, cfg: ModelConfig) -> bool:
        return any(FUSIONS[name].needs_tokens(cfg) for name in ensemble_members(cfg))

    def forward(self, f: Features):
        logits = tuple(member(f)[0] for member in self.members)
        return fuse_probabilities(*logits), logits


def ensemble_members(cfg: ModelConfig) -> tuple[str, ...]:
    """cfg.ensemble_members, checked: a non-empty list of registered fusions, no "ensemble"."""
    names = tuple(cfg.ensemble_members)
    valid = [name for name in FUSIONS if name != "ensemble"]
    bad = [name for name in names if name not in valid]
    if not names or bad:
        given = ",".join(names) or "(empty)"
        problem = (f"'{bad[0]}' cannot be nested" if "ensemble" in bad else
                   f"unknown member '{bad[0]}'" if bad else "no members")
        raise ConfigError(f"ensemble members '{given}': {problem}; valid members: {', '.join(valid)}")
    return names


# Implementations of the fusion names that mmsa_cli/registry.py owns (torch-free, for the CLI).
FUSIONS: dict[str, type[Fusion]] = bind(FUSION_NAMES, {
    "text-only": TextOnly,
    "image-only": ImageOnly,
    "naive-cat": NaiveCat,
    "naive-combine": NaiveCombine,
    "ote": OutputTransformerEncoder,
    "hstec": HiddenStateTransformerEncoderCombine,
    "cmac": CrossModalityAttentionCombine,
    "ensemble": Ensemble,
}, "fusion")


def report_name(fusion: str) -> str:
    """The paper's Table 4 name of a fusion, or its registry name for those outside the paper."""
    return PAPER_NAMES.get(fusion, fusion)


def fusion_class(name: str) -> type[Fusion]:
    try:
        return FUSIONS[name]
    except KeyError:
        raise ConfigError(f"unknown fusion '{name}'; valid names: {', '.join(FUSIONS)}") from None


def check_fusion_config(cfg: ModelConfig) -> type[Fusion]:
    """The fusion class of cfg, after checking every name it uses (before weights load)."""
    cls = fusion_class(cfg.fusion)
    if cls is Ensemble:
        ensemble_members(cfg)
    return cls
