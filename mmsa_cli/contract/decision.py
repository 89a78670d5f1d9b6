"""The decision rule: which label a row gets from its probabilities, for every consumer alike
(`mmsa score`, `mmsa predict`, export parity, `mmsa train`'s report).

    label = argmax_c (log p_c + b_c)          b = 0: the plain arg-max

b are per-class log-prior offsets. A model trained under class imbalance (MVSA-Single: 10%
neutral) puts too little probability on the small classes, so its arg-max under-predicts
them; adding b_c to log p_c is the Bayes correction for a shifted class prior, and the
offsets that maximise a chosen metric are fitted on out-of-fold predictions of a
cross-validation run (`fit_offsets`), never on the rows they are judged on (`nested_cv`).
The probabilities themselves are never changed: they stay the model's (calibrated as
trained); the offsets choose the label only.

The rule a CV run fitted is its decision_rule.json (`load_decision_rule`), which export
carries into the manifest and `mmsa evaluate`/`predict` apply to a run's model.

numpy only: the scoring install has neither torch nor scikit-learn.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import LABELS
from ..errors import FolderError

METRICS = ("accuracy", "weighted_f1", "macro_f1")
RULE_FILE = "decision_rule.json"      # in a CV run folder (mmsa_cli/training/decision_rule.py writes it)
# Offsets tried per class: +-2 in log-probability is a prior shift of e^2 = 7x, far more than
# any sensible correction; 0.05 steps are finer than the metric can tell apart on 800 rows.
GRID = np.round(np.arange(-2.0, 2.0 + 1e-9, 0.05), 2)


def decide_labels(probs: np.ndarray, offsets: Sequence[float] | None = None) -> np.ndarray:
    """Label index per row of probs [N, C]; no offsets (or all zero) is exactly probs.argmax(1)."""
    probs = np.asarray(probs)
    if offsets is None or len(offsets) == 0 or not np.any(offsets):
        return probs.argmax(axis=1)
    if len(offsets) != probs.shape[1]:
        raise ValueError(f"{len(offsets)} decision offsets for {probs.shape[1]} classes")
    with np.errstate(divide="ignore"):  # p = 0 -> -inf: that class is never chosen, as by arg-max
        return (np.log(probs.astype(np.float64)) + np.asarray(offsets, np.float64)).argmax(axis=1)


def label_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """accuracy, weighted and macro F1, and F1 per class (the same figures as scikit-learn's,
    zero_division=0; tests/test_decision.py checks)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    confusion = np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, -1)
    tp = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(num_classes), where=(support + predicted) > 0)
    return {"accuracy": float(tp.sum() / max(1, len(y_true))),
            "weighted_f1": float((f1 * support).sum() / max(1, support.sum())),
            "macro_f1": float(f1.mean()), "f1_per_class": f1.tolist()}


def fit_offsets(probs: np.ndarray, labels: Sequence[int], metric: str = "macro_f1", grid: np.ndarray = GRID,
                rounds: int = 5) -> list[float]:
    """Offsets maximising `metric` of decide_labels(probs, b) against labels, by coordinate
    search over `grid` (b of the first class stays 0: only differences matter). Where several
    values tie, the middle of the tied ones is kept, away from the edge of what fits these
    rows. Stops when a round changes nothing."""
    if metric not in METRICS:
        raise ValueError(f"decision metric '{metric}' is not one of {', '.join(METRICS)}")
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    num_classes = probs.shape[1]
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    offsets = np.zeros(num_classes)
    for _ in range(rounds):
        before = offsets.copy()
        for c in range(1, num_classes):
            scores = []
            for value in grid:
                offsets[c] = value
                scores.append(label_metrics(labels, (log_probs + offsets).argmax(1), num_classes)[metric])
            scores = np.asarray(scores)
            tied = grid[np.flatnonzero(scores >= scores.max() - 1e-12)]
            offsets[c] = tied[len(tied) // 2]
        if np.array_equal(offsets, before):
            break
    return [float(b) for b in offsets]


def held_out(folds: Sequence[Sequence[int]]):
    """(this fold's rows, the other folds' rows) for each fold, as index arrays: what nested CV
    judges on and what it fits on."""
    for k, rows in enumerate(folds):
        yield (np.asarray(rows, int),
               np.concatenate([np.asarray(f, int) for j, f in enumerate(folds) if j != k]))


def nested_cv(probs: np.ndarray, labels: Sequence[int], folds: Sequence[Sequence[int]],
              metric: str = "macro_f1") -> dict:
    """An honest estimate of the rule: for each fold, offsets fitted on the other folds'
    out-of-fold rows and judged on this fold's, against the arg-max on the same rows.
    Returns per-fold metrics "before" (arg-max) and "after" (the rule), their mean and
    standard deviation over folds, and each fold's offsets."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    num_classes = probs.shape[1]
    before, after, fitted = [], [], []
    for rows, rest in held_out(folds):
        offsets = fit_offsets(probs[rest], labels[rest], metric)
        before.append(label_metrics(labels[rows], decide_labels(probs[rows]), num_classes))
        after.append(label_metrics(labels[rows], decide_labels(probs[rows], offsets), num_classes))
        fitted.append(offsets)
    return {"metric": metric, "folds": len(folds), "offsets_per_fold": fitted,
            "before": summarise(before), "after": summarise(after)}


def summarise(per_fold: list[dict]) -> dict:
    """Mean and standard deviation (ddof 1, as cv.md) over folds of label_metrics results."""
    out: dict = {"per_fold": per_fold}
    for m in METRICS:
        values = np.array([f[m] for f in per_fold])
        out[m], out[f"{m}_std"] = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["f1_per_class"] = np.mean([f["f1_per_class"] for f in per_fold], axis=0).tolist()
    return out


def load_decision_rule(run_dir: Path) -> dict | None:
    """A CV run folder's fitted rule (decision_rule.json), or None when it has none."""
    path = Path(run_dir) / RULE_FILE
    if not path.is_file():
        return None
    rule = json.loads(path.read_text())
    if rule.get("labels") != list(LABELS) or len(rule.get("offsets", [])) != len(LABELS):
        raise FolderError(f"{path} is for labels {rule.get('labels')}, not {list(LABELS)}")
    return rule


def run_decision_rule(run_dir: Path) -> dict | None:
    """The rule that applies to a run folder's model: its own, or, for a fold of a CV run
    (fold-K), the CV run's, as export carries it."""
    folder = Path(run_dir)
    return load_decision_rule(folder) or (load_decision_rule(folder.parent) if folder.name.startswith("fold-")
                                          else None)
