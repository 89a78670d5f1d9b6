"""`mmsa train --folds K --decision-rule offsets`: fit the decision rule (contract/decision.py)
on the out-of-fold predictions, i.e. each fold model's probabilities for its own validation
rows (validation_predictions.csv, written by every run), estimate it honestly by nested CV,
and write decision_rule.json (what `mmsa export` carries into the manifest) and its section
of cv.md: before/after, per class.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .. import LABELS
from ..contract.decision import METRICS, RULE_FILE, fit_offsets, load_decision_rule, nested_cv  # noqa: F401
from ..errors import FolderError

PREDICTIONS = "validation_predictions.csv"


def write_validation_predictions(path: Path, guids: Sequence[str], labels: Sequence[int], probs: np.ndarray) -> None:
    """The kept epoch's probabilities for the validation rows: what the rule is fitted on."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["guid", "label", *(f"prob_{name}" for name in LABELS)])
        for guid, label, p in zip(guids, labels, np.asarray(probs)):
            out.writerow([guid, LABELS[label], *(f"{v:.8f}" for v in p)])


class OutOfFold(NamedTuple):
    probs: np.ndarray          # [N, C]
    labels: np.ndarray         # [N]
    folds: list[list[int]]     # each fold's rows
    guids: list[str]           # [N]


def read_out_of_fold(fold_dirs: Sequence[Path]) -> OutOfFold:
    """Every fold's validation predictions stacked."""
    probs, labels, folds, guids = [], [], [], []
    for fold in fold_dirs:
        path = fold / PREDICTIONS
        if not path.is_file():
            raise FolderError(f"{path} is missing: the fold was trained by an mmsa that did not write it; "
                              f"fit the rule with benchmarks/decision_rule.py instead")
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        folds.append(list(range(len(labels), len(labels) + len(rows))))
        guids += [r["guid"] for r in rows]
        labels += [LABELS.index(r["label"]) for r in rows]
        probs += [[float(r[f"prob_{name}"]) for name in LABELS] for r in rows]
    return OutOfFold(np.array(probs), np.array(labels), folds, guids)


def fit_rule(probs: np.ndarray, labels: np.ndarray, folds: Sequence[Sequence[int]], metric: str) -> dict:
    """The offsets to use (fitted on every out-of-fold row) and their nested-CV estimate."""
    return {"rule": "offsets", "labels": list(LABELS), "metric": metric,
            "offsets": fit_offsets(probs, labels, metric), "fitted_on_rows": int(len(labels)),
            "nested_cv": nested_cv(probs, labels, folds, metric)}


def write_decision_rule(out: Path, fold_dirs: Sequence[Path], metric: str) -> dict:
    oof = read_out_of_fold(fold_dirs)
    rule = fit_rule(oof.probs, oof.labels, oof.folds, metric)
    (out / RULE_FILE).write_text(json.dumps(rule, indent=2) + "\n")
    with (out / "cv.md").open("a") as fh:
        fh.write("\n" + rule_markdown(rule))
    return rule


def rule_markdown(rule: dict) -> str:
    """cv.md's section: the offsets, and the nested-CV estimate before/after, per class."""
    nested = rule["nested_cv"]
    offsets = ", ".join(f"{name} {b:+.2f}" for name, b in zip(rule["labels"], rule["offsets"]))
    lines = [f"Decision rule (`--decision-rule offsets`, maximising {rule['metric']}): label = argmax(log p + b), "
             f"b = {offsets}, fitted on {rule['fitted_on_rows']} out-of-fold rows. Nested CV (offsets fitted on "
             f"the other folds' rows, judged on each fold's):", "",
             "| labels by | accuracy | weighted F1 | macro F1 | " + " | ".join(f"F1 {n}" for n in rule["labels"]) + " |",
             "|---|---|---|---|" + "---|" * len(rule["labels"])]
    for name, key in (("arg-max", "before"), ("decision rule", "after")):
        s = nested[key]
        cells = " | ".join(f"{100 * s[m]:.2f} ± {100 * s[m + '_std']:.2f}" for m in METRICS)
        lines.append(f"| {name} | {cells} | " + " | ".join(f"{100 * f:.2f}" for f in s["f1_per_class"]) + " |")
    return "\n".join(lines) + "\n"
