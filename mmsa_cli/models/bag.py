"""ModelBag: several trained models averaged into one model (bagging).

The fold models of a `--folds K` run were each trained on a different (K-1)/K of the rows;
the mean of their probabilities has learned from every labelled row and is expected to do at
least as well as one of them (on MVSA-Single, three bagged models: +0.7 accuracy over one,
within the spread; benchmarks/results/README.md). Models of different runs can be bagged too,
also with other text encoders (a fine-tuned MiniLM-L6 run and a frozen all-mpnet-base-v2 run:
+0.5 accuracy over the first alone). `mmsa export --run RUN [--run RUN2] --fold all` turns a bag
into one ONNX graph, so `mmsa score` runs it like any other model.

The members must read the same inputs: max length, text normalization, image size and
normalization, and text split into the same word pieces. The bag reads the first member's
token ids; a member whose tokenizer gives the same pieces other ids (all-mpnet-base-v2's
vocabulary is bert-base-uncased's shifted by 4, with its own special tokens) gets them through
a lookup table in the graph. Members whose encoders have identical weights (frozen pretrained
ones: `--freeze image`, `--freeze both`) share one, so each image and text is encoded once
per distinct encoder; fine-tuned text encoders differ per fold, and each runs. Encoders
fine-tuned above one depth from the same pretrained model (`--text-train-layers`, beside a
frozen run of that model) share the identical bottom: it runs once, then each encoder's top.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .fusion import fuse_probabilities
from ..contract.inputs import ModelInputs
from .model import MultimodalModel, inputs_of
from .text_encoders import TextEncoder, TextSlice, same_weights

# Member settings that decide what the model reads: they must agree across the bag.
SHARED_INPUT_SETTINGS = ("image_encoder", "max_length", "text_normalization", "image_size", "num_classes")
SPECIAL_ROLES = ("cls", "sep", "pad", "unk", "mask")


def _splitting(tokenizer) -> dict:
    """What decides how a fast tokenizer cuts text into pieces (not which ids they get)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = {k: v for k, v in spec["model"].items() if k != "vocab"}
    return {"normalizer": spec["normalizer"], "pre_tokenizer": spec["pre_tokenizer"], "model": model}


def token_id_map(source, target) -> torch.Tensor | None:
    """For each id of `source`, the id `target` gives the same piece ([N] int64), or None
    when the two tokenizers give the same ids. Special tokens map by role ([CLS] -> <s>).
    A ConfigError when they would cut text into other pieces."""
    if source is target:
        return None
    src, tgt = source.get_vocab(), target.get_vocab()
    same_ids = src == tgt and all(getattr(source, f"{r}_token_id") == getattr(target, f"{r}_token_id")
                                  for r in SPECIAL_ROLES)
    if not (getattr(source, "is_fast", False) and getattr(target, "is_fast", False)):
        if same_ids and type(source) is type(target):
            return None  # one slow tokenizer, loaded twice
        raise ConfigError(f"cannot compare the slow tokenizers {type(source).__name__} and {type(target).__name__}: "
                          f"bag only members with one tokenizer")
    if _splitting(source) != _splitting(target):
        raise ConfigError(f"the tokenizers {type(source).__name__} and {type(target).__name__} cut text into "
                          f"other pieces (normalizer, pre-tokenizer or word-piece settings differ)")
    if same_ids:
        return None
    specials = set(source.all_special_tokens)
    missing = [t for t in src if t not in specials and t not in tgt]
    if missing:
        raise ConfigError(f"{len(missing)} word pieces of {type(source).__name__} are not in "
                          f"{type(target).__name__}'s vocabulary (e.g. {missing[0]!r})")
    table = torch.full((max(src.values()) + 1,), target.unk_token_id, dtype=torch.long)
    for token, i in src.items():
        if token not in specials:
            table[i] = tgt[token]
    for role in SPECIAL_ROLES:
        i, j = getattr(source, f"{role}_token_id"), getattr(target, f"{role}_token_id")
        if i is not None and j is not None:
            table[i] = j
    return table


