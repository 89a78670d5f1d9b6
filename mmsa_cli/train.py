"""`mmsa train`: split the data, prepare it once, fit one or all fusions, write run folders."""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import LABELS
from .batches import (ImageDataset, ImageFeatures, TextFeatures, cached_image_features, encode_images, encode_texts,
                      file_fingerprint, image_loader, pad_tokens, scan_images, tokenize)
from .config import CLASS_WEIGHTINGS, FREEZE_CHOICES, ModelConfig, TrainConfig, save_json
from .data import Example, load_examples, stratified_kfold, stratified_split, write_split
from .errors import ConfigError, DataError
from .progress import progress
from .metrics import classification_metrics, plot_comparison, plot_confusion_matrix, plot_training_curves
from .missing_modality import Blanks, blank_encoded, blank_token_lists, draw_dropped, make_blanks
from .models import FUSIONS, MultimodalModel, create_model, report_name
from .runs import save_weights, write_run_config

log = logging.getLogger(__name__)
PAPER_ACCURACY = {"BERT": 70.5, "ResNet": 65.75, "CMAC": 73.13, "HSTEC": 71.75, "OTE": 74.5,
                  "NaiveCat": 70.5, "NaiveCombine": 71.5}  # Table 4, MVSA-Single


def pick_device(name: str) -> torch.device:
    """--device for the PyTorch backend (the rule: mmsa_cli/contract/device.py)."""
    from .contract.device import resolve_device, torch_cuda_check

    device = resolve_device(name, torch_cuda_check)
    if device.note:
        log.warning(device.note)
    return torch.device(device.name)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def image_weights_id(pretrained: bool, image_weights: str | None) -> str:
    """Which image-encoder weights produced cached features (part of the feature-cache key)."""
    return f"pretrained={pretrained} image_weights={image_weights}"


@dataclass
class Prepared:
    """Data prepared once and shared by every fusion trained in one run."""
    examples: list[Example]
    labels: torch.Tensor                 # [N]
    tokens: list[list[int]]              # token ids per example, unpadded
    pad_id: int
    train_idx: list[int]                 # usable rows only (readable images)
    val_idx: list[int]
    images: ImageDataset
    features: ImageFeatures | None       # cached frozen image-encoder outputs, if any
    text_features: TextFeatures | None   # cached frozen text-encoder outputs, if any
    skipped: dict[int, str]              # example index -> image error
    blanks: Blanks                       # a missing image / text as scoring presents it (modality dropout)


def prepare(examples: list[Example], model: MultimodalModel, cfg: TrainConfig, device, keep_tokens: bool,
            weights_id: str = "") -> Prepared:
    """Tokenize, check every image and run the frozen encoders once; no split yet."""
    tok = model.text_encoder.tokenizer
    tokens = tokenize(tok, [e.text for e in examples], model.cfg.max_length,
                      normalization=model.cfg.text_normalization)
    enc = model.image_encoder
    images = ImageDataset([e.image_path for e in examples], enc.image_size, enc.mean, enc.std)
    features = text_features = None
    if cfg.freeze in ("image", "both") and cfg.cache_image_features:
        compute = lambda: encode_images(enc, images, batch_size=64, num_workers=cfg.num_workers,  # noqa: E731
                                        device=device, keep_tokens=keep_tokens)
        if cfg.feature_cache:
            key = [enc.name, weights_id, str(enc.image_size), *(file_fingerprint(e.image_path) for e in examples)]
            features = cached_image_features(cfg.feature_cache, key, keep_tokens, compute)
        else:
            features = compute()
        skipped = features.errors
    else:
        skipped = scan_images(images, num_workers=cfg.num_workers)
    if skipped:
        shown = "; ".join(f"{examples[i].guid}: {err}" for i, err in list(skipped.items())[:3])
        if cfg.strict:
            raise DataError(f"{len(skipped)} of {len(examples)} images cannot be used (--strict): {shown}")
        log.warning("skipping %d of %d rows whose image cannot be used (listed in skipped.csv): %s",
                    len(skipped), len(examples), shown)
    if cfg.freeze in ("text", "both"):
        text_features = encode_texts(model.text_encoder, tokens, tok.pad_token_id, batch_size=64, device=device,
                                     keep_tokens=keep_tokens)
    blanks = make_blanks(model, device, text_cached=text_features is not None, image_cached=features is not None,
                         keep_tokens=keep_tokens)
    return Prepared(examples, torch.tensor([e.label for e in examples]), tokens, tok.pad_token_id, [], [],
                    images, features, text_features, skipped, blanks)


