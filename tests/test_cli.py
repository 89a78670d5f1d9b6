"""The `mmsa` command line end to end (click's CliRunner, in process): train a tiny run once,
evaluate and predict with it, and check that bad input gives a short error, not a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mmsa_cli.cli import main

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MVSA = SAMPLES / "mvsa"
TWEETS = SAMPLES / "tweets.parquet"
PRED_COLUMNS = ["guid", "label", "prob_positive", "prob_neutral", "prob_negative", "error"]
TINY_ARGS = ["--text-encoder", "tiny-bert", "--image-encoder", "tiny-cnn", "--device", "cpu"]


def mmsa(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="mmsa", catch_exceptions=True)


def assert_ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def assert_clean_error(result, *fragments: str, usage: bool = False):
    """Non-zero exit, no traceback, and the message on one line naming what is wrong."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # click's exit, not a crash
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    if not usage:  # a library error: that one line is all there is
        assert result.output.strip() == errors[0]
        assert result.exit_code == 1
    else:
        assert result.exit_code == 2
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """`mmsa train` with tiny encoders: naive-cat, 2 epochs, frozen image encoder (feature cache)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = mmsa("train", "--data", MVSA, "--fusion", "naive-cat", "--out", out, *TINY_ARGS,
                  "--epochs", "2", "--freeze", "image", "--lr", "1e-3", "--head-lr", "3e-3")
    return out, result


def test_help_lists_commands():
    result = mmsa("--help")
    assert_ok(result)
    for command in ("train", "evaluate", "predict"):
        assert f"  {command} " in result.output


def test_score_option_defaults_are_the_library_defaults():
    """`mmsa score` and ScoreOptions (the Python API) must not drift apart."""
    from mmsa_cli.scoring.pipeline import ScoreOptions

    params = {p.name: p for p in main.get_command(None, "score").params}  # a lazy group: loaded on demand
    for name in ("row_group_size", "prefetch"):
        assert params[name].default == getattr(ScoreOptions(), name), name


def test_train_prints_accuracy_and_writes_run(cli_run):
    out, result = cli_run
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("naive-cat: val accuracy") for line in lines), result.stdout
    assert f"run folder: {out}" in result.stdout
    for name in ("config.json", "model.safetensors", "metrics.json", "split.csv", "text_encoder/config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["fusion"] == "naive-cat" and config["train"]["epochs"] == 2


def test_evaluate_prints_accuracy(cli_run):
    out, _ = cli_run
    result = mmsa("evaluate", "--run", out, "--data", MVSA, "--device", "cpu")
    assert_ok(result)
    assert result.stdout.startswith("naive-cat on 300 rows: accuracy ")


def test_evaluate_json(cli_run, tmp_path):
    out, _ = cli_run
    preds = tmp_path / "val.parquet"
    result = mmsa("evaluate", "--run", out, "--data", MVSA, "--device", "cpu", "--json", "--predictions", preds)
    assert_ok(result)
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 300 and metrics["rows_with_errors"] == 0
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 300
    assert len(pd.read_parquet(preds)) == 300


def test_predict_keeps_every_row_and_reports_bad_ones(cli_run, tmp_path):
    out, _ = cli_run
    dest = tmp_path / "x.csv"
    result = mmsa("predict", "--run", out, "--data", TWEETS, "--out", dest, "--device", "cpu")
    assert_ok(result)
    source = pd.read_parquet(TWEETS)
    frame = pd.read_csv(dest, dtype={"guid": str})
    assert len(source) == 68 and len(frame) == 68  # nothing dropped
    assert list(frame.columns) == PRED_COLUMNS
    assert frame["guid"].tolist() == source["guid"].astype(str).tolist()  # input order
    assert "wrote 68 predictions" in result.stdout

    errors = dict(zip(frame["guid"], frame["error"]))
    expected_kind = {"90001": "missing", "90002": "empty", "90003": "corrupt", "90004": "not_image",
                     "90008": "outside_root"}
    for guid, kind in expected_kind.items():
        assert isinstance(errors[guid], str) and errors[guid].startswith(f"{kind}:"), (guid, errors[guid])
    # Null, empty and very long texts with valid images are fine; so are all ordinary rows.
    assert frame.loc[~frame["guid"].isin(list(expected_kind)), "error"].isna().all()
    # naive-cat uses the text, so even rows with a bad image get a prediction.
    assert frame["label"].isin(["positive", "neutral", "negative"]).all()
    probs = frame[["prob_positive", "prob_neutral", "prob_negative"]]
    assert ((probs.sum(axis=1) - 1.0).abs() < 1e-4).all()
    assert f"({len(expected_kind)} rows with errors" in result.stdout


# --------------------------------------------------------------------------- bad input


def test_unknown_fusion_is_a_usage_error(tmp_path):
    result = mmsa("train", "--data", MVSA, "--fusion", "late-fusion", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "--fusion", "late-fusion", "naive-cat", "'all'", usage=True)  # lists the choices
    assert not (tmp_path / "run").exists()


def test_missing_data_is_a_usage_error(tmp_path):
    result = mmsa("train", "--data", tmp_path / "nowhere", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "--data", "nowhere", usage=True)


def test_fold_without_folds_is_a_clean_error(tmp_path):
    result = mmsa("train", "--data", MVSA, "--fold", "2", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "--fold 2", "--folds")
    assert not (tmp_path / "run").exists()


def test_too_small_image_size_is_a_clean_error(tmp_path):
    result = mmsa("train", "--data", MVSA, "--image-size", "16", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "image size 16 is below 32 pixels")


def test_too_many_image_train_stages_is_a_clean_error(tmp_path):
    result = mmsa("train", "--data", MVSA, "--freeze", "none", "--image-train-stages", "9", "--out", tmp_path / "run",
                  *TINY_ARGS)
    assert_clean_error(result, "--image-train-stages 9", "'tiny-cnn' has 3 stages")


@pytest.mark.parametrize("option, value", [("--layer-lr-decay", "1.2"), ("--modality-dropout", "1.5"),
                                           ("--rdrop-alpha", "-1")])
def test_train_rates_outside_their_range_are_clean_errors(tmp_path, option, value):
    result = mmsa("train", "--data", MVSA, option, value, "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, option, value, usage=True)
    assert not (tmp_path / "run").exists()


def test_one_fold_says_how_the_summary_appears(tmp_path):
    result = mmsa("train", "--data", MVSA, "--fusion", "text-only", "--folds", "3", "--fold", "3", "--freeze", "both",
                  "--epochs", "1", "--out", tmp_path / "run", *TINY_ARGS)
    assert_ok(result)
    assert "fold 3 of 3; cv.md appears once every fold is trained" in result.output
    assert [p.name for p in (tmp_path / "run").glob("fold-*")] == ["fold-3"]


def test_run_without_weights(cli_run, tmp_path):
    out, _ = cli_run
    broken = tmp_path / "broken-run"
    shutil.copytree(out, broken)
    (broken / "model.safetensors").unlink()
    result = mmsa("predict", "--run", broken, "--data", TWEETS, "--out", tmp_path / "x.csv", "--device", "cpu")
    assert_clean_error(result, "model.safetensors", "missing")
    assert not (tmp_path / "x.csv").exists()


def test_table_without_text_column_lists_columns(cli_run, tmp_path):
    out, _ = cli_run
    table = tmp_path / "no_text.csv"
    pd.read_parquet(TWEETS).drop(columns=["text"]).head(5).to_csv(table, index=False)
    result = mmsa("predict", "--run", out, "--data", table, "--out", tmp_path / "x.csv", "--device", "cpu")
    assert_clean_error(result, "'text'", "available columns: guid, image, user")


def test_recipe_fills_options_left_at_default_and_explicit_ones_win(tmp_path):
    from mmsa_cli.config import RECIPES

    out = tmp_path / "run"
    result = mmsa("train", "--data", MVSA, "--recipe", "best", "--text-normalization", "none", "--out", out,
                  *TINY_ARGS, "--epochs", "1", "--max-train-examples", "24")
    assert_ok(result)
    assert "recipe best:" in result.output
    saved = json.loads((out / "config.json").read_text())
    best = RECIPES["best"]
    assert saved["model"]["fusion"] == best["fusion"]
    assert saved["train"]["freeze"] == best["freeze"]
    assert saved["train"]["aux_loss_weight"] == best["aux_loss_weight"]
    assert saved["train"]["modality_dropout"] == best["modality_dropout"]
    assert saved["train"]["patience"] == best["patience"]
    assert saved["model"]["text_normalization"] == "none"  # given explicitly: the recipe's "tweet" yields
    assert saved["train"]["epochs"] == 1 != best["epochs"]
