"""Run folders: everything needed to rebuild, evaluate and export a trained model.

    runs/NAME/
      config.json          the options (model, train, weights: replayable with `mmsa train
                           --config`), labels, image preprocessing, versions, data path
      labels.json          label -> class index
      text_encoder/        HF config + tokenizer (architecture only)
      split.csv            guid,split,label: the exact train/validation split
      model.safetensors    best weights (all of them: encoders, fusion, heads)
      metrics.json         best validation metrics + per-epoch history
      confusion_matrix.png, curves.png

A `--fusion all` run holds one such folder per fusion plus comparison.{md,json,png}.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import LABELS, __version__
from .io.outputs import current_umask
from .contract.inputs import ModelInputs
from .config import EncoderWeights, ModelConfig, TrainConfig, from_dict, save_json, to_dict
from .errors import ConfigError, FolderError
from .models import FUSIONS, MultimodalModel
from .models.image_encoders import create_image_encoder
from .models.text_encoders import text_encoder_from_folder

WEIGHTS = "model.safetensors"


@dataclass
class Run:
    folder: Path
    model: MultimodalModel
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    meta: dict

    @property
    def inputs(self) -> ModelInputs:
        """What the trained model expects (its geometry, max_length, text normalization)."""
        return self.model.inputs

    # The geometry's parts, as older callers read them.
    image_size = property(lambda self: self.inputs.image_size)
    mean = property(lambda self: self.inputs.image_mean)
    std = property(lambda self: self.inputs.image_std)


def write_run_config(folder: Path, model: MultimodalModel, train_cfg: TrainConfig, data: str,
                     weights: EncoderWeights | None = None) -> None:
    """config.json: "model", "train" and "weights" hold the options under their command-line
    names (replayed by `mmsa train --config`); the other keys are informational."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = model.inputs
    save_json(folder / "config.json", {
        "mmsa_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": data,
        "labels": list(LABELS),
        "model": to_dict(model.cfg) | {"text_pooling": model.text_encoder.pooling},
        "train": to_dict(train_cfg),
        "weights": to_dict(weights or EncoderWeights()),
        "image": {"size": inputs.image_size, "mean": list(inputs.image_mean), "std": list(inputs.image_std)},
        "torch_version": torch.__version__,
    })
    save_json(folder / "labels.json", {name: i for i, name in enumerate(LABELS)})
    model.text_encoder.save_architecture(folder / "text_encoder")


def save_weights(folder: Path, model: MultimodalModel) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"mmsa_version": __version__})
    os.chmod(tmp, 0o666 & ~current_umask())  # safetensors writes 0600: other users (a scheduler) must read it
    tmp.replace(folder / WEIGHTS)  # never leave a half-written best model behind


def fold_folders(folder: str | Path) -> list[Path]:
    """The fold-K folders of a cross-validation run (`--folds K`), in fold order; [] otherwise."""
    folds = [p for p in Path(folder).glob("fold-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(folds, key=lambda p: int(p.name[5:]))


def select_folds(folder: str | Path, fold: str | None) -> list[Path]:
    """The run folders `fold` names in `folder`: a cross-validation run's fold K ("K"), or all
    its folds ("all"); [folder] for a run without folds (fold must then be None)."""
    folder, folds = Path(folder), fold_folders(folder)
    if not folds:
        if fold is not None:
            raise ConfigError(f"'{folder}' is not a cross-validation run (no fold-K folders): drop --fold")
        return [folder]
    numbers = [p.name[5:] for p in folds]
    if fold is None:
        raise ConfigError(f"'{folder}' is a cross-validation run with folds {', '.join(numbers)}: choose one "
                        f"with --fold K, or --fold all for the mean of all their models")
    if fold == "all":
        return folds
    if fold not in numbers:
        raise ConfigError(f"'{folder}' has no fold {fold}; it holds folds {', '.join(numbers)}")
    return [folds[numbers.index(fold)]]


def resolve_run(folder: str | Path, fusion: str | None = None) -> Path:
    """A run folder, or one fusion's folder inside a `--fusion all` run."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        trained = json.loads((folder / "config.json").read_text())["model"]["fusion"]
        if fusion and trained != fusion:
            raise ConfigError(f"run '{folder}' holds fusion '{trained}', not '{fusion}'")
        return folder
    trained = [name for name in FUSIONS if (folder / name / "config.json").is_file()]
    folds = [] if trained else fold_folders(folder)
    if folds:
        raise ConfigError(f"'{folder}' is a cross-validation run: give one fold's folder ({folds[0]})")
    if not trained:
        raise FolderError(f"'{folder}' is not a run folder (no config.json, and no per-fusion folders)")
    if fusion is None:
        raise ConfigError(f"'{folder}' holds several models ({', '.join(trained)}): choose one with --fusion")
    if fusion not in trained:
        raise ConfigError(f"'{folder}' has no trained '{fusion}'; it holds: {', '.join(trained)}")
    return folder / fusion


def load_run(folder: str | Path, fusion: str | None = None, *, map_location: str = "cpu") -> Run:
    """Rebuild a trained model from its run folder alone (no pretrained weights needed)."""
    from safetensors.torch import load_file

    folder = resolve_run(folder, fusion)
    for required in ("config.json", WEIGHTS, "text_encoder/config.json"):
        if not (folder / required).exists():
            raise FolderError(f"run folder '{folder}' is incomplete: {required} is missing")
    meta = json.loads((folder / "config.json").read_text())
    if tuple(meta["labels"]) != LABELS:
        raise FolderError(f"run '{folder}' was trained with labels {meta['labels']}, expected {list(LABELS)}")
    model_cfg = from_dict(ModelConfig, meta["model"])
    train_cfg = from_dict(TrainConfig, meta["train"])  # old spellings (encoder_lr, ...) are upgraded
    text = text_encoder_from_folder(folder / "text_encoder", model_cfg.text_pooling)
    image = create_image_encoder(model_cfg.image_encoder, pretrained=False, image_size=model_cfg.image_size)
    model = MultimodalModel(model_cfg, text, image)
    try:
        state = load_file(str(folder / WEIGHTS), device=map_location)
    except Exception as exc:  # truncated or corrupt: safetensors raises its own error types
        raise FolderError(f"cannot read the weights '{folder / WEIGHTS}' ({' '.join(str(exc).split())}): the file is "
                          f"truncated or corrupt; copy it again or retrain") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FolderError(f"weights in '{folder / WEIGHTS}' do not match the config: "
                        f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return Run(folder, model.eval(), model_cfg, train_cfg, meta)
