"""The decision rule (mmsa_cli/contract/decision.py) on CV runs' out-of-fold predictions:
per-class log-prior offsets, label = argmax(log p + b), estimated by nested CV (offsets fitted
on four folds' out-of-fold rows, judged on the fifth) for each metric they can maximise,
against the arg-max on the same rows.

Out-of-fold probabilities come from each fold's validation_predictions.csv when the run wrote
one (`mmsa train` does since the rule exists), else by rebuilding each fold's model as
benchmarks/cv_ensemble.py does (it checks each reproduces its recorded accuracy). With several
runs, their mean is scored too (the bagging estimate) on the first run's folds; with two, also
their weighted mean, the weight fitted for accuracy by the same nested CV (a row per metric).

--save-rule writes decision_rule.json (fitted on every out-of-fold row, --metric) into the
first run's folder, as `mmsa train --decision-rule offsets` would have: `mmsa export` then
carries it into the model.

    python benchmarks/decision_rule.py ../shared/data/mvsa-single runs/cv5-best --feature-cache runs/feature-cache \
        --out benchmarks/results/mvsa_single_cv5_best_decision_rule.json [--save-rule --metric macro_f1]
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cv_ensemble import ENSEMBLE, fold_dirs, out_of_fold, parse_runs_args  # noqa: E402
from mmsa_cli import LABELS  # noqa: E402
from mmsa_cli.contract.decision import (METRICS, decide_labels, held_out, label_metrics, nested_cv,  # noqa: E402
                                        summarise)
from mmsa_cli.training.decision_rule import PREDICTIONS, RULE_FILE, fit_rule, read_out_of_fold  # noqa: E402


def run_out_of_fold(run: Path, labelled, index_of, feature_cache, prepared, device) -> tuple[np.ndarray, list[list[int]]]:
    """[rows, classes] in the order of the labelled examples (NaN where no fold validated the
    row), and each fold's rows."""
    folds = fold_dirs(run)
    if all((f / PREDICTIONS).is_file() for f in folds):
        probs, _, fold_rows, guids = read_out_of_fold(folds)
        order = [index_of[g] for g in guids]
        full = np.full((len(labelled), len(LABELS)), np.nan)
        full[order] = probs
        return full, [[order[i] for i in rows] for rows in fold_rows]
    probs, fold_rows = out_of_fold(run, labelled, index_of, feature_cache, prepared, device)
    return probs.numpy().astype(np.float64), fold_rows


def nested_weight(first: np.ndarray, second: np.ndarray, labels: np.ndarray, folds: list[list[int]]) -> dict:
    """w * first + (1 - w) * second, w in 0, 0.05 .. 1 fitted for accuracy on the other folds'
    rows, judged on each fold's: does weighing two runs beat their plain mean?"""
    weights = np.linspace(0, 1, 21)
    per_fold, fitted = [], []
    mixed = lambda w, idx: w * first[idx] + (1 - w) * second[idx]  # noqa: E731
    for rows, rest in held_out(folds):
        w = max(weights, key=lambda w: (decide_labels(mixed(w, rest)) == labels[rest]).mean())
        per_fold.append(label_metrics(labels[rows], decide_labels(mixed(w, rows)), len(LABELS)))
        fitted.append(round(float(w), 2))
    return {"weight_of_first_per_fold": fitted, "after": summarise(per_fold)}


def row(name: str, summary: dict) -> dict:
    """One row in the layout of cv.json (what ideas_plot.py reads), plus per-class F1."""
    out = {"name": name, "fusion": name, "folds": len(summary["per_fold"])}
    for m in METRICS:
        out[m], out[f"{m}_std"] = summary[m], summary[f"{m}_std"]
        out[f"{m}_per_fold"] = [round(f[m], 4) for f in summary["per_fold"]]
    out["f1_per_class"] = dict(zip(LABELS, summary["f1_per_class"]))
    return out


def main() -> None:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--save-rule", action="store_true")
    extra.add_argument("--metric", default="macro_f1", choices=METRICS)
    command = " ".join(["python", *sys.argv])
    opts, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]  # the rest is the command line shared with cv_ensemble.py
    args, labelled, index_of, device = parse_runs_args(__doc__)
    labels = np.array([e.label for e in labelled])
    prepared, oof, first_folds = {}, {}, None
    for run in args.runs:
        oof[str(run)], folds = run_out_of_fold(run, labelled, index_of, args.feature_cache, prepared, device)
        first_folds = first_folds or folds
    if len(oof) > 1:
        oof[ENSEMBLE] = np.mean(list(oof.values()), axis=0)
    covered = ~np.any([np.isnan(p).any(1) for p in oof.values()], axis=0)
    folds = [[i for i in rows if covered[i]] for rows in first_folds]

    rows, details = [], {}
    for name, probs in oof.items():
        for metric in METRICS:
            nested = nested_cv(probs, labels, folds, metric)
            details[f"{name} / {metric}"] = nested
            if metric == METRICS[0]:
                rows.append(row(f"{name}: arg-max", nested["before"]))
            rows.append(row(f"{name}: offsets for {metric}", nested["after"]))
    if len(args.runs) == 2:
        first, second = (oof[str(r)] for r in args.runs)
        weighted = nested_weight(first, second, labels, folds)
        details["weighted mean / accuracy"] = weighted
        rows.append(row(f"{ENSEMBLE}, weight fitted for accuracy", weighted["after"]))
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU",
              "command": command, "rows": rows, "nested_cv": details}
    if opts.save_rule:
        rule = fit_rule(oof[str(args.runs[0])], labels, folds, opts.metric)
        (args.runs[0] / RULE_FILE).write_text(json.dumps(rule, indent=2) + "\n")
        result["saved_rule"] = {"run": str(args.runs[0]), "metric": opts.metric, "offsets": rule["offsets"]}
        print(f"wrote {args.runs[0] / RULE_FILE}: offsets {rule['offsets']}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['name']}: " + ", ".join(f"{m} {100 * r[m]:.2f} ± {100 * r[m + '_std']:.2f}" for m in METRICS)
              + " | F1 " + ", ".join(f"{k} {100 * v:.1f}" for k, v in r["f1_per_class"].items()))


if __name__ == "__main__":
    main()
