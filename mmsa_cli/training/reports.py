"""Reports over several trained models: the Table-4-style comparison of fusions trained on one
split (comparison.{md,json,png}) and the cross-validation summary (cv.{md,json,png})."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import save_json
from ..models import report_name
from .metrics import plot_comparison

PAPER_ACCURACY = {"BERT": 70.5, "ResNet": 65.75, "CMAC": 73.13, "HSTEC": 71.75, "OTE": 74.5,
                  "NaiveCat": 70.5, "NaiveCombine": 71.5}  # Table 4, MVSA-Single
METRICS_REPORTED = ("accuracy", "weighted_f1", "macro_f1")


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
    plot_split_comparison(rows, out / "comparison.png", results[0]["val_rows"])


def plot_split_comparison(rows: list[dict], path: Path, val_rows: int) -> None:
    """The comparison chart of fusions validated on one split of val_rows rows."""
    plot_comparison(rows, path, f"validation, {val_rows} rows", reference=PAPER_ACCURACY)


def plot_cv_summary(rows: list[dict], path: Path) -> None:
    """The cross-validation chart: mean and standard deviation over folds, per fusion."""
    plot_comparison(rows, path, f"{rows[0]['folds']}-fold cross-validation (mean ± std)", reference=PAPER_ACCURACY)


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
    plot_cv_summary(rows, out / "cv.png")