def with_split(data: Prepared, train_idx: Sequence[int], val_idx: Sequence[int], cfg: TrainConfig) -> Prepared:
    """The prepared data restricted to one split's usable rows (readable images)."""
    if cfg.max_train_examples:
        train_idx = sorted(np.random.default_rng(cfg.seed).permutation(train_idx)[: cfg.max_train_examples].tolist())
    usable = lambda idx: [i for i in idx if i not in data.skipped]  # noqa: E731
    return dataclasses.replace(data, train_idx=usable(train_idx), val_idx=usable(val_idx))


def write_skipped(path: Path, data: Prepared) -> None:
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["guid", "image", "error"])
        for i, err in sorted(data.skipped.items()):
            w.writerow([data.examples[i].guid, str(data.examples[i].image_path), err])


def _batches(model: MultimodalModel, data: Prepared, idx: Sequence[int], batch_size: int, *, shuffle: bool,
             augment: bool, cfg: TrainConfig, epoch: int):
    """Yield (example indices, pixels or None) in batches."""
    order = list(idx)
    if shuffle:
        order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(cfg.seed + epoch))]
    if not model.uses_image or data.features is not None:
        for s in range(0, len(order), batch_size):
            yield torch.tensor(order[s: s + batch_size]), None
        return
    data.images.augment = augment
    data.images.set_epoch(epoch)
    for batch_idx, pixels, _ in image_loader(data.images, batch_size, cfg.num_workers, shuffle_indices=order):
        yield batch_idx, pixels


def _batch_inputs(model: MultimodalModel, data: Prepared, idx: torch.Tensor, pixels, device,
                  dropped: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """A batch's model inputs on the device (forward_features' keyword arguments). dropped = (text, image) row masks: those rows get
    the empty text or the blank image instead of their own (modality dropout)."""
    token_lists = [data.tokens[i] for i in idx.tolist()]
    if dropped is not None:
        token_lists = blank_token_lists(token_lists, dropped[0], data.blanks)
    ids, mask = pad_tokens(token_lists, data.pad_id)
    ids, mask = ids.to(device), mask.to(device)
    cached = data.features.take(idx, device) if (data.features is not None and model.uses_image) else None
    cached_text = data.text_features.take(idx, device) if (data.text_features is not None and model.uses_text) else None
    pix = pixels.to(device, non_blocking=True) if pixels is not None else None
    if dropped is not None:
        drop_text, drop_image = dropped
        if cached_text is not None:
            cached_text = blank_encoded(cached_text, drop_text, data.blanks.text_features, width=mask.shape[1])
        if cached is not None:
            cached = blank_encoded(cached, drop_image, data.blanks.image_features)
        if pix is not None:
            pix[drop_image.to(pix.device)] = 0.0                        # the normalised mean image
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "image_features": cached,
            "text_features": cached_text}


