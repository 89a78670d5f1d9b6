"""Cross-validated accuracy of averaging several CV runs' models (issue 5's ensemble question).

For every run and fold this rebuilds the fold's model from its folder and predicts the fold's
validation rows (split.csv), so each labelled row gets, from every run, the probabilities of the
model that did not train on it. Each run alone, and the mean of the runs' probabilities, are
then scored on the first run's folds (mean ± std, as `mmsa train --folds` reports). Each fold
model must reproduce its recorded validation accuracy: the script checks it, so the figures are
comparable. Runs trained with the same --folds and --seed share their folds (the mean is then a
per-fold ensemble); runs with another --seed have other folds, and the mean estimates bagging:
models trained on different subsets of the rows, none of which saw the row it predicts.

Frozen image features come from the training feature cache (--feature-cache), so only the
text side runs here: two 5-fold runs (10 models) take 2 min on the 2-core CPU (6 min while a
training run shared it).

    python benchmarks/cv_ensemble.py ../shared/data/mvsa-single runs/cv5-best-gb18030 runs/cv5-best-ls01 \
        --feature-cache runs/feature-cache --out benchmarks/results/mvsa_single_cv5_ensemble_of_runs.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_cli import LABELS  # noqa: E402
from mmsa_cli.data import load_examples, read_split  # noqa: E402
from mmsa_cli.contract.metrics import classification_metrics  # noqa: E402
from mmsa_cli.models import FUSIONS  # noqa: E402
from mmsa_cli.runs import fold_folders, load_run  # noqa: E402
from mmsa_cli.training.loop import predict_indices  # noqa: E402
from mmsa_cli.training.prepared import image_weights_id, prepare, with_split  # noqa: E402
from mmsa_cli.training.reports import METRICS_REPORTED, cv_summary  # noqa: E402

ENSEMBLE = "mean of probabilities"


def fold_dirs(run: Path) -> list[Path]:
    folds = fold_folders(run)
    if not folds:
        sys.exit(f"{run} has no fold-K folders: train it with --folds")
    return folds


def val_indices(split_csv: Path, index_of: dict[str, int]) -> list[int]:
    return [index_of[guid] for guid, part in read_split(split_csv).items() if part == "val"]


def predict_fold(fold: Path, labelled: list, index_of: dict[str, int], feature_cache: str, prepared: dict,
                 device, missing: Sequence[str] = ("",)) -> tuple[list[int], list[torch.Tensor], list[int]]:
    """Rebuild one fold's model from its folder (once) and predict its validation rows once per
    entry of missing ("" as they are; "image" or "text" blanks that modality, as scoring does):
    (rows, probabilities per entry, labels). prepared caches tokens and frozen image features
    across folds and runs of one encoder."""
    val_idx = val_indices(fold / "split.csv", index_of)
    loaded = load_run(fold)
    cfg = dataclasses.replace(loaded.train_cfg, feature_cache=feature_cache or loaded.train_cfg.feature_cache)
    key = (loaded.model_cfg.text_encoder, loaded.model_cfg.text_normalization, loaded.model_cfg.max_length)
    if key not in prepared:  # tokens and cached image features are the same for every fold
        keep_tokens = FUSIONS[loaded.model_cfg.fusion].needs_tokens(loaded.model_cfg)
        prepared[key] = prepare(labelled, loaded.model, cfg, device, keep_tokens, image_weights_id(True, None))
    data = with_split(prepared[key], [], val_idx, cfg)
    if data.val_idx != val_idx:
        sys.exit(f"{fold}: some validation images are unreadable; this script needs all of them")
    model = loaded.model.to(device)
    probs = [predict_indices(model, data, val_idx, cfg, device, missing=m) for m in missing]
    return val_idx, probs, prepared[key].labels[val_idx].tolist()


def check_recorded(fold: Path, metrics: dict) -> None:
    """The rebuilt model must score what its run recorded, or figures here are not comparable."""
    recorded = json.loads((fold / "metrics.json").read_text())["validation"]["accuracy"]
    if abs(metrics["accuracy"] - recorded) > 1e-9:
        sys.exit(f"{fold}: rebuilt model scores {metrics['accuracy']:.4f}, its run recorded {recorded:.4f}")


def parse_runs_args(description: str):
    """The command line shared by the scripts that re-predict CV runs' folds: (args, the labelled
    examples, guid -> their index, device)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="MVSA-Single folder the runs were trained on")
    ap.add_argument("runs", nargs="+", type=Path, help="CV run folders")
    ap.add_argument("--feature-cache", default="", help="the runs' --feature-cache folder")
    ap.add_argument("--out", type=Path, required=True, help="JSON to write")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    labelled = [e for e in load_examples(args.data) if e.label is not None]
    return args, labelled, {e.guid: i for i, e in enumerate(labelled)}, torch.device("cpu")


def out_of_fold(run: Path, labelled: list, index_of: dict[str, int], feature_cache: str, prepared: dict,
                device) -> tuple[torch.Tensor, list[list[int]]]:
    """Every labelled row's probabilities from the one fold model of `run` that did not train
    on it ([rows, classes]; NaN where no fold validated the row), and the rows of each fold."""
    probs, fold_rows = torch.full((len(labelled), len(LABELS)), float("nan")), []
    for fold in fold_dirs(run):
        val_idx, [p], y = predict_fold(fold, labelled, index_of, feature_cache, prepared, device)
        m = classification_metrics(y, p.argmax(-1).tolist())
        check_recorded(fold, m)
        probs[val_idx] = p
        fold_rows.append(val_idx)
        print(f"{run.name} {fold.name}: {m['accuracy']:.4f}", flush=True)
    return probs, fold_rows


def main() -> None:
    args, labelled, index_of, device = parse_runs_args(__doc__)
    labels = torch.tensor([e.label for e in labelled])  # indices into LABELS
    prepared, oof, first_folds = {}, {}, None
    for run in args.runs:
        oof[str(run)], fold_rows = out_of_fold(run, labelled, index_of, args.feature_cache, prepared, device)
        if first_folds is None:
            first_folds = fold_rows
        elif sorted(map(sorted, fold_rows)) != sorted(map(sorted, first_folds)):
            print(f"{run} has other folds than {args.runs[0]}: each row is averaged over models that did "
                  f"not train on it (bagging over different training sets)", flush=True)
    covered = ~torch.stack([p.isnan().any(-1) for p in oof.values()]).any(0)
    rows_used = [[i for i in rows if covered[i]] for rows in first_folds]
    if sum(map(len, rows_used)) < len(labelled):
        print(f"{len(labelled) - sum(map(len, rows_used))} rows lack a prediction from some run and are left out")
    oof[ENSEMBLE] = torch.stack(list(oof.values())).mean(0)

    # Every run and their mean scored on the first run's folds: one row each, in the layout of
    # `mmsa train --folds`' cv.json, so the per-fold spread is comparable with the runs' own.
    per_fold = [{"fusion": name, "validation": classification_metrics(labels[rows].tolist(), p[rows].argmax(-1).tolist())}
                for name, p in oof.items() for rows in rows_used]
    rows = cv_summary(per_fold)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU",
              "command": " ".join(["python", *sys.argv]), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['name']}: " + ", ".join(f"{x} {100 * row[x]:.2f} ± {100 * row[x + '_std']:.2f}" for x in METRICS_REPORTED))


if __name__ == "__main__":
    main()
