"""`mmsa train` as a library call: check the options, load and split the data, prepare it once,
fit each fusion on each fold, and write the run folders with their comparison and CV reports.

    one split, one fusion     out/                      a run folder (mmsa_cli/runs.py)
    one split, several        out/<fusion>/ + out/comparison.{md,json,png}
    --folds K                 out/fold-K/ (either layout) + out/cv.{md,json,png}
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..config import EncoderWeights, ModelConfig, TrainConfig, from_dict
from ..flags import check_config
from ..contract.device import resolve_device, torch_cuda_check
from ..data import load_examples, stratified_kfold, stratified_split, write_split
from ..errors import ConfigError, DataError
from ..models import FUSIONS, create_model
from .loop import fit, fixed_parts, seed_everything
from ..io.outputs import refuse_existing
from ..io.staging import staged_folder
from .prepared import image_weights_id, prepare, with_split, write_skipped
from .decision_rule import PREDICTIONS, RULE_FILE, write_decision_rule
from .reports import write_comparison, write_cv_summary

log = logging.getLogger(__name__)


@dataclass
class TrainSource:
    """Where the training data comes from (see mmsa_cli.data.load_examples)."""
    data: str
    label_file: str = "train.txt"
    text_col: str = "text"
    image_col: str = "image"
    id_col: str | None = None
    label_col: str | None = "label"
    image_root: str | None = None


def quiet_library_progress() -> None:
    """transformers draws a "Loading weights" bar per model: redraws in logs, nothing a user needs."""
    import os

    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging.disable_progress_bar()


def check_options(fusions: Sequence[str], model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """Everything that can be refused before any data is read."""
    for name in fusions:
        if name not in FUSIONS:
            raise ConfigError(f"unknown fusion '{name}'; valid names: {', '.join(FUSIONS)}, all")
    check_config(model_cfg)
    check_config(cfg)
    if cfg.fold and not 1 <= cfg.fold <= cfg.folds:
        raise ConfigError(f"--fold {cfg.fold} needs --folds of at least {cfg.fold} (got --folds {cfg.folds})")
    if cfg.image_train_stages and cfg.freeze in ("image", "both"):
        raise ConfigError(f"--image-train-stages {cfg.image_train_stages} fine-tunes part of the image encoder, "
                          f"but --freeze {cfg.freeze} keeps it fixed: use --freeze none or --freeze text")
    if cfg.text_train_layers and cfg.freeze in ("text", "both"):
        raise ConfigError(f"--text-train-layers {cfg.text_train_layers} fine-tunes part of the text encoder, "
                          f"but --freeze {cfg.freeze} keeps it fixed: use --freeze image or --freeze none")


# Options that may differ between folds trained one by one (machines differ, not the experiment;
# the decision rule is fitted after the last fold, by that fold's options, and changes no model).
PER_MACHINE = ("fold", "device", "workers", "feature_cache", "decision_rule", "decision_metric")


def check_same_options_as_other_folds(out: Path, model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """--fold K into a CV folder that holds other folds: their options must be this run's,
    or cv.md would average different experiments."""
    ours = {**dataclasses.asdict(cfg), **{f"model.{k}": v for k, v in dataclasses.asdict(model_cfg).items()}}
    runs = [out.glob("fold-*/config.json"), *(out.glob(f"fold-*/{name}/config.json") for name in FUSIONS)]
    for config in sorted(path for found in runs for path in found):
        saved = json.loads(config.read_text())
        theirs = {**from_dict(TrainConfig, saved["train"]).__dict__,
                  **{f"model.{k}": v for k, v in from_dict(ModelConfig, saved["model"]).__dict__.items()}}
        differ = [k for k in ours if k not in PER_MACHINE and k not in ("model.fusion", "model.text_pooling")
                  and ours[k] != theirs[k]]
        if differ:
            shown = ", ".join(f"{k.removeprefix('model.')}={ours[k]!r} (there: {theirs[k]!r})" for k in differ[:4])
            raise ConfigError(f"{config.parent} was trained with other options than this fold: {shown}; "
                              f"train every fold of one --out with the same options")


def run_folder(out: Path, cfg: TrainConfig) -> Path:
    """The folder this run creates: `out`, or one fold's folder inside a CV folder (--fold K)."""
    return out / f"fold-{cfg.fold}" if cfg.folds > 1 and cfg.fold else out


def train(source: TrainSource, out: str | Path, fusions: Sequence[str], model_cfg: ModelConfig, cfg: TrainConfig, *,
          weights: EncoderWeights | None = None, overwrite: bool = False) -> list[dict]:
    """Train each fusion in `fusions` on the same split; one run folder per fusion.

    A single fusion writes its run folder at `out`; several write `out/<fusion>/` plus a
    comparison (Markdown, JSON, PNG) at `out`. With cfg.folds > 1 each fold gets that layout
    under `out/fold-K/`, and `out/cv.{md,json,png}` report mean and spread over folds.
    An existing non-empty folder is refused (OutputExistsError) unless `overwrite`; with
    cfg.fold, only that fold's folder must be new, so folds can be trained one by one.
    """
    weights = weights or EncoderWeights()
    check_options(fusions, model_cfg, cfg)
    quiet_library_progress()
    out = Path(out)
    refuse_existing(run_folder(out, cfg), overwrite)  # before any data is read
    if cfg.folds > 1 and cfg.fold:
        check_same_options_as_other_folds(out, model_cfg, cfg)
    examples = load_examples(source.data, label_file=source.label_file, text_col=source.text_col,
                             image_col=source.image_col, id_col=source.id_col, label_col=source.label_col,
                             image_root=Path(source.image_root) if source.image_root else None)
    labelled = [e for e in examples if e.label is not None]
    if len(labelled) < 10:
        raise DataError(f"{source.data} has {len(labelled)} labelled rows; training needs at least 10")
    device = torch.device(resolve_device(cfg.device, torch_cuda_check).name)
    with staged_folder(run_folder(out, cfg), overwrite) as staging:
        results = _train_folds(staging, source, labelled, fusions, model_cfg, cfg, weights, device)
        if cfg.folds > 1 and not cfg.fold:
            write_cv_summary(staging, results)
            _fit_decision_rule(staging, [staging / f"fold-{k}" for k in range(1, cfg.folds + 1)], fusions, cfg)
    if cfg.folds > 1 and cfg.fold:
        _summarise_if_complete(out, cfg, fusions)
    return results