def _run_model(model: MultimodalModel, inputs: dict, device):
    """Logits and auxiliary logits of a batch prepared by _batch_inputs."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        feats = model.forward_features(**inputs)
        logits, aux = model.forward_head(feats)
    return logits.float(), [a.float() for a in aux]


@torch.no_grad()
def predict_indices(model: MultimodalModel, data: Prepared, idx: Sequence[int], cfg: TrainConfig, device,
                    missing: str = ""):
    """Class probabilities [len(idx), C]; missing="image" or "text" predicts every row with that
    modality blanked, as scoring does for a row whose image or text is unusable."""
    if missing not in ("", "image", "text"):
        raise ConfigError(f"missing modality '{missing}' is not 'image' or 'text'")
    model.eval()
    probs = []
    for batch_idx, pixels in _batches(model, data, idx, 64, shuffle=False, augment=False, cfg=cfg, epoch=0):
        every = torch.ones(len(batch_idx), dtype=torch.bool)
        dropped = (every & (missing == "text"), every & (missing == "image")) if missing else None
        logits, _ = _run_model(model, _batch_inputs(model, data, batch_idx, pixels, device, dropped), device)
        probs.append(logits.softmax(-1).cpu())
    return torch.cat(probs) if probs else torch.zeros((0, len(LABELS)))


def _optimizer(model: MultimodalModel, cfg: TrainConfig, fixed_stages: Sequence[torch.nn.Module]):
    frozen = {"none": (), "text": ("text",), "image": ("image",), "both": ("text", "image")}[cfg.freeze]
    model.text_encoder.requires_grad_("text" not in frozen and model.uses_text)
    model.image_encoder.requires_grad_("image" not in frozen and model.uses_image)
    for stage in fixed_stages:
        stage.requires_grad_(False)
    groups = [{"params": list(model.fusion.parameters()), "lr": cfg.head_lr}]
    groups += layerwise_lr_groups(model.text_encoder, model.text_encoder.layers(), cfg.encoder_lr, cfg.layer_lr_decay)
    groups += layerwise_lr_groups(model.image_encoder, model.image_encoder.stages(), cfg.encoder_lr, cfg.layer_lr_decay)
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay), frozen


def layerwise_lr_groups(encoder: torch.nn.Module, layers: Sequence[torch.nn.Module], lr: float,
                        decay: float) -> list[dict]:
    """Optimizer groups of an encoder's trainable parameters with layer-wise learning-rate decay:
    the top layer (and any parameter outside `layers`) learns at lr, the one below at lr * decay,
    and so on down to the first (embeddings, stem) at lr * decay ** (len(layers) - 1). Lower
    layers hold general features that a 3,200-tweet task should move least. decay 1 = one group."""
    if not 0 < decay <= 1:
        raise ConfigError(f"layer-wise learning-rate decay {decay} must be in (0, 1]")
    in_layer = {id(p): depth for depth, layer in enumerate(reversed(layers)) for p in layer.parameters()}
    by_depth: dict[int, list[torch.nn.Parameter]] = {}
    for p in encoder.parameters():
        if p.requires_grad:
            by_depth.setdefault(in_layer.get(id(p), 0) if decay < 1 else 0, []).append(p)
    return [{"params": params, "lr": lr * decay ** depth} for depth, params in sorted(by_depth.items())]


def class_weights(labels: torch.Tensor, num_classes: int, how: str) -> torch.Tensor | None:
    """Per-class loss weights: "balanced" gives n / (classes * count), so each class weighs the
    same in total (MVSA-Single's neutral class is 10% of the rows)."""
    if how == "none":
        return None
    if how != "balanced":
        raise ConfigError(f"class weighting '{how}' is not one of {', '.join(CLASS_WEIGHTINGS)}")
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts.clamp_min(1))


