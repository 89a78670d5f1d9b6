"""How well a trained model predicts rows with one modality missing, the way `mmsa score`
presents them: an unusable image as the blank (mean) image, a null or empty text as the empty
text. For each fold of a CV run, its validation rows are predicted three times (as they are,
every image blanked, every text emptied), and the rebuilt model must first reproduce its
recorded validation accuracy.

    python benchmarks/missing_modality.py ../shared/data/mvsa-single runs/cv5-best-gb18030 \
        --feature-cache runs/feature-cache --out benchmarks/results/mvsa_single_cv5_best_missing_modality.json
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cv_ensemble import check_recorded, fold_dirs, parse_runs_args, predict_fold  # noqa: E402
from mmsa_cli.contract.metrics import classification_metrics  # noqa: E402
from mmsa_cli.training.reports import METRICS_REPORTED, cv_summary  # noqa: E402

CASES = {"": "both modalities", "image": "image blanked (text only)", "text": "text emptied (image only)"}


def main() -> None:
    args, labelled, index_of, device = parse_runs_args(__doc__)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU",
              "command": " ".join(["python", *sys.argv]), "runs": {}}
    prepared: dict = {}
    for run in args.runs:
        per_case = []
        for k, fold in enumerate(fold_dirs(run), 1):
            _, per_case_probs, y = predict_fold(fold, labelled, index_of, args.feature_cache, prepared, device,
                                                missing=list(CASES))
            for (missing, name), probs in zip(CASES.items(), per_case_probs):
                m = classification_metrics(y, probs.argmax(-1).tolist())
                if not missing:
                    check_recorded(fold, m)
                per_case.append({"fusion": name, "validation": m})
                print(f"{run.name} fold {k}, {name}: accuracy {m['accuracy']:.4f}", flush=True)
        rows = cv_summary(per_case)
        result["runs"][str(run)] = rows
        for row in rows:
            print(f"{run.name}, {row['name']}: "
                  + ", ".join(f"{x} {100 * row[x]:.2f} ± {100 * row[x + '_std']:.2f}" for x in METRICS_REPORTED))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
