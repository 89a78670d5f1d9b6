"""Typed configs of training, each option declared once (mmsa_cli/flags.py: option). Both are
saved in every run folder (config.json) so a run rebuilds alone, and `mmsa train --config`
replays them.

Every field carries its help, range or choices in `metadata`; the `mmsa train` command line is
generated from these fields (mmsa_cli/cli_options.py: dataclass_options) and the library checks
values with the same declarations (`check_config`), so nothing is written twice. A field's
command-line name is `--` + its name with dashes (`lr` -> `--lr`). TableLayout is the data's
layout, which train, evaluate and predict read alike.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .contract.decision import METRICS as DECISION_METRICS  # what the decision offsets can maximise
from .contract.text import TEXT_NORMALIZATIONS  # the contract names them
from .errors import ConfigError
from .flags import DEVICE, ID_COL, IMAGE_COL, IMAGE_ROOT, TEXT_COL, option
from .flags import check_config, describe_allowed  # noqa: F401  (their old home: callers import them here)
from .registry import FUSION_NAMES, IMAGE_PRESET_NAMES, TEXT_PRESET_NAMES

FREEZE_CHOICES = ("none", "text", "image", "both")
TEXT_POOLINGS = ("", "cls", "pooler", "mean")
CLASS_WEIGHTINGS = ("none", "balanced")
DECISION_RULES = ("none", "offsets")                         # mmsa_cli/training/decision_rule.py
# Presets that exist for the test suite (random, a few kB): usable, but never shown in --help.
TEST_ONLY_PRESETS = ("tiny-bert", "tiny-cnn")


ENSEMBLE_MEMBER_NAMES: tuple[str, ...] = tuple(name for name in FUSION_NAMES if name != "ensemble")


@dataclass
class ModelConfig:
    fusion: str = option("ote", "Model to train; `all` trains the paper's seven and writes a comparison, `ensemble` "
                                "averages --ensemble-members in one graph.", choices=(*FUSION_NAMES, "all"))
    text_encoder: str = option("minilm-l6", "Text encoder: a preset or a local Hugging Face model folder.",
                               choices=TEXT_PRESET_NAMES, open_choice=True)  # a model folder path too
    image_encoder: str = option("efficientnet-lite2", "Image encoder preset.", choices=IMAGE_PRESET_NAMES)
    image_size: int = option(0, "Side S images are resized and centre-cropped to; 0 = the image encoder's own "
                                "(efficientnet-lite2: 260, resnet50: 224). Saved with the run: export and score use it.",
                             min=0, max=1024)
    fusion_dim: int = option(64, "Width both modalities are projected to (the reference code's 64).", min=8)
    num_heads: int = option(4, "Attention heads in the fusion layers (ote, hstec, cmac).", min=1)
    num_layers: int = option(1, "Transformer layers in ote / hstec.", min=1)
    dropout: float = option(0.1, "Dropout in the fusion layers and classifiers.", min=0, max=1, max_open=True)
    max_length: int = option(64, "Tokens per tweet; longer texts are truncated.", min=8, max=512)
    num_classes: int = option(3, "Classes (positive, neutral, negative): fixed by the labels.", choices=(3,),
                              cli=False)
    text_pooling: str = option("", "Text vector: cls, pooler or mean; '' = the preset's choice (saved resolved).",
                               choices=TEXT_POOLINGS)
    text_normalization: str = option("none", "`tweet`: URLs, @mentions, RT, hashtags and emoji rewritten as words "
                                             "before tokenizing.", choices=TEXT_NORMALIZATIONS)
    ensemble_members: tuple[str, ...] = option(("naive-cat", "naive-combine", "ote", "hstec", "cmac"),
                                               "Fusions averaged by `--fusion ensemble` (comma-separated).",
                                               choices=ENSEMBLE_MEMBER_NAMES)

    def __post_init__(self):
        self.ensemble_members = tuple(self.ensemble_members)  # JSON gives a list


@dataclass
class TrainConfig:
    epochs: int = option(20, "Most epochs (the paper's); early stopping usually ends sooner.", min=1)
    batch_size: int = option(16, "Training batch size (the paper's).", min=1)
    lr: float = option(3e-5, "Learning rate of the encoders being fine-tuned (the paper's).", min=0, min_open=True)
    head_lr: float = option(5e-4, "Learning rate of the fusion layers and classifiers (they start from scratch).",
                            min=0, min_open=True)
    weight_decay: float = option(0.01, "AdamW weight decay.", min=0)
    layer_lr_decay: float = option(1.0, "Layer-wise learning-rate decay of fine-tuned encoders: each layer (image "
                                        "stage) below the top learns at this factor of the one above; 1 = all the same.",
                                   min=0, max=1, min_open=True)
    warmup_ratio: float = option(0.1, "Share of the steps with a linear warmup (then linear decay).", min=0, max=1)
    patience: int = option(3, "Early stopping: epochs without validation-accuracy gain.", min=1)
    freeze: str = option("image", "Encoders kept fixed. A frozen image encoder's features are computed once.",
                         choices=FREEZE_CHOICES)
    image_train_stages: int = option(0, "With the image encoder trained (--freeze none/text): fine-tune only its last "
                                        "N trunk stages (EfficientNet-Lite: stem, each block, head); 0 = all.", min=0)
    text_train_layers: int = option(0, "With the text encoder trained (--freeze none/image): fine-tune only its top "
                                       "N transformer layers and pooler; the rest runs fixed, without gradients "
                                       "(faster); 0 = all.", min=0)
    reencode_images: bool = option(False, "Run a frozen image encoder every epoch instead of once.")
    feature_cache: str = option("", "Folder that keeps a frozen image encoder's features between runs (same images, "
                                    "same encoder); '' = memory only.")
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy.", min=0, max=0.5)
    ema_decay: float = option(0.0, "Validate and keep an exponential moving average of the weights (e.g. 0.998); "
                                   "0 = off.", min=0, max=1, max_open=True)
    rdrop_alpha: float = option(0.0, "R-Drop: each training batch runs twice (two dropout masks) and this weight x "
                                     "the symmetric KL of the two predictions joins the loss; 0 = off (2x slower).",
                                min=0)
    modality_dropout: float = option(0.0, "Chance that a training row loses its image or its text (even odds), "
                                          "replaced by the blank image or empty text scoring uses for an unusable one.",
                                     min=0, max=1)
    aux_loss_weight: float = option(0.0, "Weight of the unimodal classifiers' (or ensemble members') own losses.",
                                    min=0)
    class_weighting: str = option("none", "`balanced`: inverse-frequency class weights in the loss.",
                                  choices=CLASS_WEIGHTINGS)
    val_fraction: float = option(0.2, "Validation share of the stratified split (800 of MVSA-Single's 4,000).",
                                 min=0, max=1, min_open=True, max_open=True)
    folds: int = option(0, "Stratified k-fold cross-validation (e.g. 5): mean and spread over folds in cv.md.",
                        min=0, max=20)
    fold: int = option(0, "With --folds: train only this fold (1-based), e.g. one fold per machine into the same "
                          "--out; cv.md appears once every fold is there.", min=0, max=20)
    seed: int = option(42, "Seed of the split, the initialisation and the batch order.")
    device: str = DEVICE()
    workers: int = option(-1, "Image-decoding worker processes; -1 = auto: none on the CPU (the cores are the "
                              "model's), on CUDA one per core but two, at most 8.", min=-1, aliases=("--num-workers",))
    strict: bool = option(False, "Fail on unreadable images instead of skipping those rows.")
    max_train_examples: int = option(0, "Cap on training rows (quick runs); 0 = all.", min=0)
    decision_rule: str = option("none", "With --folds: `offsets` fits per-class log-prior offsets (label = argmax(log p "
                                        "+ b)) on the out-of-fold predictions, reports them in cv.md (nested CV, "
                                        "before/after) and saves decision_rule.json, which `mmsa export` carries into "
                                        "the model; `none`: the arg-max.", choices=DECISION_RULES)
    decision_metric: str = option("macro_f1", "What the decision offsets maximise on the out-of-fold predictions.",
                                  choices=DECISION_METRICS)


@dataclass
class EncoderWeights:
    """Where pretrained encoder weights come from (see README, Backbones)."""
    text_weights: str = option("", "Folder with the text encoder's weights [default: the preset's source].", path="any")
    image_weights: str = option("", "Image encoder state dict [default: the preset's source].", path="file")
    random_weights: bool = option(False, "Random encoder weights (export and speed tests only).")


@dataclass
class TableLayout:
    """Where a table's columns are, and the MVSA layout's label file (train, evaluate, predict)."""
    label_file: str = option("train.txt", "MVSA layout: the guid,tag file, relative to DATA.")
    text_col: str = TEXT_COL()
    image_col: str = IMAGE_COL()
    id_col: str | None = ID_COL()
    label_col: str = option("label", "Label column of a table (optional).")
    image_root: str | None = IMAGE_ROOT(path="dir")
CONFIG_CLASSES = {"model": ModelConfig, "train": TrainConfig, "weights": EncoderWeights}

# `mmsa train --recipe NAME`: values below the config file and the flags (keys: option names).
# "paper" (the default) is the paper's settings, so results compare with its Table 4; "best"
# is the best recipe measured on MVSA-Single by 5-fold CV (README, Results; issue 5).
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "best": {"fusion": "ensemble", "freeze": "image", "aux_loss_weight": 1.0, "text_normalization": "tweet",
             "modality_dropout": 0.2, "epochs": 5, "patience": 2},
}

# Keys of config.json written by older versions -> today's name (and value).
LEGACY_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "encoder_lr": ("lr", lambda v: v),
    "num_workers": ("workers", lambda v: v),
    "cache_image_features": ("reencode_images", lambda v: not v),
}


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def upgrade_legacy(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Old spellings (config.json of earlier versions) -> today's field names."""
    known = {f.name for f in dataclasses.fields(cls)}
    upgraded = {}
    for key, value in data.items():
        if key not in known and key in LEGACY_KEYS and LEGACY_KEYS[key][0] in known:
            key, value = LEGACY_KEYS[key][0], LEGACY_KEYS[key][1](value)
        upgraded[key] = value
    return upgraded


def from_dict(cls: type, data: dict[str, Any]):
    """Build a config from a dict, refusing unknown keys (a typo must not pass silently)."""
    data = upgrade_legacy(cls, data)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
    return cls(**data)


def save_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
