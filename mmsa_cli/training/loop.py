"""Fit one model: epochs over the training rows, validation after each, early stopping, the
best epoch's weights and metrics written to its run folder."""
from __future__ import annotations

import copy
import math
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import LABELS
from ..config import EncoderWeights, TrainConfig, save_json
from ..errors import ConfigError
from ..models import MultimodalModel
from ..progress import progress
from ..runs import save_weights, write_run_config
from .decision_rule import PREDICTIONS, write_validation_predictions
from .metrics import classification_metrics, plot_confusion_matrix, plot_training_curves
from .modality_dropout import draw_dropped
from .objectives import class_weights, optimizer, rdrop_penalty, training_loss, update_ema, warmup_then_linear_decay
from .prepared import Prepared, batch_inputs, batches


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_model(model: MultimodalModel, inputs: dict, device):
    """Logits and auxiliary logits of a batch prepared by batch_inputs."""
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
    for batch_idx, pixels in batches(model, data, idx, 64, shuffle=False, augment=False, cfg=cfg, epoch=0):
        every = torch.ones(len(batch_idx), dtype=torch.bool)
        dropped = (every & (missing == "text"), every & (missing == "image")) if missing else None
        logits, _ = run_model(model, batch_inputs(model, data, batch_idx, pixels, device, dropped), device)
        probs.append(logits.softmax(-1).cpu())
    return torch.cat(probs) if probs else torch.zeros((0, len(LABELS)))


def fixed_parts(model: MultimodalModel, cfg: TrainConfig) -> list[torch.nn.Module]:
    """Parts of trained encoders that stay fixed (--image-train-stages, --text-train-layers)."""
    return [*model.image_encoder.fixed_stages(cfg.image_train_stages),
            *model.text_encoder.fixed_parts(cfg.text_train_layers)]


def set_train_mode(model: MultimodalModel, frozen: Sequence[str], fixed: Sequence[torch.nn.Module]) -> None:
    model.train()
    # Frozen encoders (and fixed parts) stay in eval mode: no dropout, BatchNorm statistics untouched.
    if "text" in frozen:
        model.text_encoder.eval()
    if "image" in frozen:
        model.image_encoder.eval()
    for part in fixed:
        part.eval()


def fit(model: MultimodalModel, data: Prepared, cfg: TrainConfig, out: Path, device, data_name: str,
        weights: EncoderWeights | None = None) -> dict:
    """Train one model, keep the best validation epoch, write its run folder."""
    seed_everything(cfg.seed)
    write_run_config(out, model, cfg, data_name, weights or EncoderWeights())
    model.to(device)
    fixed = fixed_parts(model, cfg)
    opt, frozen = optimizer(model, cfg, fixed)
    ema = copy.deepcopy(model) if cfg.ema_decay else None  # validated and saved; training goes on with model
    steps_per_epoch = math.ceil(len(data.train_idx) / cfg.batch_size)
    sched = warmup_then_linear_decay(opt, steps_per_epoch * cfg.epochs, cfg.warmup_ratio)
    val_y = data.labels[data.val_idx]
    class_weight = class_weights(data.labels[data.train_idx], model.cfg.num_classes, cfg.class_weighting)
    class_weight = class_weight.to(device) if class_weight is not None else None
    history, best, bad_epochs = [], None, 0
    drop_generator = torch.Generator().manual_seed(cfg.seed)
    modality_dropout = cfg.modality_dropout if (model.uses_text and model.uses_image) else 0.0
    name = model.cfg.fusion
    # In a log (not a terminal) each epoch prints its own line below: the bar prints none.
    epochs = progress(range(1, cfg.epochs + 1), desc=f"{name}", unit="epoch", every_s=math.inf)
    for epoch in epochs:
        set_train_mode(model, frozen, fixed)
        seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
        steps = progress(batches(model, data, data.train_idx, cfg.batch_size, shuffle=True,
                                 augment="image" not in frozen, cfg=cfg, epoch=epoch),
                         total=steps_per_epoch, desc=f"  epoch {epoch}", leave=False, unit="step")
        for idx, pixels in steps:
            y = data.labels[idx].to(device)
            dropped = draw_dropped(len(idx), modality_dropout, drop_generator) if modality_dropout else None
            inputs = batch_inputs(model, data, idx, pixels, device, dropped)
            logits, aux = run_model(model, inputs, device)
            loss = training_loss(logits, aux, y, cfg, class_weight)
            if cfg.rdrop_alpha:  # a second pass over the same inputs, other dropout masks
                logits_b, aux_b = run_model(model, inputs, device)
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
            best, bad_epochs = {"epoch": epoch, "metrics": val, "val_loss": val_loss, "probs": probs}, 0
            save_weights(out, evaluated)
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    result = {"fusion": name, "best_epoch": best["epoch"], "epochs_run": len(history),
              "validation": best["metrics"], "history": history,
              "train_rows": len(data.train_idx), "val_rows": len(data.val_idx), "skipped_rows": len(data.skipped)}
    save_json(out / "metrics.json", result)
    write_validation_predictions(out / PREDICTIONS, [data.examples[i].guid for i in data.val_idx], val_y.tolist(),
                                 best["probs"].numpy())
    title = f"{name}: validation accuracy {best['metrics']['accuracy']:.3f} (epoch {best['epoch']})"
    plot_confusion_matrix(best["metrics"]["confusion_matrix"], out / "confusion_matrix.png", title)
    plot_training_curves(history, out / "curves.png", name, best_epoch=best["epoch"])
    return result
