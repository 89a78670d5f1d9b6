"""The `mmsa` command line. Each command parses options, calls one library function and
prints; library errors become one-line messages with a non-zero exit (no traceback).

The group is lazy: a command's module is imported only when that command runs or shows
its help (COMMANDS below), and no command module imports torch, transformers or
onnxruntime at import time, so `mmsa --help` and `mmsa score` stay light (the base
install, `pip install 'mmsa-tweets[cpu]'`, has no torch at all; tests/test_install.py).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import click

from . import DISTRIBUTION, __version__
from .cli_options import (CommandFailed, data_argument, dataclass_options, library_errors, say_for, stats_json_option,
                          write_stats)
from .errors import EXIT_USAGE
from .flags import DEVICE, FUSION, OVERWRITE

# What each extra provides, as (modules a command imports, the install line that brings them).
_TRAIN = (("torch", "transformers"), f"pip install '{DISTRIBUTION}[train,cpu]' (or [train,gpu] on a CUDA machine)")
_EXPORT = (("torch", "transformers", "onnx", "onnxruntime"), _TRAIN[1])
_SCORE = (("onnxruntime",), f"install {DISTRIBUTION}[cpu] (or [gpu] on a CUDA machine)")

# command -> ("module:attribute", what it needs installed). Moving a command to another
# module changes one string here.
COMMANDS: dict[str, tuple[str, tuple[tuple[str, ...], str]]] = {
    "train": ("mmsa_cli.training.cli:train", _TRAIN),
    "evaluate": ("mmsa_cli.cli:evaluate", _TRAIN),
    "predict": ("mmsa_cli.cli:predict", _TRAIN),
    "export": ("mmsa_cli.onnx_export.cli:export", _EXPORT),
    "score": ("mmsa_cli.scoring.cli:score", _SCORE),
}


def _requiring(command: click.Command, modules: tuple[str, ...], install: str) -> click.Command:
    """The command, checking before it runs (not for --help) that its extra is installed:
    one line and exit 2 instead of an ImportError traceback."""
    callback = command.callback

    @functools.wraps(callback)
    def checked(*args, **kwargs):
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise CommandFailed(f"mmsa {command.name} needs {', '.join(missing)}, which this installation lacks: "
                                f"{install}", EXIT_USAGE)
        return callback(*args, **kwargs)

    command.callback = checked
    return command


class LazyGroup(click.Group):
    """click.Group whose commands are imported on first use (Click's documented LazyGroup)."""

    def __init__(self, *args, lazy_commands: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]
        return super().get_command(ctx, name)

    def _load(self, name: str) -> click.Command:
        target, (modules, install) = self.lazy_commands[name]
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return _requiring(command, modules, install)


def _load(data, label_file, text_col, image_col, id_col, label_col, image_root):
    from .data import load_examples

    return load_examples(data, label_file=label_file, text_col=text_col, image_col=image_col, id_col=id_col,
                         label_col=label_col, image_root=Path(image_root) if image_root else None)


@dataclass
class RunOptions:
    """evaluate and predict: which model of a run folder, and the device it runs on."""
    fusion: str | None = FUSION()
    device: str = DEVICE()


@dataclass
class PredictOptions(RunOptions):
    overwrite: bool = OVERWRITE(detail="written in full, then renamed")


run_option = click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
                          help="A run folder written by `mmsa train`.")


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mmsa", message=f"%(prog)s %(version)s ({DISTRIBUTION})")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Multimodal (text + image) sentiment analysis of tweets: train, export, score."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    for noisy in ("transformers", "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@click.command()
@run_option
@data_argument
@click.option("--predictions", type=click.Path(dir_okay=False), help="Also write per-row predictions (.csv/.parquet).")
@stats_json_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Old spelling of --stats-json -.")
@dataclass_options([RunOptions])
@library_errors
def evaluate(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, predictions,
             device, stats_json, as_json):
    """Metrics of a trained model on labelled DATA, predicted as `mmsa score` would."""
    from .runs import load_run
    from .scoring.evaluate import evaluate_examples, table_image_root, write_predictions

    stats_json = "-" if as_json else stats_json
    run = load_run(run_dir, fusion)
    metrics, frame = evaluate_examples(run, _load(data, label_file, text_col, image_col, id_col, label_col, image_root),
                                       device=device, image_root=table_image_root(data, image_root))
    if predictions:
        write_predictions(frame, Path(predictions))
    say = say_for(stats_json)
    say(f"{run.model_cfg.fusion} on {metrics['n']} rows: accuracy {100 * metrics['accuracy']:.2f}  "
        f"weighted F1 {100 * metrics['weighted_f1']:.2f}  macro F1 {100 * metrics['macro_f1']:.2f}")
    if metrics["rows_with_errors"]:
        say(f"{metrics['rows_with_errors']} rows had errors (see --predictions); {metrics['rows_without_prediction']} "
            f"of them got no prediction and are not counted")
    write_stats(stats_json, metrics)


@click.command()
@run_option
@data_argument
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Predictions file (.csv or .parquet).")
@dataclass_options([PredictOptions])
@library_errors
def predict(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, out, overwrite,
            device):
    """Per-row predictions for DATA with a trained run: the columns of `mmsa score` (guid, label, prob_*,
    error, error_kind, predicted_from)."""
    from .io.outputs import refuse_existing
    from .runs import load_run
    from .scoring.evaluate import predict_examples, table_image_root, write_predictions

    refuse_existing(out, overwrite)
    run = load_run(run_dir, fusion)
    frame = predict_examples(run, _load(data, label_file, text_col, image_col, id_col, label_col, image_root),
                             device=device, image_root=table_image_root(data, image_root))
    write_predictions(frame, Path(out))
    errors = int(frame["error"].notna().sum())
    click.echo(f"wrote {len(frame)} predictions to {out}" + (f" ({errors} rows with errors, see its error column)"
                                                             if errors else ""))


if __name__ == "__main__":
    main()
