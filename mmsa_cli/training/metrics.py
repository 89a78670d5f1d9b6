"""Classification metrics (the paper's Table 4 columns) and the PNGs people look at."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .. import LABELS


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(LABELS)))
    out = {"n": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                        for i, name in enumerate(LABELS)}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()  # rows = true
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window (cron, CI)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: list[list[int]], path: Path, title: str) -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(history: list[dict], path: Path, title: str) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax2.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(rows: list[dict], path: Path, title: str, reference: dict[str, float] | None = None) -> None:
    """Bar chart of accuracy and weighted F1 per model (rows: name, accuracy, weighted_f1)."""
    plt = _pyplot()
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    ax.bar(x - 0.2, [100 * r["accuracy"] for r in rows], 0.4, label="accuracy")
    ax.bar(x + 0.2, [100 * r["weighted_f1"] for r in rows], 0.4, label="weighted F1")
    if reference:
        ref = [reference.get(n) for n in names]
        ax.scatter([xi - 0.2 for xi, v in zip(x, ref) if v is not None], [v for v in ref if v is not None],
                   marker="_", s=400, color="black", label="paper accuracy", zorder=3)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("%")
    lo = min(100 * min(r["weighted_f1"], r["accuracy"]) for r in rows)
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend(loc="upper left", ncol=3, fontsize=8)  # bars stop well below 100: room above
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
