"""The decision rule (contract/decision.py): label = argmax(log p + b), b fitted on out-of-fold
predictions. Synthetic probabilities for the fitting; tiny random models for training, export
and scoring (no real data)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from mmsa_cli import LABELS
from mmsa_cli.contract.decision import decide_labels, fit_offsets, label_metrics, nested_cv
from mmsa_cli.contract.rows import result_table


def imbalanced_predictions(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60/10/30 labels and probabilities from a model that knows the classes but, as one trained
    under this imbalance, puts too little mass on the small middle class (its logit lowered)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.6, 0.1, 0.3])
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), labels] += 1.6
    logits[:, 1] -= 1.2  # the under-predicted minority
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs.astype(np.float32), labels


def test_zero_offsets_are_exactly_the_argmax():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], size=500).astype(np.float32)
    probs[:5] = [1 / 3, 1 / 3, 1 / 3]  # ties: the first class, as argmax
    probs[5:10] = [0.0, 0.5, 0.5]
    assert np.array_equal(decide_labels(probs), probs.argmax(1))
    assert np.array_equal(decide_labels(probs, [0.0, 0.0, 0.0]), probs.argmax(1))
    assert np.array_equal(decide_labels(probs, [0.7, 0.7, 0.7]), probs.argmax(1))  # a common shift changes nothing


def test_label_metrics_are_scikit_learns():
    rng = np.random.default_rng(2)
    y, pred = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    pred[pred == 1] = 0  # one class never predicted: F1 0, as zero_division=0
    m = label_metrics(y, pred, 3)
    assert m["accuracy"] == pytest.approx((y == pred).mean())
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted", zero_division=0))
    assert m["f1_per_class"] == pytest.approx(f1_score(y, pred, average=None, zero_division=0).tolist())


def test_fitted_offsets_raise_the_minority_and_the_metric():
    probs, labels = imbalanced_predictions()
    offsets = fit_offsets(probs, labels, "macro_f1")
    assert offsets[0] == 0.0 and offsets[1] > 0.3  # the under-predicted class is pushed up
    before = label_metrics(labels, decide_labels(probs), 3)
    after = label_metrics(labels, decide_labels(probs, offsets), 3)
    assert after["macro_f1"] > before["macro_f1"] + 0.02
    assert after["f1_per_class"][1] > before["f1_per_class"][1] + 0.05


def test_nested_cv_judges_offsets_on_rows_they_were_not_fitted_on():
    probs, labels = imbalanced_predictions()
    folds = [list(range(k, len(labels), 5)) for k in range(5)]
    result = nested_cv(probs, labels, folds, "macro_f1")
    assert len(result["offsets_per_fold"]) == 5
    assert result["after"]["macro_f1"] > result["before"]["macro_f1"]
    for k, rows in enumerate(folds):  # each fold's "after" is its own rows under the other folds' offsets
        rest = [i for j, f in enumerate(folds) if j != k for i in f]
        offsets = fit_offsets(probs[rest], labels[rest], "macro_f1")
        assert result["offsets_per_fold"][k] == offsets
        expected = label_metrics(labels[rows], decide_labels(probs[rows], offsets), 3)
        assert result["after"]["per_fold"][k] == expected


def test_output_labels_follow_the_offsets_and_probabilities_stay():
    import pyarrow as pa

    probs = np.array([[0.5, 0.3, 0.2], [0.6, 0.15, 0.25], [np.nan] * 3], np.float32)
    args = (pa.array(["a", "b", "c"]), "guid", probs, [None, None, "x: y"], ["text+image", "text+image", None])
    plain = result_table(*args).to_pydict()
    ruled = result_table(*args, decision_offsets=[0.0, 0.6, 0.0]).to_pydict()
    assert plain["label"] == ["positive", "positive", None]
    assert ruled["label"] == ["neutral", "positive", None]  # log .3 + .6 > log .5; log .15 + .6 < log .6
    assert ruled["prob_neutral"] == plain["prob_neutral"]


def samples_table():
    from mmsa_cli.data import load_examples
    from test_export import SAMPLES

    examples = load_examples(SAMPLES)[:40]
    return pd.DataFrame({"guid": [e.guid for e in examples], "text": [e.text for e in examples],
                         "image": [str(e.image_path) for e in examples]})


def test_a_cv_runs_rule_is_exported_and_scored_and_can_be_switched_off(tmp_path):
    """decision_rule.json of a CV run goes into the bag's manifest; `mmsa score` labels by it
    with the same probabilities as without it; --no-decision-rule (score) and
    decision_rule=False (export) restore the arg-max."""
    import torch
    from click.testing import CliRunner

    from mmsa_cli.cli import main
    from mmsa_cli.config import ModelConfig
    from mmsa_cli.contract.model_folder import load_model_folder
    from mmsa_cli.onnx_export import export_run
    from mmsa_cli.scoring import Scorer
    from test_export import write_tiny_run

    cv, cfg = tmp_path / "cv", ModelConfig(fusion="naive-cat", text_encoder="tiny-bert", image_encoder="tiny-cnn")
    for k in (1, 2):
        torch.manual_seed(k)
        write_tiny_run(cv / f"fold-{k}", cfg, pretrained=False, folds=2)
    offsets = [0.0, -4.0, 4.0]  # strong enough that the labels must differ from the arg-max
    (cv / "decision_rule.json").write_text(json.dumps({"rule": "offsets", "labels": list(LABELS), "metric": "macro_f1",
                                                       "offsets": offsets}))
    bag = export_run(cv, tmp_path / "bag", fold="all", precision="fp32", device="cpu", max_parity_rows=8)
    assert bag.manifest.decision_offsets == offsets and bag.manifest.decision_metric == "macro_f1"
    assert load_model_folder(bag.folder).manifest.decision_offsets == offsets

    table = samples_table()
    ruled = Scorer(bag.folder, "cpu").score_batch(table).to_pandas()
    plain = Scorer(bag.folder, "cpu", decision_rule=False).score_batch(table).to_pandas()
    probs = plain[[f"prob_{n}" for n in LABELS]].to_numpy()
    assert np.array_equal(ruled[[f"prob_{n}" for n in LABELS]].to_numpy(), probs)
    assert ruled["label"].tolist() == [LABELS[i] for i in decide_labels(probs, offsets)]
    assert plain["label"].tolist() == [LABELS[i] for i in probs.argmax(1)]
    assert ruled["label"].tolist() != plain["label"].tolist()

    table.to_parquet(tmp_path / "rows.parquet")
    for flags, expected in (([], ruled), (["--no-decision-rule"], plain)):
        out = tmp_path / f"scored{len(flags)}.parquet"
        result = CliRunner().invoke(main, ["score", str(tmp_path / "rows.parquet"), "--model", str(bag.folder),
                                           "--out", str(out), "--device", "cpu", "--no-progress", *flags])
        assert result.exit_code == 0, result.output
        assert pd.read_parquet(out)["label"].tolist() == expected["label"].tolist()

    without = export_run(cv, tmp_path / "fold1", fold="1", precision="fp32", device="cpu", max_parity_rows=8,
                         decision_rule=False)
    assert without.manifest.decision_offsets == []


def test_cv_training_fits_the_rule_on_out_of_fold_predictions(tmp_path):
    """--folds 3 --decision-rule offsets: every fold writes its kept epoch's validation
    probabilities; the rule is fitted on them, estimated by nested CV over the same folds,
    reported in cv.md and saved; `mmsa predict`'s model of a fold carries it."""
    from mmsa_cli.config import ModelConfig, TrainConfig
    from mmsa_cli.runs import load_run
    from mmsa_cli.scoring.torch_model import TorchModel
    from mmsa_cli.training.decision_rule import read_out_of_fold
    from mmsa_cli.training.train import TrainSource, train
    from test_train import FAST, MVSA, RANDOM, TINY, read_split_csv

    cfg = TrainConfig(epochs=1, folds=3, decision_rule="offsets", decision_metric="macro_f1",
                      **(FAST | {"freeze": "both"}))
    results = train(TrainSource(str(MVSA)), tmp_path, ["naive-cat"], ModelConfig(fusion="naive-cat", **TINY), cfg,
                    weights=RANDOM)
    folds = [tmp_path / f"fold-{k}" for k in (1, 2, 3)]
    probs, labels, rows, _ = read_out_of_fold(folds)
    for fold, fold_rows, result in zip(folds, rows, results):
        val = [r["guid"] for r in read_split_csv(fold / "split.csv") if r["split"] == "val"]
        assert len(fold_rows) == len(val)
        recorded = result["validation"]["accuracy"]  # the saved probabilities are the kept epoch's
        assert (probs[fold_rows].argmax(1) == labels[fold_rows]).mean() == pytest.approx(recorded)
    rule = json.loads((tmp_path / "decision_rule.json").read_text())
    assert rule["offsets"] == fit_offsets(probs, labels, "macro_f1")
    assert rule["nested_cv"] == json.loads(json.dumps(nested_cv(probs, labels, rows, "macro_f1")))
    assert "Decision rule" in (tmp_path / "cv.md").read_text()
    assert TorchModel.from_run(load_run(folds[0]), "cpu").decision_offsets == rule["offsets"]


def test_a_fold_without_out_of_fold_predictions_leaves_the_rule_out(tmp_path):
    """--fold K into a CV folder whose other folds an older mmsa trained (no
    validation_predictions.csv): the fold and cv.md are written, no rule is fitted."""
    import dataclasses

    from mmsa_cli.config import ModelConfig, TrainConfig
    from mmsa_cli.training.train import TrainSource, train
    from test_train import FAST, MVSA, RANDOM, TINY

    cfg = TrainConfig(epochs=1, folds=2, decision_rule="offsets", **(FAST | {"freeze": "both"}))
    model = ModelConfig(fusion="text-only", **TINY)
    train(TrainSource(str(MVSA)), tmp_path, ["text-only"], model, dataclasses.replace(cfg, fold=1), weights=RANDOM)
    (tmp_path / "fold-1" / "validation_predictions.csv").unlink()  # as an older mmsa left it
    train(TrainSource(str(MVSA)), tmp_path, ["text-only"], model, dataclasses.replace(cfg, fold=2), weights=RANDOM)
    assert (tmp_path / "cv.md").is_file() and not (tmp_path / "decision_rule.json").exists()
