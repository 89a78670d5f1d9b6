"""What training minimises and how the weights move: the loss (class weights, label smoothing,
auxiliary losses, R-Drop), the optimizer groups (layer-wise learning rates) and the EMA."""
from __future__ import annotations

import itertools
from typing import Sequence

import torch
import torch.nn.functional as F

from ..config import CLASS_WEIGHTINGS, TrainConfig
from ..errors import ConfigError
from ..models import MultimodalModel

FROZEN_ENCODERS = {"none": (), "text": ("text",), "image": ("image",), "both": ("text", "image")}


def optimizer(model: MultimodalModel, cfg: TrainConfig, fixed: Sequence[torch.nn.Module]):
    """AdamW over what learns, and the names of the frozen encoders ("text", "image")."""
    frozen = FROZEN_ENCODERS[cfg.freeze]
    model.text_encoder.requires_grad_("text" not in frozen and model.uses_text)
    model.image_encoder.requires_grad_("image" not in frozen and model.uses_image)
    for part in fixed:
        part.requires_grad_(False)
    groups = [{"params": list(model.fusion.parameters()), "lr": cfg.head_lr}]
    groups += layerwise_lr_groups(model.text_encoder, model.text_encoder.layers(), cfg.lr, cfg.layer_lr_decay)
    groups += layerwise_lr_groups(model.image_encoder, model.image_encoder.stages(), cfg.lr, cfg.layer_lr_decay)
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay), frozen


def warmup_then_linear_decay(opt: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    warmup = int(warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, (total_steps - s) / max(1, total_steps - warmup)))


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
