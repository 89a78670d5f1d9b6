"""The `mmsa` command line end to end (click's CliRunner, in process): train a tiny run once,
evaluate and predict with it, and check that bad input gives a short error, not a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from mmsa_cli.cli import main
from mmsa_cli.errors import EXIT_MODEL, EXIT_OTHER, EXIT_OUTPUT_EXISTS, EXIT_USAGE

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MVSA = SAMPLES / "mvsa"
TWEETS = SAMPLES / "tweets.parquet"
PRED_COLUMNS = ["guid", "label", "prob_positive", "prob_neutral", "prob_negative", "error", "error_kind",
                "predicted_from"]
TINY_ARGS = ["--text-encoder", "tiny-bert", "--image-encoder", "tiny-cnn", "--device", "cpu"]


def mmsa(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="mmsa", catch_exceptions=True)


def assert_ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def assert_clean_error(result, *fragments: str, usage: bool = False, exit_code: int = EXIT_OTHER):
    """Non-zero exit, no traceback, and the message on one line naming what is wrong. usage:
    click's own usage error (exit 2, usage text around it); otherwise a library error with
    its class's exit code (mmsa_cli/errors.py) and that one line only."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # click's exit, not a crash
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    if not usage:  # a library error: that one line is all there is
        assert result.output.strip() == errors[0]
        assert result.exit_code == exit_code
    else:
        assert result.exit_code == 2
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """`mmsa train` with tiny encoders: naive-cat, 2 epochs, frozen image encoder (feature cache)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = mmsa("train", MVSA, "--fusion", "naive-cat", "--out", out, *TINY_ARGS,
                  "--epochs", "2", "--freeze", "image", "--lr", "1e-3", "--head-lr", "3e-3")
    return out, result


def test_help_lists_commands():
    result = mmsa("--help")
    assert_ok(result)
    for command in ("train", "evaluate", "predict"):
        assert f"  {command} " in result.output


def test_score_flags_are_the_declared_options():
    """`mmsa score`'s flags are generated from Columns, ScoreOptions and RayOptions: every declared
    field is a flag with the field's default, and a CLI run builds the same dataclasses."""
    import dataclasses

    from mmsa_cli.flags import flag_of
    from mmsa_cli.scoring.options import Columns, RayOptions, ScoreOptions

    command = main.get_command(None, "score")  # a lazy group: loaded on demand
    params, ctx = {p.name: p for p in command.params}, click.Context(command)
    declared = [f for cls in (Columns, ScoreOptions, RayOptions) for f in dataclasses.fields(cls)
                if f.metadata.get("cli")]
    assert len(declared) == len(params) - 5  # all but INPUTS, --model, --out, --stats-json, --engine
    for f in declared:
        param = params[f.name]
        assert flag_of(f) in param.opts, f.name
        value = param.type_cast_value(ctx, param.default) if param.default is not None else None
        if param.multiple:
            value = tuple(name for part in value for name in part)
        assert value == f.default, f.name
    assert params["progress"].opts == ["--no-progress"] and params["decision_rule"].opts == ["--no-decision-rule"]


def test_shared_flags_have_one_help_in_every_command():
    """--device, --overwrite, --fusion, --no-decision-rule and the table columns: one declaration each."""
    def helps(flag):
        return {name: next(p.help for p in main.get_command(None, name).params if flag in p.opts)
                for name in ("train", "evaluate", "predict", "export", "score")
                if any(flag in p.opts for p in main.get_command(None, name).params)}

    assert len(set(helps("--device").values())) == 1 and len(helps("--device")) == 5
    assert len(set(helps("--text-col").values())) == 1 and len(helps("--text-col")) == 4
    assert len(helps("--overwrite")) == 4
    assert all(h.endswith("without it an existing output is refused (exit 4).") for h in helps("--overwrite").values())


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
    result = mmsa("evaluate", "--run", out, MVSA, "--device", "cpu")
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


