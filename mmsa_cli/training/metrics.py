"""The PNGs people look at: confusion matrices, training curves, comparisons. The metrics
themselves are the contract's (contract/metrics.py), shared with `mmsa evaluate`."""
from __future__ import annotations

from pathlib import Path
import numpy as np

from .. import LABELS
from ..contract.metrics import classification_metrics  # noqa: F401  (re-exported)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window (cron, CI)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: list[list[int]], path: Path, title: str) -> None:
    """Counts beside the row-normalised view (each true class's share per prediction): with a
    10% neutral class, counts alone hide how much of it is missed."""
    plt = _pyplot()
    m = np.asarray(matrix)
    shares = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 4))
    for ax, values, text, subtitle in ((axes[0], m, lambda v: str(v), "counts"),
                                       (axes[1], shares, lambda v: f"{100 * v:.0f}%", "share of each true class")):
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(subtitle, fontsize=9)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                dark = values[i, j] > values.max() / 2
                ax.text(j, i, text(values[i, j]), ha="center", va="center", color="white" if dark else "black")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(history: list[dict], path: Path, title: str, best_epoch: int | None = None) -> None:
    """Loss and accuracy per epoch; the kept (best validation) epoch is marked on both."""
    fig = training_curves_figure(history, title, best_epoch)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def training_curves_figure(history: list[dict], title: str, best_epoch: int | None = None):
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, ylabel in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


BAR_METRICS = (("accuracy", "accuracy"), ("weighted_f1", "weighted F1"))


def plot_comparison(rows: list[dict], path: Path, title: str, reference: dict[str, float] | None = None,
                    goals: dict[str, float] | None = None,
                    metrics: tuple[tuple[str, str], ...] = BAR_METRICS) -> None:
    """Bar chart of `metrics` per model (by default accuracy and weighted F1; rows: name, the metrics, and
    for cross-validation `<metric>_std`, drawn as error bars). `reference`: a mark per model
    (the paper's accuracy); `goals`: a horizontal line per metric label, e.g. {"accuracy": 78}.
    Many rows (an ideas table) are drawn as horizontal bars, so long labels stay readable."""
    plt = _pyplot()
    names = [r["name"] for r in rows]
    horizontal = len(rows) > 8
    x = np.arange(len(rows))
    size = (9, 1.5 + 0.2 * len(metrics) * len(rows)) if horizontal else (max(6.5, 1.1 * len(rows)), 4.4)
    fig, ax = plt.subplots(figsize=size)
    bar = ax.barh if horizontal else ax.bar
    width = 0.8 / len(metrics)
    for k, (key, label) in enumerate(metrics):
        values = [100 * r[key] for r in rows]
        spread = [100 * r[f"{key}_std"] for r in rows] if all(f"{key}_std" in r for r in rows) else None
        offset = (k - (len(metrics) - 1) / 2) * width
        errors = {"xerr" if horizontal else "yerr": spread} if spread else {}
        bar(x + offset, values, width, label=label + (" (± std)" if spread else ""), capsize=3, **errors)
    if reference:
        ref = [(xi - 0.4 + width / 2, reference[n]) for xi, n in zip(x, names) if reference.get(n) is not None]
        pos, val = zip(*ref) if ref else ((), ())
        ax.scatter(val if horizontal else pos, pos if horizontal else val, marker="|" if horizontal else "_",
                   s=400, color="black", label="paper accuracy", zorder=3)
    line = ax.axvline if horizontal else ax.axhline
    for (label, value), style in zip((goals or {}).items(), ("-", "--", ":")):
        line(value, color="crimson", linestyle=style, linewidth=1.2, label=f"goal: {value:g} {label}")
    lo = min(100 * r[key] for r in rows for key, _ in metrics)
    limits = (max(0, lo - 10), 100)
    if horizontal:
        ax.set_yticks(x, names, fontsize=8)
        ax.invert_yaxis()  # the table's first row on top
        ax.set_xlim(*limits)
        ax.set_xlabel("%")
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylim(*limits)
        ax.set_ylabel("%")
    # Outside the axes: inside, it covered bars.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps the legend outside the axes in the file
    plt.close(fig)