def _train_folds(staging: Path, source: TrainSource, labelled, fusions, model_cfg, cfg, weights, device) -> list[dict]:
    labels = [e.label for e in labelled]
    if cfg.folds > 1:
        splits = stratified_kfold(labels, cfg.folds, cfg.seed)
        fold_dirs = [staging if cfg.fold else staging / f"fold-{k + 1}" for k in range(cfg.folds)]
    else:
        splits, fold_dirs = [stratified_split(labels, cfg.val_fraction, cfg.seed)], [staging]
    pretrained = not weights.random_weights
    create = dict(pretrained=pretrained, text_weights=weights.text_weights or None,
                  image_weights=weights.image_weights or None)
    first = create_model(dataclasses.replace(model_cfg, fusion=fusions[0]), **create)
    fixed_parts(first, cfg)  # a bad stage or layer count fails before any data work
    keep_tokens = any(FUSIONS[f].needs_tokens(model_cfg) for f in fusions)
    data = prepare(labelled, first, cfg, device, keep_tokens, image_weights_id(pretrained, create["image_weights"]))
    results = []
    for fold, ((train_idx, val_idx), base) in enumerate(zip(splits, fold_dirs), start=1):
        if cfg.fold and fold != cfg.fold:
            continue
        base.mkdir(parents=True, exist_ok=True)
        write_split(base / "split.csv", labelled, train_idx, val_idx)
        write_skipped(base / "skipped.csv", data)
        fold_data = with_split(data, train_idx, val_idx, cfg)
        fold_results = []
        for name in fusions:
            seed_everything(cfg.seed)
            model = first or create_model(dataclasses.replace(model_cfg, fusion=name), **create)
            first = None  # the model that prepared the data trains first, then fresh ones
            run_dir = base if len(fusions) == 1 else base / name
            if run_dir != base:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "split.csv").write_bytes((base / "split.csv").read_bytes())
            result = fit(model, fold_data, cfg, run_dir, device, source.data, weights)
            fold_results.append(result | {"fold": fold if cfg.folds > 1 else None})
            del model
        if len(fusions) > 1:
            write_comparison(base, fold_results)
        results += fold_results
    return results


def _summarise_if_complete(out: Path, cfg: TrainConfig, fusions: Sequence[str]) -> None:
    """After one fold (--fold K): cv.md once every fold folder has its metrics.json."""
    every_fold = finished_folds([out / f"fold-{k}" for k in range(1, cfg.folds + 1)], fusions)
    if every_fold:
        write_cv_summary(out, every_fold)
        _fit_decision_rule(out, [out / f"fold-{k}" for k in range(1, cfg.folds + 1)], fusions, cfg)
        return
    for name in ("cv.json", "cv.md", "cv.png", RULE_FILE):  # a summary of other folds must never pass for this one's
        (out / name).unlink(missing_ok=True)
    log.warning("trained fold %d of %d; cv.md is written when every fold folder has its metrics.json",
                cfg.fold, cfg.folds)


def _fit_decision_rule(out: Path, fold_dirs: list[Path], fusions: Sequence[str], cfg: TrainConfig) -> None:
    """--decision-rule offsets: fitted on the folds' out-of-fold predictions (decision_rule.py)."""
    if cfg.decision_rule == "none":
        return
    if len(fusions) > 1:  # a rule belongs to one model's probabilities
        log.warning("--decision-rule %s is fitted for one fusion; this run trained %d: none fitted",
                    cfg.decision_rule, len(fusions))
        return
    missing = [str(f) for f in fold_dirs if not (f / PREDICTIONS).is_file()]
    if missing:  # folds trained by an mmsa before the rule: the run stays good, the rule is left out
        log.warning("no decision rule fitted: %s lack %s (trained by an older mmsa); benchmarks/decision_rule.py "
                    "--save-rule fits it from the fold models", ", ".join(missing), PREDICTIONS)
        return
    rule = write_decision_rule(out, fold_dirs, cfg.decision_metric)
    before, after = rule["nested_cv"]["before"], rule["nested_cv"]["after"]
    log.info("decision rule: offsets %s; nested CV %s %.4f -> %.4f (accuracy %.4f -> %.4f)", rule["offsets"],
             cfg.decision_metric, before[cfg.decision_metric], after[cfg.decision_metric],
             before["accuracy"], after["accuracy"])


def finished_folds(fold_dirs: Sequence[Path], fusions: Sequence[str]) -> list[dict] | None:
    """Every fold's results from its metrics.json (folds trained one by one, e.g. on several
    machines, into the same --out, with the same options), or None while one is missing."""
    results = []
    for fold, base in enumerate(fold_dirs, start=1):
        for name in fusions:
            path = (base if len(fusions) == 1 else base / name) / "metrics.json"
            if not path.is_file():
                return None
            results.append(json.loads(path.read_text()) | {"fold": fold})
    return results