def training_loss(logits: torch.Tensor, aux: Sequence[torch.Tensor], y: torch.Tensor, cfg: TrainConfig,
                  class_weight: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of the prediction, plus cfg.aux_loss_weight x the mean cross-entropy of the
    auxiliary logits (each modality's classifier, or each ensemble member), so every classifier
    learns on its own and not only through the average."""
    ce = lambda z: F.cross_entropy(z, y, weight=class_weight, label_smoothing=cfg.label_smoothing)  # noqa: E731
    loss = ce(logits)
    if cfg.aux_loss_weight and aux:
        loss = loss + cfg.aux_loss_weight * torch.stack([ce(a) for a in aux]).mean()
    return loss


def rdrop_penalty(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL divergence between two dropout passes' predictions, mean over rows (R-Drop,
    Liang et al. 2021): (KL(p_a || p_b) + KL(p_b || p_a)) / 2."""
    log_a, log_b = F.log_softmax(logits_a, -1), F.log_softmax(logits_b, -1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")  # KL(p_a || p_b)
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return (kl_ab + kl_ba) / 2


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """ema <- d * ema + (1 - d) * model, d = min(decay, (1 + step) / (10 + step)) so the random
    initial head is forgotten within the first epoch. Integer buffers (position ids, BatchNorm
    batch counts) are copied: averaging them, as torch's AveragedModel(use_buffers=True) does,
    corrupts BERT's position ids."""
    d = min(decay, (1 + step) / (10 + step))
    for averaged, current in zip(itertools.chain(ema.parameters(), ema.buffers()),
                                 itertools.chain(model.parameters(), model.buffers())):
        if averaged.dtype.is_floating_point:
            averaged.lerp_(current, 1 - d)
        else:
            averaged.copy_(current)


def _set_train_mode(model: MultimodalModel, frozen: Sequence[str], fixed_stages: Sequence[torch.nn.Module]) -> None:
    model.train()
    # Frozen encoders (and fixed image stages) stay in eval mode: no dropout, BatchNorm statistics untouched.
    if "text" in frozen:
        model.text_encoder.eval()
    if "image" in frozen:
        model.image_encoder.eval()
    for stage in fixed_stages:
        stage.eval()


def fit(model: MultimodalModel, data: Prepared, cfg: TrainConfig, out: Path, device, data_name: str) -> dict:
    """Train one model, keep the best validation epoch, write its run folder."""
    seed_everything(cfg.seed)
    write_run_config(out, model, cfg, data_name)
    model.to(device)
    fixed_stages = model.image_encoder.fixed_stages(cfg.image_train_stages)
    opt, frozen = _optimizer(model, cfg, fixed_stages)
    ema = copy.deepcopy(model) if cfg.ema_decay else None  # validated and saved; training goes on with model
    steps_per_epoch = math.ceil(len(data.train_idx) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, (total - s) / max(1, total - warmup)))
    val_y = data.labels[data.val_idx]
    class_weight = class_weights(data.labels[data.train_idx], model.cfg.num_classes, cfg.class_weighting)
    class_weight = class_weight.to(device) if class_weight is not None else None
    history, best, bad_epochs = [], None, 0
    drop_generator = torch.Generator().manual_seed(cfg.seed)
    modality_dropout = cfg.modality_dropout if (model.uses_text and model.uses_image) else 0.0
    name = model.cfg.fusion
    epochs = progress(range(1, cfg.epochs + 1), desc=f"{name}", unit="epoch")
    for epoch in epochs:
        _set_train_mode(model, frozen, fixed_stages)
        seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
        steps = progress(_batches(model, data, data.train_idx, cfg.batch_size, shuffle=True,
                              augment="image" not in frozen, cfg=cfg, epoch=epoch),
                     total=steps_per_epoch, desc=f"  epoch {epoch}", leave=False, unit="step")
        for idx, pixels in steps:
            y = data.labels[idx].to(device)
            dropped = draw_dropped(len(idx), modality_dropout, drop_generator) if modality_dropout else None
            inputs = _batch_inputs(model, data, idx, pixels, device, dropped)
            logits, aux = _run_model(model, inputs, device)
            loss = training_loss(logits, aux, y, cfg, class_weight)
            if cfg.rdrop_alpha:  # a second pass over the same inputs, other dropout masks
                logits_b, aux_b = _run_model(model, inputs, device)
                loss = (loss + training_loss(logits_b, aux_b, y, cfg, class_weight)) / 2 \
                    + cfg.rdrop_alpha * rdrop_penalty(logits, logits_b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                update_ema(ema, model, cfg.ema_decay, sched.last_epoch)
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            steps.set_postfix(loss=f"{loss_sum / seen:.3f}", samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
        evaluated = ema if ema is not None else model
        probs = predict_indices(evaluated, data, data.val_idx, cfg, device)
        val = classification_metrics(val_y.tolist(), probs.argmax(-1).tolist())
        val_loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), val_y)) if len(val_y) else float("nan")
        record = {"epoch": epoch, "train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen),
                  "val_loss": val_loss, "val_accuracy": val["accuracy"], "val_weighted_f1": val["weighted_f1"],
                  "samples_per_s": seen / (time.perf_counter() - t0)}
        history.append(record)
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{val['accuracy']:.3f}",
                           val_f1=f"{val['weighted_f1']:.3f}", samples_s=f"{record['samples_per_s']:.0f}")
        if epochs.disable:  # not a terminal (cron, CI, a log file): one plain line per epoch
            print(f"{name} epoch {epoch}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f} | "
                  f"val loss {val_loss:.4f} acc {val['accuracy']:.4f} weighted F1 {val['weighted_f1']:.4f} | "
                  f"{record['samples_per_s']:.0f} samples/s", file=sys.stderr, flush=True)
        if best is None or (val["accuracy"], -val_loss) > (best["metrics"]["accuracy"], -best["val_loss"]):
            best, bad_epochs = {"epoch": epoch, "metrics": val, "val_loss": val_loss}, 0
            save_weights(out, evaluated)
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    result = {"fusion": name, "best_epoch": best["epoch"], "epochs_run": len(history),
              "validation": best["metrics"], "history": history,
              "train_rows": len(data.train_idx), "val_rows": len(data.val_idx), "skipped_rows": len(data.skipped)}
    save_json(out / "metrics.json", result)
    title = f"{name}: validation accuracy {best['metrics']['accuracy']:.3f} (epoch {best['epoch']})"
    plot_confusion_matrix(best["metrics"]["confusion_matrix"], out / "confusion_matrix.png", title)
    plot_training_curves(history, out / "curves.png", name)
    return result