def test_evaluate_stats_json_file_and_predict_output_rule(cli_run, tmp_path):
    """The shared vocabulary: --stats-json FILE writes what the command printed; an existing
    --out is another job's (exit 4) unless --overwrite."""
    out, _ = cli_run
    stats = tmp_path / "metrics.json"
    result = mmsa("evaluate", "--run", out, MVSA, "--device", "cpu", "--stats-json", stats)
    assert_ok(result)
    metrics = json.loads(stats.read_text())
    assert f"accuracy {100 * metrics['accuracy']:.2f}" in result.stdout and metrics["n"] == 300
    dest = tmp_path / "p.parquet"
    dest.write_text("someone else's")
    result = mmsa("predict", "--run", out, TWEETS, "--out", dest, "--device", "cpu")
    assert_clean_error(result, str(dest), "--overwrite", exit_code=EXIT_OUTPUT_EXISTS)
    assert dest.read_text() == "someone else's"
    assert_ok(mmsa("predict", "--run", out, TWEETS, "--out", dest, "--device", "cpu", "--overwrite"))
    assert len(pd.read_parquet(dest)) == 68


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
    assert_clean_error(result, "--fold 2", "--folds", exit_code=EXIT_USAGE)
    assert not (tmp_path / "run").exists()


def test_too_small_image_size_is_a_clean_error(tmp_path):
    result = mmsa("train", "--data", MVSA, "--image-size", "16", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "image size 16 is below 32 pixels", exit_code=EXIT_USAGE)


def test_too_many_image_train_stages_is_a_clean_error(tmp_path):
    out = tmp_path / "new" / "nested" / "run"  # refused once the model exists: nothing it created is left
    result = mmsa("train", MVSA, "--freeze", "none", "--image-train-stages", "9", "--out", out, *TINY_ARGS)
    assert_clean_error(result, "--image-train-stages 9", "'tiny-cnn' has 3 stages", exit_code=EXIT_USAGE)
    assert list(tmp_path.iterdir()) == []


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
    assert_clean_error(result, "model.safetensors", "missing", exit_code=EXIT_MODEL)
    assert not (tmp_path / "x.csv").exists()


def test_table_without_text_column_lists_columns(cli_run, tmp_path):
    out, _ = cli_run
    table = tmp_path / "no_text.csv"
    pd.read_parquet(TWEETS).drop(columns=["text"]).head(5).to_csv(table, index=False)
    result = mmsa("predict", "--run", out, "--data", table, "--out", tmp_path / "x.csv", "--device", "cpu")
    assert_clean_error(result, "'text'", "available columns: guid, image, user", exit_code=EXIT_USAGE)


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


# --------------------------------------------------------------------------- train: options, config files, output


def train_quick(*args):
    """A text-only run on frozen tiny encoders: seconds."""
    return mmsa("train", MVSA, *TINY_ARGS, "--fusion", "text-only", "--freeze", "both", "--epochs", "1",
                "--max-train-examples", "24", *args)


def saved_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def test_train_help_hides_test_presets_and_names_the_default_recipe():
    result = mmsa("train", "--help")
    assert_ok(result)
    text = " ".join(result.output.split())
    assert "tiny-bert" not in text and "tiny-cnn" not in text
    assert "minilm-l6" in text and "efficientnet-lite2" in text
    assert "`paper` (the default): the paper's settings" in text and "5-fold CV" in text
    assert "Usage: mmsa train [OPTIONS] DATA" in text
    for shown in ("--workers", "--config", "--overwrite", "--stats-json", "--lr", "--freeze"):
        assert shown in text, shown
    for hidden in ("--num-workers", "--data "):
        assert hidden not in text, hidden


def test_every_config_field_is_a_train_option_with_the_declared_default():
    """Declared once: the command's options are exactly the config fields, same defaults."""
    import dataclasses

    from mmsa_cli.config import CONFIG_CLASSES

    params = {p.name: p for p in main.get_command(None, "train").params}
    for cls in CONFIG_CLASSES.values():
        for f in dataclasses.fields(cls):
            if not f.metadata["cli"]:
                assert f.name not in params
                continue
            default = params[f.name].default
            expected = None if f.metadata["path"] else f.default
            assert default == (",".join(expected) if isinstance(expected, tuple) else expected), f.name
            assert params[f.name].help == f.metadata["help"]