class ModelBag(nn.Module):
    def __init__(self, members: Sequence[MultimodalModel]):
        super().__init__()
        if len(members) < 2:
            raise ConfigError(f"a model bag needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, m in enumerate(members[1:], 2):
            differ = [k for k in SHARED_INPUT_SETTINGS if getattr(m.cfg, k) != getattr(first.cfg, k)]
            if differ:
                what = ", ".join(f"{k} {getattr(first.cfg, k)!r} vs {getattr(m.cfg, k)!r}" for k in differ)
                raise ConfigError(f"model bag member {i} reads other inputs than member 1: {what}")
        self.members = nn.ModuleList(members)
        self.shares_image_encoder = all(same_weights(m.image_encoder, first.image_encoder) for m in members[1:])
        if self.shares_image_encoder:
            for m in members[1:]:
                m.image_encoder = first.image_encoder
        distinct: list[TextEncoder] = []
        for m in members:  # identical (frozen) text encoders: one module, run once
            same = next((e for e in distinct if e is m.text_encoder or same_weights(e, m.text_encoder)), None)
            if same is None:
                distinct.append(m.text_encoder)
            else:
                m.text_encoder = same
        self.distinct_text_encoders = distinct
        # The lookup table of each member whose tokenizer numbers the pieces otherwise, as a
        # buffer (a constant Gather in the graph); "" where the first member's ids serve.
        self.id_maps: list[str] = []
        for k, m in enumerate(members):
            table = token_id_map(first.text_encoder.tokenizer, m.text_encoder.tokenizer)
            name = "" if table is None else f"token_ids_of_member_{k}"
            if table is not None:
                self.register_buffer(name, table, persistent=False)
            self.id_maps.append(name)
        # Distinct encoders fine-tuned above a fixed depth from one pretrained model (a
        # --text-train-layers run, and a frozen run of that model) have an identical bottom: the
        # graph runs it once, for the first of them (the owner), then each encoder's own top.
        groups: list[tuple[TextEncoder, list[tuple[TextEncoder, int]]]] = []  # owner, [(encoder, shared depth)]
        for e in distinct:
            for owner, others in groups:
                depth = e.shared_depth(owner) if token_id_map(owner.tokenizer, e.tokenizer) is None else 0
                if depth:
                    others.append((e, depth))
                    break
            else:
                groups.append((e, []))
        slice_of: dict[int, TextSlice] = {}
        for owner, others in groups:
            depth = min((d for _, d in others), default=0)
            slice_of[id(owner)] = TextSlice(owner, owner, depth)
            for e, _ in others:
                e.tie_trunk(owner, depth)
                slice_of[id(e)] = TextSlice(e, owner, depth)
        self.text_slices = [slice_of[id(m.text_encoder)] for m in members]   # per member

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
    def inputs(self) -> ModelInputs:
        return inputs_of(self)

    @property
    def text_encoder_name(self) -> str:
        """The members' text encoders, e.g. 'minilm-l6 + DIR/all-mpnet-base-v2' (the manifest's)."""
        return " + ".join(dict.fromkeys(m.cfg.text_encoder for m in self.members))

    @property
    def text_encoders(self) -> list[TextEncoder]:
        """The distinct text encoders: the ones the graph runs."""
        return list(self.distinct_text_encoders)

    @property
    def text_encoder_slices(self) -> list[TextSlice]:
        """What the graph runs of each distinct encoder."""
        return list({id(s.encoder): s for s in self.text_slices}.values())

    @property
    def remapped_text_encoders(self) -> list[TextEncoder]:
        """The text encoders that read token ids looked up from the graph's."""
        return [m.text_encoder for m, id_map in zip(self.members, self.id_maps) if id_map]

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
        text_features: dict[int, tuple] = {}                      # per distinct text encoder, run once
        bottoms: dict[int, torch.Tensor] = {}                      # per owner of a shared bottom, run once
        logits = []
        for m, id_map, s in zip(self.members, self.id_maps, self.text_slices):
            ids = getattr(self, id_map)[input_ids] if id_map else input_ids   # [B,L] in the member's vocabulary
            encoded = None
            if m.uses_text:
                key = id(m.text_encoder)
                if key not in text_features:
                    bottom = None
                    if s.split_at:
                        if id(s.owner) not in bottoms:
                            bottoms[id(s.owner)] = s.owner.bottom(ids, attention_mask, s.split_at)   # [B,L,H]
                        bottom = (s.split_at, bottoms[id(s.owner)])
                    text_features[key] = m.encode_text(ids, attention_mask, bottom)
                encoded = text_features[key]
            features = m.forward_features(ids, attention_mask, pixel_values, text_features=encoded,
                                          image_features=image_features if m.uses_image else None)
            logits.append(m.forward_head(features)[0])             # [B, C]
        return fuse_probabilities(*logits)                         # log(mean of probabilities) [B, C]