def write_comparison(out: Path, results: list[dict]) -> None:
    """Table-4-style comparison of several fusions trained on the same split."""
    rows = []
    for r in results:
        v, name = r["validation"], report_name(r["fusion"])
        rows.append({"name": name, "fusion": r["fusion"], "accuracy": v["accuracy"],
                     "macro_precision": v["macro_precision"], "macro_recall": v["macro_recall"],
                     "macro_f1": v["macro_f1"], "weighted_precision": v["weighted_precision"],
                     "weighted_recall": v["weighted_recall"], "weighted_f1": v["weighted_f1"],
                     "best_epoch": r["best_epoch"], "paper_accuracy": PAPER_ACCURACY.get(name)})
    save_json(out / "comparison.json", {"rows": rows})
    lines = ["| model | fusion | accuracy | macro P | macro R | macro F1 | weighted P | weighted R | weighted F1 | paper acc. |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['fusion']} | {100 * r['accuracy']:.2f} | {100 * r['macro_precision']:.2f} | "
                     f"{100 * r['macro_recall']:.2f} | {100 * r['macro_f1']:.2f} | {100 * r['weighted_precision']:.2f} | "
                     f"{100 * r['weighted_recall']:.2f} | {100 * r['weighted_f1']:.2f} | {r['paper_accuracy'] or ''} |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    plot_comparison(rows, out / "comparison.png", f"validation, {results[0]['val_rows']} rows",
                    reference=PAPER_ACCURACY)


METRICS_REPORTED = ("accuracy", "weighted_f1", "macro_f1")


def cv_summary(results: list[dict]) -> list[dict]:
    """Mean and standard deviation over folds, per fusion."""
    rows = []
    for name in dict.fromkeys(r["fusion"] for r in results):
        runs = [r["validation"] for r in results if r["fusion"] == name]
        row = {"name": report_name(name), "fusion": name, "folds": len(runs)}
        for m in METRICS_REPORTED:
            values = np.array([v[m] for v in runs])
            row[m], row[f"{m}_std"] = float(values.mean()), float(values.std(ddof=1) if len(values) > 1 else 0.0)
            row[f"{m}_per_fold"] = values.round(4).tolist()
        rows.append(row)
    return rows


def write_cv_summary(out: Path, results: list[dict]) -> None:
    rows = cv_summary(results)
    save_json(out / "cv.json", {"rows": rows})
    lines = ["| model | fusion | folds | accuracy | weighted F1 | macro F1 | paper acc. |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{100 * r[m]:.2f} ± {100 * r[m + '_std']:.2f}" for m in METRICS_REPORTED)
        lines.append(f"| {r['name']} | {r['fusion']} | {r['folds']} | {cells} | {PAPER_ACCURACY.get(r['name'], '')} |")
    (out / "cv.md").write_text("\n".join(lines) + "\n")
    plot_comparison(rows, out / "cv.png", f"{rows[0]['folds']}-fold cross-validation (mean; ± std in cv.md)",
                    reference=PAPER_ACCURACY)


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