def test_data_given_twice_or_not_at_all_is_a_usage_error(tmp_path):
    result = mmsa("train", MVSA, "--data", MVSA, "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "DATA or --data, not both", usage=True)
    result = mmsa("train", "--out", tmp_path / "run", *TINY_ARGS)
    assert_clean_error(result, "DATA", usage=True)
    assert not (tmp_path / "run").exists()


def test_old_data_and_num_workers_spellings_still_work(tmp_path):
    out = tmp_path / "run"
    result = mmsa("train", "--data", MVSA, *TINY_ARGS, "--fusion", "text-only", "--freeze", "both", "--epochs", "1",
                  "--max-train-examples", "24", "--num-workers", "1", "--out", out)
    assert_ok(result)
    assert saved_config(out)["train"]["workers"] == 1


def test_config_toml_below_flags_above_recipe(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('recipe = "best"\nfusion = "text-only"\nfreeze = "both"\n\n[train]\nepochs = 3\n'
                      'modality_dropout = 0.1\nlr = 0.002\nmax_train_examples = 24\n')
    out = tmp_path / "run"
    result = mmsa("train", MVSA, "--config", config, *TINY_ARGS, "--epochs", "1", "--out", out)
    assert_ok(result)
    saved = saved_config(out)
    assert saved["train"]["epochs"] == 1                  # the flag beats the file (3) and the recipe (5)
    assert saved["train"]["modality_dropout"] == 0.1      # the file beats the recipe (0.2)
    assert saved["train"]["lr"] == 0.002 and saved["train"]["freeze"] == "both" and saved["model"]["fusion"] == "text-only"
    assert saved["train"]["patience"] == 2 and saved["train"]["aux_loss_weight"] == 1.0  # the file's recipe
    assert saved["train"]["weight_decay"] == 0.01         # the default


def test_config_yaml(tmp_path):
    pytest.importorskip("yaml")  # the message without PyYAML is tested below
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  fusion: text-only\ntrain:\n  freeze: both\n  epochs: 1\n  head_lr: 0.004\n"
                      "  max_train_examples: 24\n")
    out = tmp_path / "run"
    result = mmsa("train", MVSA, "--config", config, *TINY_ARGS, "--head-lr", "0.005", "--out", out)
    assert_ok(result)
    saved = saved_config(out)
    assert saved["model"]["fusion"] == "text-only" and saved["train"]["freeze"] == "both"
    assert saved["train"]["head_lr"] == 0.005  # the flag wins


def test_yaml_without_pyyaml_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now fails
    config = tmp_path / "train.yml"
    config.write_text("epochs: 1\n")
    result = mmsa("train", MVSA, "--config", config, *TINY_ARGS, "--out", tmp_path / "run")
    assert_clean_error(result, "PyYAML", "pip install pyyaml", exit_code=EXIT_USAGE)


@pytest.mark.parametrize("content, fragments", [
    ('epochz = 3\n', ["unknown key 'epochz'", "epochs"]),
    ('[train]\nfusion = "ote"\n', ["unknown key 'train.fusion'", "allowed in [train]"]),
    ('freeze = "sometimes"\n', ["freeze = 'sometimes'", "'image'"]),
    ('modality_dropout = 1.5\n', ["modality_dropout = 1.5", "0<=x<=1"]),
    ('recipe = "fastest"\n', ["recipe 'fastest'", "paper, best"]),
    ('epochs = \n', ["cannot be read"]),
])
def test_bad_config_file_is_one_line_naming_the_key(tmp_path, content, fragments):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = mmsa("train", MVSA, "--config", config, *TINY_ARGS, "--out", tmp_path / "run")
    assert_clean_error(result, str(config), *fragments, exit_code=EXIT_USAGE)
    assert not (tmp_path / "run").exists()


def test_run_config_json_replays_the_run(cli_run, tmp_path):
    """`--config runs/x/config.json` trains with exactly the options of run x."""
    out, _ = cli_run
    replay = tmp_path / "replay"
    result = mmsa("train", MVSA, "--config", out / "config.json", "--out", replay)
    assert_ok(result)
    original, again = saved_config(out), saved_config(replay)
    for section in ("model", "train", "weights", "image", "labels"):
        assert again[section] == original[section], section
    assert again["train"]["lr"] == 1e-3 and "encoder_lr" not in again["train"]  # saved under the CLI's names


def test_existing_out_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier run")
    result = train_quick("--out", out)
    assert_clean_error(result, str(out), "--overwrite", exit_code=EXIT_OUTPUT_EXISTS)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = train_quick("--out", out, "--overwrite")
    assert_ok(result)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left


def test_a_trained_fold_is_refused_and_other_folds_join_it(tmp_path):
    out = tmp_path / "cv"
    assert_ok(train_quick("--folds", "3", "--fold", "1", "--out", out))
    result = train_quick("--folds", "3", "--fold", "1", "--out", out)
    assert_clean_error(result, "fold-1", "--overwrite", exit_code=EXIT_OUTPUT_EXISTS)
    assert_ok(train_quick("--folds", "3", "--fold", "2", "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["fold-1", "fold-2"]
    result = train_quick("--folds", "3", "--fold", "3", "--out", out, "--seed", "7")
    assert_clean_error(result, "seed=7 (there: 42)", "same options", exit_code=EXIT_USAGE)
    assert sorted(p.name for p in out.iterdir()) == ["fold-1", "fold-2"]


def test_data_without_labels_leaves_no_folder(tmp_path):
    table = tmp_path / "unlabelled.parquet"
    frame = pd.read_parquet(SAMPLES / "train.parquet").drop(columns=["label"])
    frame["image"] = [str((SAMPLES / p).resolve()) for p in frame["image"]]
    frame.to_parquet(table)
    result = mmsa("train", table, *TINY_ARGS, "--out", tmp_path / "runs" / "x")
    assert_clean_error(result, "0 labelled rows", exit_code=EXIT_USAGE)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("to_stdout", [True, False])
def test_stats_json(tmp_path, to_stdout):
    out, stats_file = tmp_path / "run", tmp_path / "stats.json"
    result = train_quick("--out", out, "--stats-json", "-" if to_stdout else stats_file)
    assert_ok(result)
    stats = json.loads(result.stdout if to_stdout else stats_file.read_text())
    if to_stdout:
        assert "run folder:" in result.stderr  # the human summary moves out of the way
    metrics = json.loads((out / "metrics.json").read_text())
    assert stats["run_folder"] == str(out)
    [model] = stats["models"]
    assert model["fusion"] == "text-only" and model["best_epoch"] == metrics["best_epoch"]
    assert model["validation"]["accuracy"] == metrics["validation"]["accuracy"]


def test_train_command_module_imports_no_torch():
    """Building `mmsa train` imports no torch: the model names are looked up only when needed."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = "import sys, mmsa_cli.training.cli; assert 'torch' not in sys.modules, 'torch imported'"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)


def test_the_library_checks_registry_names_like_the_command_line():
    """check_config (train_model's own check) refuses an unknown fusion, image preset or
    ensemble member, naming it; a text encoder may also be a model folder (an open choice)."""
    from mmsa_cli.config import ModelConfig, check_config
    from mmsa_cli.errors import ConfigError

    for bad, fragment in ((dict(fusion="otee"), "--fusion 'otee'"), (dict(image_encoder="resnet5"), "'resnet5'"),
                          (dict(fusion="ensemble", ensemble_members=("ote", "nope")), "'nope'")):
        with pytest.raises(ConfigError, match=fragment):
            check_config(ModelConfig(**bad))
    check_config(ModelConfig(text_encoder="/models/my-bert", fusion="ensemble", ensemble_members=("ote", "cmac")))
