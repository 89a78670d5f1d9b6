"""Typed configs. Both are saved in every run folder (config.json) so a run rebuilds alone."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class ModelConfig:
    fusion: str = "ote"                      # a name from mmsa_cli.models.FUSIONS
    text_encoder: str = "minilm-l6"          # preset name or a local Hugging Face model dir
    image_encoder: str = "efficientnet-lite2"  # preset name
    image_size: int = 0                      # S: images resized and centre-cropped to S x S; 0 = the preset's (Lite2: 260)
    fusion_dim: int = 64                     # width d both modalities are projected to (reference: 64)
    num_heads: int = 4                       # attention heads in the fusion layers (ote, hstec, cmac)
    num_layers: int = 1                      # transformer layers in ote / hstec
    dropout: float = 0.1
    max_length: int = 64                     # tokens per tweet; longer texts are truncated
    num_classes: int = 3
    text_pooling: str = ""                   # "", "cls", "pooler" or "mean"; "" = the preset's choice
    text_normalization: str = "none"         # "none" or "tweet" (URLs, @mentions, hashtags, emoji as words)
    # Fusions averaged by the "ensemble" fusion (one graph, probabilities averaged inside it).
    ensemble_members: tuple[str, ...] = ("naive-cat", "naive-combine", "ote", "hstec", "cmac")

    def __post_init__(self):
        self.ensemble_members = tuple(self.ensemble_members)  # JSON gives a list


@dataclass
class TrainConfig:
    epochs: int = 20                 # the paper's maximum; early stopping usually ends sooner
    batch_size: int = 16             # the paper's
    encoder_lr: float = 3e-5         # the paper's learning rate, for the (unfrozen) encoders
    head_lr: float = 5e-4            # fusion layers and classifiers start from scratch: learn faster
    weight_decay: float = 0.01
    layer_lr_decay: float = 1.0      # <1: each encoder layer (image stage) below the top learns this much slower
    warmup_ratio: float = 0.1        # linear warmup, then linear decay
    patience: int = 3                # epochs without validation-accuracy gain before stopping
    freeze: str = "image"            # "none", "text", "image" or "both": which encoders stay fixed
    image_train_stages: int = 0      # a trained image encoder: only its last N trunk stages learn (0 = all)
    cache_image_features: bool = True  # with a frozen image encoder, encode each image once
    feature_cache: str = ""          # folder keeping frozen image features across runs ("" = memory only)
    label_smoothing: float = 0.0
    ema_decay: float = 0.0           # >0: validate and save an exponential moving average of the weights (e.g. 0.998)
    rdrop_alpha: float = 0.0         # >0: R-Drop, each batch runs twice and alpha x the symmetric KL of the two is added
    modality_dropout: float = 0.0    # chance a training row's image or text is blanked as scoring blanks a missing one
    aux_loss_weight: float = 0.0     # weight of the unimodal / ensemble-member losses added to the main loss
    class_weighting: str = "none"    # "none" or "balanced": loss weights n / (classes * count) per class
    val_fraction: float = 0.2        # 3,200 / 800 on MVSA-Single's 4,000 labelled tweets
    folds: int = 0                   # >1: stratified k-fold cross-validation instead of one split
    fold: int = 0                    # with folds: train only this fold (1-based; 0 = all), e.g. one per machine
    seed: int = 42
    device: str = "auto"             # "auto", "cpu" or "cuda"
    num_workers: int = 0             # DataLoader workers for image decoding
    strict: bool = False             # fail on the first unreadable image instead of skipping it
    max_train_examples: int = 0      # 0 = all; a cap for quick smoke runs


FREEZE_CHOICES = ("none", "text", "image", "both")
TEXT_NORMALIZATIONS = ("none", "tweet")
# `mmsa train --recipe NAME`: values for the options not given on the command line (keys are
# the option names). "best" is the winner of the 5-fold CV comparison of issue 5
# (benchmarks/results/README.md); "paper" is the plain defaults.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "best": {"fusion": "ensemble", "freeze": "image", "aux_loss_weight": 1.0, "text_normalization": "tweet",
             "modality_dropout": 0.2, "epochs": 5, "patience": 2},
}
CLASS_WEIGHTINGS = ("none", "balanced")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]):
    """Build a config from a dict, refusing unknown keys (a typo must not pass silently)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
    return cls(**data)


def save_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
