"""Table 4 on MVSA-Single: train the seven models on one split, compare, and write the
511 test predictions of the best one.

    python benchmarks/mvsa_single.py ../shared/data/mvsa-single --out runs/mvsa-all [-- extra mmsa train flags]
    python benchmarks/mvsa_single.py ../shared/data/mvsa-single --predict-run runs/best   # predictions only
    python benchmarks/mvsa_single.py ../shared/data/mvsa-single --predict-model models/best  # with `mmsa score`

Writes benchmarks/results/mvsa_single_table4.{md,json,png} (copied from the run's
comparison) and benchmarks/results/mvsa_single_test_predictions.csv from the best model
(on this run's validation split, or by a cross-validation summary given with --choose-by)
(guid,label,prob_positive,prob_neutral,prob_negative). With --predict-run, only the
predictions file, from that run folder (any `mmsa train` run, e.g. `--recipe best`). With
--predict-model, only the predictions file, from an exported model folder (`mmsa export`, e.g. a
CV run's folds averaged with `--fold all`) through `mmsa score`. The dataset is read from the
path given; nothing of it is copied into the repository.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MMSA = [sys.executable, "-m", "mmsa_cli.cli"]  # this interpreter's mmsa, installed or not (the GPU box)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="MVSA-Single folder (data/, train.txt, test_without_label.txt)")
    parser.add_argument("--out", type=Path, default=Path("runs/mvsa-all"), help="run folder")
    parser.add_argument("--skip-train", action="store_true", help="reuse an existing --out run")
    parser.add_argument("--choose-by", type=Path, default=None,
                        help="a cv.json from `mmsa train --folds K`: predict with its best model by mean accuracy "
                             "[default: the best on this run's validation split]")
    parser.add_argument("--predict-run", type=Path, default=None,
                        help="only write the test predictions, from this single-model run folder")
    parser.add_argument("--predict-model", type=Path, default=None,
                        help="only write the test predictions, by `mmsa score` with this exported model folder")
    parser.add_argument("--predictions-out", type=Path, default=RESULTS / "mvsa_single_test_predictions.csv",
                        help="where the test predictions go [benchmarks/results/mvsa_single_test_predictions.csv]")
    parser.add_argument("train_args", nargs="*", help="extra `mmsa train` flags (after --)")
    args = parser.parse_args()

    if args.predict_run:
        write_test_predictions(args.data, args.predict_run, None, args.predict_run / "test_predictions_full.csv",
                               args.predictions_out)
        return
    if args.predict_model:
        score_test_predictions(args.data, args.predict_model, args.predictions_out)
        return
    if not args.skip_train:
        subprocess.run([*MMSA, "train", str(args.data), "--fusion", "all", "--out", str(args.out), "--overwrite",
                        *args.train_args], check=True)
    rows = json.loads((args.out / "comparison.json").read_text())["rows"]
    ranked = json.loads(args.choose_by.read_text())["rows"] if args.choose_by else rows
    best = max(ranked, key=lambda r: (r["accuracy"], r["weighted_f1"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for ext in ("md", "json", "png"):
        shutil.copy(args.out / f"comparison.{ext}", RESULTS / f"mvsa_single_table4.{ext}")

    write_test_predictions(args.data, args.out, best["fusion"], args.out / "test_predictions_full.csv",
                           args.predictions_out)
    print(f"best model{' by CV' if args.choose_by else ' on validation'}: {best['fusion']} "
          f"(accuracy {100 * best['accuracy']:.2f})")


def write_test_predictions(data: Path, run: Path, fusion: str | None, tmp: Path, preds: Path) -> None:
    """`mmsa predict` on test_without_label.txt, cut to the five columns the scorer wants."""
    subprocess.run([*MMSA, "predict", "--run", str(run), *(["--fusion", fusion] if fusion else []),
                    "--data", str(data), "--label-file", "test_without_label.txt", "--out", str(tmp)], check=True)
    import pandas as pd

    save_predictions(pd.read_csv(tmp, dtype={"guid": str}), preds)


def score_test_predictions(data: Path, model: Path, preds: Path) -> None:
    """`mmsa score` of test_without_label.txt's tweets (as mvsa_parquet.py writes them) with an
    exported model folder, cut to the five columns."""
    import tempfile

    import pandas as pd
    from mvsa_parquet import write_tweets  # beside this script

    with tempfile.TemporaryDirectory() as tmp:
        tweets, scored = Path(tmp) / "test.parquet", Path(tmp) / "scored.parquet"
        write_tweets(data, "test_without_label.txt", tweets)
        subprocess.run([*MMSA, "score", str(tweets), "--model", str(model), "--out", str(scored),
                        "--image-root", str(data), "--no-progress"], check=True)
        frame = pd.read_parquet(scored)
    save_predictions(frame.astype({"guid": str}), preds)


def save_predictions(frame, preds: Path) -> None:
    """The five columns the external scorer reads; rows with errors are kept and listed."""
    if frame["error"].notna().any():
        print(f"warning: {int(frame['error'].notna().sum())} test rows had errors:\n"
              f"{frame[frame['error'].notna()][['guid', 'error']].to_string()}", file=sys.stderr)
    frame[["guid", "label", "prob_positive", "prob_neutral", "prob_negative"]].to_csv(preds, index=False,
                                                                                      float_format="%.6f")
    print(f"wrote {len(frame)} test predictions to {preds}")
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()
