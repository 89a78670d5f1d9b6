"""ModelBag: several trained models of one recipe averaged into one model (bagging).

The fold models of a `--folds K` run were each trained on a different (K-1)/K of the rows;
the mean of their probabilities has learned from every labelled row and is expected to do at
least as well as one of them (on MVSA-Single, three bagged models: +0.7 accuracy over one,
within the spread; benchmarks/results/README.md). `mmsa export --run RUN --fold all` turns a bag into one ONNX graph, so
`mmsa score` runs it like any other model.

The members must read the same inputs: one tokenizer, max length, text normalization, image
size and normalization. Members whose image encoders have identical weights (the frozen
pretrained encoder of `--freeze image` / `--freeze both` runs) share one, so each image is
encoded once; the text encoders were fine-tuned per fold, so each member runs its own.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .fusion import fuse_probabilities
from .model import MultimodalModel

# Member settings that decide what the model reads: they must agree across the bag.
SHARED_INPUT_SETTINGS = ("text_encoder", "image_encoder", "max_length", "text_normalization", "image_size",
                         "num_classes")


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class ModelBag(nn.Module):
    def __init__(self, members: Sequence[MultimodalModel]):
        super().__init__()
        if len(members) < 2:
            raise ConfigError(f"a model bag needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, m in enumerate(members[1:], 2):
            differ = [k for k in SHARED_INPUT_SETTINGS if getattr(m.cfg, k) != getattr(first.cfg, k)]
            if differ or m.text_encoder.tokenizer.get_vocab() != first.text_encoder.tokenizer.get_vocab():
                what = ", ".join(f"{k} {getattr(first.cfg, k)!r} vs {getattr(m.cfg, k)!r}" for k in differ) or "tokenizer"
                raise ConfigError(f"model bag member {i} reads other inputs than member 1: {what}")
        self.members = nn.ModuleList(members)
        self.shares_image_encoder = all(_same_weights(m.image_encoder, first.image_encoder) for m in members[1:])
        if self.shares_image_encoder:
            for m in members[1:]:
                m.image_encoder = first.image_encoder

    # What export and scoring ask of a model: the first member's settings stand for all.
    @property
    def cfg(self):
        return self.members[0].cfg

    @property
    def text_encoder(self):
        return self.members[0].text_encoder

    @property
    def image_encoder(self):
        return self.members[0].image_encoder

    @property
    def text_encoders(self) -> list[nn.Module]:
        return [m.text_encoder for m in self.members]

    @property
    def uses_text(self) -> bool:
        return any(m.uses_text for m in self.members)

    @property
    def uses_image(self) -> bool:
        return any(m.uses_image for m in self.members)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        image_features = None
        if self.shares_image_encoder and self.uses_image:
            image_features = self.image_encoder(pixel_values)      # [B,N,Hi], [B,Hi], once for all members
        logits = []
        for m in self.members:
            features = m.forward_features(input_ids, attention_mask, pixel_values,
                                          image_features=image_features if m.uses_image else None)
            logits.append(m.forward_head(features)[0])             # [B, C]
        return fuse_probabilities(*logits)                         # log(mean of probabilities) [B, C]
