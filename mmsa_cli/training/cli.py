"""`mmsa train`: the options are generated from the config dataclasses (mmsa_cli/config.py),
merged with --config FILE and --recipe (mmsa_cli/training/config_file.py), then one library
call and a short report. Imports nothing heavy at module level (torch loads in the command)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource

from ..cli_options import data_argument, dataclass_options, library_errors, say_for, stats_json_option, write_stats
from ..registry import PAPER_NAMES
from ..config import CONFIG_CLASSES, RECIPES, TEST_ONLY_PRESETS, EncoderWeights, ModelConfig, TrainConfig
from ..errors import ConfigError
from ..flags import OVERWRITE
from .config_file import merge_sources, read_config_file

GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


@dataclass
class TrainOutput:
    """What `mmsa train` does with an existing --out (the run folder's own options are the configs')."""
    overwrite: bool = OVERWRITE(detail="only once training succeeded")
RECIPE_HELP = ("Option values below --config and the flags. `paper` (the default): the paper's settings (batch 16, "
               "lr 3e-5, at most 20 epochs, patience 3), so results compare with its Table 4. `best`: the best "
               "recipe measured on MVSA-Single by 5-fold CV (74.3 ± 1.3 accuracy; README, Results): "
               + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in RECIPES["best"].items()) + ".")


def _explicit(ctx: click.Context, options: dict) -> dict:
    """The options given on the command line (hidden aliases, e.g. --num-workers, included)."""
    given = {name: value for name, value in options.items()
             if not name.endswith("_alias") and ctx.get_parameter_source(name) in GIVEN}
    for name, value in options.items():
        if name.endswith("_alias") and value is not None:
            field = name[: -len("_alias")]
            if field in given:
                raise click.UsageError(f"--{field.replace('_', '-')} is given twice (once by its old name)")
            given[field] = value
    return given


def _checked_file_values(ctx: click.Context, path: str) -> dict:
    """The config file's values, converted and checked by the same types as the flags."""
    params = {p.name: p for p in ctx.command.params}
    values = {}
    for key, value in read_config_file(path).items():
        param = params.get(key)
        if param is not None and value not in (None, ""):
            try:
                value = param.type.convert(value, param, ctx)
            except click.BadParameter as exc:
                raise ConfigError(f"--config {path}: {key} = {value!r}: {exc.message}") from None
        values[key] = value
    return values


def resolve_configs(ctx: click.Context, recipe: str, config_file: str | None, options: dict):
    """(fusions, ModelConfig, TrainConfig, EncoderWeights, recipe name): flag > file > recipe > default."""
    from_file = _checked_file_values(ctx, config_file) if config_file else {}
    recipe = recipe if ctx.get_parameter_source("recipe") in GIVEN else from_file.pop("recipe", recipe)
    from_file.pop("recipe", None)
    defaults = {f.name: f.default for cls in CONFIG_CLASSES.values() for f in dataclasses.fields(cls)}
    values = merge_sources(defaults, RECIPES[recipe], from_file, _explicit(ctx, options))
    fusion = values["fusion"]
    fusions = list(PAPER_NAMES) if fusion == "all" else [fusion]
    values["fusion"] = "ote" if fusion == "all" else fusion
    build = lambda cls: cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})  # noqa: E731
    return fusions, build(ModelConfig), build(TrainConfig), build(EncoderWeights), recipe


def summary(results: list[dict], out: str, train_cfg: TrainConfig) -> dict:
    """What `--stats-json` writes: per-model validation metrics, the run folder, CV means."""
    models = [{"fusion": r["fusion"], "fold": r.get("fold"), "best_epoch": r["best_epoch"],
               "epochs_run": r["epochs_run"], "train_rows": r["train_rows"], "val_rows": r["val_rows"],
               "validation": {k: v for k, v in r["validation"].items() if k != "confusion_matrix"}}
              for r in results]
    cv_path = Path(out, "cv.json")
    cv = json.loads(cv_path.read_text())["rows"] if train_cfg.folds > 1 and cv_path.is_file() else None
    rule_path = Path(out, "decision_rule.json")
    rule = json.loads(rule_path.read_text()) if cv is not None and rule_path.is_file() else None
    return {"run_folder": str(out), "models": models, "skipped_rows": results[0]["skipped_rows"], "cv": cv,
            "decision_rule": rule}