def train(source: TrainSource, out: str | Path, fusions: Sequence[str], model_cfg: ModelConfig, cfg: TrainConfig, *,
          pretrained: bool = True, text_weights: str | None = None, image_weights: str | None = None) -> list[dict]:
    """Train each fusion in `fusions` on the same split; one run folder per fusion.

    A single fusion writes its run folder at `out`; several write `out/<fusion>/` plus a
    comparison (Markdown, JSON, PNG) at `out`. With cfg.folds > 1 each fold gets that layout
    under `out/fold-K/`, and `out/cv.{md,json,png}` report mean and spread over folds.
    """
    for name in fusions:
        if name not in FUSIONS:
            raise ConfigError(f"unknown fusion '{name}'; valid names: {', '.join(FUSIONS)}, all")
    if cfg.freeze not in FREEZE_CHOICES:
        raise ConfigError(f"--freeze '{cfg.freeze}' is not one of {', '.join(FREEZE_CHOICES)}")
    if cfg.fold and not 1 <= cfg.fold <= cfg.folds:
        raise ConfigError(f"--fold {cfg.fold} needs --folds of at least {cfg.fold} (got --folds {cfg.folds})")
    if cfg.image_train_stages and cfg.freeze in ("image", "both"):
        raise ConfigError(f"--image-train-stages {cfg.image_train_stages} fine-tunes part of the image encoder, "
                          f"but --freeze {cfg.freeze} keeps it fixed: use --freeze none or --freeze text")
    if cfg.class_weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(f"--class-weighting '{cfg.class_weighting}' is not one of {', '.join(CLASS_WEIGHTINGS)}")
    out = Path(out)
    examples = load_examples(source.data, label_file=source.label_file, text_col=source.text_col,
                             image_col=source.image_col, id_col=source.id_col, label_col=source.label_col,
                             image_root=Path(source.image_root) if source.image_root else None)
    labelled = [e for e in examples if e.label is not None]
    if len(labelled) < 10:
        raise DataError(f"{source.data} has {len(labelled)} labelled rows; training needs at least 10")
    device = pick_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    labels = [e.label for e in labelled]
    if cfg.folds > 1:
        splits = stratified_kfold(labels, cfg.folds, cfg.seed)
        fold_dirs = [out / f"fold-{k + 1}" for k in range(cfg.folds)]
    else:
        splits, fold_dirs = [stratified_split(labels, cfg.val_fraction, cfg.seed)], [out]
    weights = dict(pretrained=pretrained, text_weights=text_weights, image_weights=image_weights)
    first = create_model(dataclasses.replace(model_cfg, fusion=fusions[0]), **weights)
    first.image_encoder.fixed_stages(cfg.image_train_stages)  # a bad stage count fails before any data work
    keep_tokens = any(FUSIONS[f].needs_tokens(model_cfg) for f in fusions)
    data = prepare(labelled, first, cfg, device, keep_tokens, image_weights_id(pretrained, image_weights))
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
            model = first or create_model(dataclasses.replace(model_cfg, fusion=name), **weights)
            first = None  # the model that prepared the data trains first, then fresh ones
            run_dir = base if len(fusions) == 1 else base / name
            if run_dir != base:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "split.csv").write_bytes((base / "split.csv").read_bytes())
            result = fit(model, fold_data, cfg, run_dir, device, source.data)
            fold_results.append(result | {"fold": fold if cfg.folds > 1 else None})
            del model
        if len(fusions) > 1:
            write_comparison(base, fold_results)
        results += fold_results
    if cfg.folds > 1:
        every_fold = results if not cfg.fold else finished_folds(fold_dirs, fusions)
        if every_fold:
            write_cv_summary(out, every_fold)
        else:  # a summary left by an earlier run describes other folds: never show it as this one's
            for name in ("cv.json", "cv.md", "cv.png"):
                (out / name).unlink(missing_ok=True)
            log.warning("trained fold %d of %d; cv.md is written when every fold folder has its metrics.json",
                        cfg.fold, cfg.folds)
    return results


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
