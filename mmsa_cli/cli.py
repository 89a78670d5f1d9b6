"""The `mmsa` command line. Each command parses options, calls one library function and
prints; library errors become one-line messages with a non-zero exit (no traceback)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from . import __version__
from .cli_options import data_argument, device_option, library_errors
from .models import FUSIONS


def _load(data, label_file, text_col, image_col, id_col, label_col, image_root):
    from .data import load_examples

    return load_examples(data, label_file=label_file, text_col=text_col, image_col=image_col, id_col=id_col,
                         label_col=label_col, image_root=Path(image_root) if image_root else None)


def run_options(fn):
    fn = click.option("--fusion", type=click.Choice(list(FUSIONS)), default=None,
                      help="Which model of a `--fusion all` run folder.")(fn)
    fn = click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
                      help="A run folder written by `mmsa train`.")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mmsa")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Multimodal (text + image) sentiment analysis of tweets: train, export, score."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    for noisy in ("transformers", "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@main.command()
@run_options
@data_argument
@click.option("--predictions", type=click.Path(dir_okay=False), help="Also write per-row predictions (.csv/.parquet).")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@library_errors
def evaluate(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, predictions,
             device, as_json):
    """Metrics of a trained model on labelled data."""
    from .scoring.evaluate import evaluate_examples, table_image_root, write_predictions
    from .runs import load_run

    run = load_run(run_dir, fusion)
    metrics, frame = evaluate_examples(run, _load(data, label_file, text_col, image_col, id_col, label_col, image_root),
                                       device=device, image_root=table_image_root(data, image_root))
    if predictions:
        write_predictions(frame, Path(predictions))
    if as_json:
        click.echo(json.dumps({k: v for k, v in metrics.items()}, indent=2))
        return
    click.echo(f"{run.model_cfg.fusion} on {metrics['n']} rows: accuracy {100 * metrics['accuracy']:.2f}  "
               f"weighted F1 {100 * metrics['weighted_f1']:.2f}  macro F1 {100 * metrics['macro_f1']:.2f}")
    if metrics["rows_with_errors"]:
        click.echo(f"{metrics['rows_with_errors']} rows had errors (see --predictions); {metrics['rows_without_prediction']} "
                   f"of them got no prediction and are not counted")


@main.command()
@run_options
@data_argument
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Predictions file (.csv or .parquet).")
@device_option
@library_errors
def predict(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, out, device):
    """Per-row predictions with a trained run: the columns of `mmsa score` (guid, label, prob_*, error, ...)."""
    from .scoring.evaluate import predict_examples, table_image_root, write_predictions
    from .runs import load_run

    run = load_run(run_dir, fusion)
    frame = predict_examples(run, _load(data, label_file, text_col, image_col, id_col, label_col, image_root),
                             device=device, image_root=table_image_root(data, image_root))
    write_predictions(frame, Path(out))
    errors = int(frame["error"].notna().sum())
    click.echo(f"wrote {len(frame)} predictions to {out}" + (f" ({errors} rows with errors, see its error column)"
                                                             if errors else ""))


# Commands that live beside their library code.
from .onnx_export.cli import COMMANDS as _EXPORT_COMMANDS  # noqa: E402
from .scoring.cli import COMMANDS as _SCORE_COMMANDS  # noqa: E402
from .training.cli import COMMANDS as _TRAIN_COMMANDS  # noqa: E402

for _command in (*_TRAIN_COMMANDS, *_EXPORT_COMMANDS, *_SCORE_COMMANDS):
    main.add_command(_command)

if __name__ == "__main__":
    main()