def report_lines(stats: dict, train_cfg: TrainConfig) -> list[str]:
    lines = []
    for m in stats["models"]:
        v, fold = m["validation"], f"fold {m['fold']} " if m["fold"] else ""
        lines.append(f"{fold}{m['fusion']:>13}: val accuracy {100 * v['accuracy']:.2f}  weighted F1 "
                     f"{100 * v['weighted_f1']:.2f}  macro F1 {100 * v['macro_f1']:.2f}  "
                     f"(best epoch {m['best_epoch']} of {m['epochs_run']})")
    if stats["skipped_rows"]:
        lines.append(f"skipped {stats['skipped_rows']} rows with unusable images: see skipped.csv in the run folder")
    out, folds = stats["run_folder"], train_cfg.folds
    if folds > 1 and stats["cv"] is None:
        lines.append(f"run folder: {out} (fold {train_cfg.fold} of {folds}; cv.md appears once every fold is trained)")
    elif folds > 1:
        for row in stats["cv"]:
            lines.append(f"{folds}-fold CV {row['fusion']:>13}: accuracy {100 * row['accuracy']:.2f} ± "
                         f"{100 * row['accuracy_std']:.2f}  weighted F1 {100 * row['weighted_f1']:.2f} ± "
                         f"{100 * row['weighted_f1_std']:.2f}")
        if stats.get("decision_rule"):
            rule = stats["decision_rule"]
            before, after = rule["nested_cv"]["before"], rule["nested_cv"]["after"]
            lines.append(f"decision rule (offsets {', '.join(f'{b:+.2f}' for b in rule['offsets'])}, for "
                         f"{rule['metric']}), nested CV: " + ", ".join(
                             f"{name} {100 * before[m]:.2f} -> {100 * after[m]:.2f}"
                             for m, name in (("accuracy", "accuracy"), ("weighted_f1", "weighted F1"),
                                             ("macro_f1", "macro F1"))) + " (per class: cv.md)")
        lines.append(f"run folder: {out} (cv.md, cv.png; one folder per fold; `mmsa export --run {out} --fold all` "
                     f"makes one model of all the folds)")
    else:
        lines.append(f"run folder: {out}" + (" (comparison.md, comparison.png)" if len(stats["models"]) > 1 else ""))
    return lines


@click.command()
@data_argument
@click.option("--recipe", default="paper", show_default=True, type=click.Choice(list(RECIPES)), help=RECIPE_HELP)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Options from a TOML or YAML file, or a run's config.json (replays that run); flags override it.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder to write; an existing non-empty one is refused unless --overwrite.")
@stats_json_option
@dataclass_options([TrainOutput])
@dataclass_options([ModelConfig, TrainConfig, EncoderWeights], hidden_choices=TEST_ONLY_PRESETS)
@library_errors
@click.pass_context
def train(ctx, data, label_file, text_col, image_col, id_col, label_col, image_root, recipe, config_file, out,
          overwrite, stats_json, **options):
    """Train one fusion model (or all seven) on DATA and write a self-describing run folder.

    DATA is an MVSA folder (data/{guid}.jpg|txt + a guid,tag file) or a Parquet/CSV table.
    Precedence: an explicit flag > --config FILE > --recipe > the default.
    """
    from .train import TrainSource, train as train_models

    fusions, model_cfg, train_cfg, weights, recipe = resolve_configs(ctx, recipe, config_file, options)
    say = say_for(stats_json)
    if recipe != "paper":
        values = dataclasses.asdict(model_cfg) | dataclasses.asdict(train_cfg) | {"fusion": fusions[0] if len(
            fusions) == 1 else "all"}
        say(f"recipe {recipe}: " + " ".join(f"--{k.replace('_', '-')} {values[k]}" for k in RECIPES[recipe]))
    source = TrainSource(data, label_file, text_col, image_col, id_col, label_col, image_root)
    results = train_models(source, out, fusions, model_cfg, train_cfg, weights=weights, overwrite=overwrite)
    stats = summary(results, out, train_cfg)
    for line in report_lines(stats, train_cfg):
        say(line)
    write_stats(stats_json, stats)
