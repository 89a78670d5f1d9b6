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
import json
import logging
from pathlib import Path

import click

from . import DISTRIBUTION, __version__
from .config import CLASS_WEIGHTINGS, FREEZE_CHOICES, RECIPES, TEXT_NORMALIZATIONS, ModelConfig, TrainConfig
from .cli_options import CommandFailed, device_option, library_errors
from .errors import EXIT_USAGE
from .registry import FUSION_NAMES, IMAGE_PRESET_NAMES, PAPER_NAMES, TEXT_PRESET_NAMES

# What each extra provides, as (modules a command imports, the install line that brings them).
_TRAIN = (("torch", "transformers"), f"pip install '{DISTRIBUTION}[train,cpu]' (or [train,gpu] on a CUDA machine)")
_EXPORT = (("torch", "transformers", "onnx", "onnxruntime"), _TRAIN[1])
_SCORE = (("onnxruntime",), f"install {DISTRIBUTION}[cpu] (or [gpu] on a CUDA machine)")

# command -> ("module:attribute", what it needs installed). Moving a command to another
# module changes one string here.
COMMANDS: dict[str, tuple[str, tuple[tuple[str, ...], str]]] = {
    "train": ("mmsa_cli.cli:train", _TRAIN),
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


def data_options(fn):
    """Where labelled or unlabelled tweets come from: an MVSA folder or a table."""
    options = [
        click.option("--data", "data", required=True, type=click.Path(exists=True),
                     help="MVSA folder (data/{guid}.jpg|txt + a guid,tag file) or a Parquet/CSV table."),
        click.option("--label-file", default="train.txt", show_default=True,
                     help="MVSA layout: the guid,tag file, relative to --data."),
        click.option("--text-col", default="text", show_default=True, help="Table layout: text column."),
        click.option("--image-col", default="image", show_default=True, help="Table layout: image path column."),
        click.option("--id-col", default=None, help="Table layout: id column [default: guid if present, else row number]."),
        click.option("--label-col", default="label", show_default=True, help="Table layout: label column (optional)."),
        click.option("--image-root", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Table layout: folder image paths are relative to [default: the table's folder]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load(data, label_file, text_col, image_col, id_col, label_col, image_root):
    from .data import load_examples

    return load_examples(data, label_file=label_file, text_col=text_col, image_col=image_col, id_col=id_col,
                         label_col=label_col, image_root=Path(image_root) if image_root else None)


def run_options(fn):
    fn = click.option("--fusion", type=click.Choice(FUSION_NAMES), default=None,
                      help="Which model of a `--fusion all` run folder.")(fn)
    fn = click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
                      help="A run folder written by `mmsa train`.")(fn)
    return fn


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mmsa", message=f"%(prog)s %(version)s ({DISTRIBUTION})")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Multimodal (text + image) sentiment analysis of tweets: train, export, score."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    for noisy in ("transformers", "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def apply_recipe(ctx: click.Context, options: dict) -> dict:
    """options with the recipe's values for every option left at its default (given ones win)."""
    chosen = dict(options)
    for name, value in RECIPES[options["recipe"]].items():
        if ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
            chosen[name] = value
    return chosen


@click.command()
@data_options
@click.option("--recipe", default="paper", show_default=True, type=click.Choice(list(RECIPES)),
              help="Preset option values: `best` is the winner of the 5-fold CV comparison (README, Results); "
                   "options given explicitly override it.")
@click.option("--fusion", default="ote", show_default=True, type=click.Choice([*FUSION_NAMES, "all"]),
              help="Model to train; `all` trains the paper's seven and writes a comparison.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--text-encoder", default=ModelConfig.text_encoder, show_default=True,
              help=f"Preset ({', '.join(TEXT_PRESET_NAMES)}) or a local Hugging Face model folder.")
@click.option("--image-encoder", default=ModelConfig.image_encoder, show_default=True,
              type=click.Choice(IMAGE_PRESET_NAMES))
@click.option("--image-size", default=ModelConfig.image_size, show_default=True, type=click.IntRange(0, 1024),
              help="Side S images are resized and centre-cropped to; 0 = the image encoder's own (efficientnet-lite2: "
                   "260, resnet50: 224). Saved with the run, so export and score use it too.")
@click.option("--text-weights", type=click.Path(exists=True), help="Folder with the text encoder's weights.")
@click.option("--image-weights", type=click.Path(exists=True, dir_okay=False), help="Image encoder state dict.")
@click.option("--random-weights", is_flag=True, help="Random encoder weights (export and speed tests only).")
@click.option("--epochs", default=TrainConfig.epochs, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=TrainConfig.batch_size, show_default=True, type=click.IntRange(1))
@click.option("--lr", "encoder_lr", default=TrainConfig.encoder_lr, show_default=True, type=float,
              help="Learning rate of the encoders being fine-tuned.")
@click.option("--layer-lr-decay", default=TrainConfig.layer_lr_decay, show_default=True,
              type=click.FloatRange(0, 1, min_open=True),
              help="Layer-wise learning-rate decay of fine-tuned encoders: each layer (image stage) below the top "
                   "learns at this factor of the one above; 1 = the same rate for all.")
@click.option("--head-lr", default=TrainConfig.head_lr, show_default=True, type=float,
              help="Learning rate of the fusion layers and classifiers.")
@click.option("--patience", default=TrainConfig.patience, show_default=True, type=click.IntRange(1),
              help="Early stopping: epochs without validation gain.")
@click.option("--freeze", default=TrainConfig.freeze, show_default=True, type=click.Choice(FREEZE_CHOICES),
              help="Encoders kept fixed. A frozen image encoder's features are computed once.")
@click.option("--image-train-stages", default=TrainConfig.image_train_stages, show_default=True,
              type=click.IntRange(0), help="With the image encoder trained (--freeze none/text): fine-tune only its "
                                           "last N trunk stages (EfficientNet-Lite: stem, each block, head); 0 = all.")
@click.option("--reencode-images", is_flag=True, help="Run the frozen image encoder every epoch instead of once.")
@click.option("--feature-cache", type=click.Path(file_okay=False), default="",
              help="Folder that keeps a frozen image encoder's features between runs (same images, same encoder).")
@click.option("--label-smoothing", default=TrainConfig.label_smoothing, show_default=True, type=click.FloatRange(0, 0.5))
@click.option("--ema-decay", default=TrainConfig.ema_decay, show_default=True,
              type=click.FloatRange(0, 1, max_open=True),
              help="Validate and keep an exponential moving average of the weights (e.g. 0.998); 0 = off.")
@click.option("--rdrop-alpha", default=TrainConfig.rdrop_alpha, show_default=True, type=click.FloatRange(0),
              help="R-Drop: each training batch runs twice (two dropout masks) and this weight x the symmetric KL "
                   "divergence of the two predictions joins the loss; 0 = off. Training takes about twice as long.")
@click.option("--modality-dropout", default=TrainConfig.modality_dropout, show_default=True,
              type=click.FloatRange(0, 1),
              help="Chance that a training row loses its image or its text (even odds), replaced by the blank image "
                   "or empty text that scoring uses for an unusable one, so those rows' fallback predictions are learned.")
@click.option("--aux-loss-weight", default=TrainConfig.aux_loss_weight, show_default=True, type=click.FloatRange(0),
              help="Weight of the unimodal classifiers' (or ensemble members') own losses.")
@click.option("--class-weighting", default=TrainConfig.class_weighting, show_default=True,
              type=click.Choice(CLASS_WEIGHTINGS), help="`balanced`: inverse-frequency class weights in the loss.")
@click.option("--text-normalization", default=ModelConfig.text_normalization, show_default=True,
              type=click.Choice(TEXT_NORMALIZATIONS),
              help="`tweet`: URLs, @mentions, RT, hashtags and emoji rewritten as words before tokenizing.")
@click.option("--ensemble-members", default=",".join(ModelConfig.ensemble_members), show_default=True,
              help="Fusions averaged by `--fusion ensemble` (comma-separated).")
@click.option("--max-length", default=ModelConfig.max_length, show_default=True, type=click.IntRange(8, 512))
@click.option("--fusion-dim", default=ModelConfig.fusion_dim, show_default=True, type=click.IntRange(8))
@click.option("--val-fraction", default=TrainConfig.val_fraction, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--folds", default=0, type=click.IntRange(0, 20),
              help="Stratified k-fold cross-validation (e.g. 5): mean and spread over folds in cv.md.")
@click.option("--fold", default=0, type=click.IntRange(0, 20),
              help="With --folds: train only this fold (1-based), e.g. one fold per machine into the same --out; "
                   "cv.md appears once every fold is there.")
@click.option("--max-train-examples", default=0, type=click.IntRange(0), help="Cap on training rows (quick runs).")
@click.option("--seed", default=TrainConfig.seed, show_default=True, type=int)
@device_option
@click.option("--num-workers", default=TrainConfig.num_workers, show_default=True, type=click.IntRange(0),
              help="Image-decoding worker processes.")
@click.option("--strict", is_flag=True, help="Fail on unreadable images instead of skipping those rows.")
@library_errors
@click.pass_context
def train(ctx, **options):
    """Train one fusion model (or all seven) and write a self-describing run folder."""
    from .train import TrainSource, train as train_models

    o = apply_recipe(ctx, options)
    if o["recipe"] != "paper":
        click.echo(f"recipe {o['recipe']}: " + " ".join(f"--{k.replace('_', '-')} {o[k]}" for k in RECIPES[o["recipe"]]))
    members = tuple(m.strip() for m in o["ensemble_members"].split(",") if m.strip())
    model_cfg = ModelConfig(fusion=o["fusion"] if o["fusion"] != "all" else "ote", text_encoder=o["text_encoder"],
                            image_encoder=o["image_encoder"], image_size=o["image_size"], fusion_dim=o["fusion_dim"],
                            max_length=o["max_length"],
                            text_normalization=o["text_normalization"], ensemble_members=members)
    train_cfg = TrainConfig(epochs=o["epochs"], batch_size=o["batch_size"], encoder_lr=o["encoder_lr"],
                            layer_lr_decay=o["layer_lr_decay"], head_lr=o["head_lr"], patience=o["patience"],
                            freeze=o["freeze"],
                            image_train_stages=o["image_train_stages"],
                            cache_image_features=not o["reencode_images"], feature_cache=o["feature_cache"],
                            label_smoothing=o["label_smoothing"], ema_decay=o["ema_decay"], rdrop_alpha=o["rdrop_alpha"],
                            modality_dropout=o["modality_dropout"], aux_loss_weight=o["aux_loss_weight"],
                            class_weighting=o["class_weighting"], val_fraction=o["val_fraction"], folds=o["folds"],
                            fold=o["fold"], seed=o["seed"], device=o["device"], num_workers=o["num_workers"],
                            strict=o["strict"], max_train_examples=o["max_train_examples"])
    source = TrainSource(o["data"], o["label_file"], o["text_col"], o["image_col"], o["id_col"], o["label_col"],
                         o["image_root"])
    fusions = list(PAPER_NAMES) if o["fusion"] == "all" else [o["fusion"]]
    results = train_models(source, o["out"], fusions, model_cfg, train_cfg, pretrained=not o["random_weights"],
                           text_weights=o["text_weights"], image_weights=o["image_weights"])
    for r in results:
        v = r["validation"]
        fold = f"fold {r['fold']} " if r.get("fold") else ""
        click.echo(f"{fold}{r['fusion']:>13}: val accuracy {100 * v['accuracy']:.2f}  weighted F1 {100 * v['weighted_f1']:.2f}"
                   f"  macro F1 {100 * v['macro_f1']:.2f}  (best epoch {r['best_epoch']} of {r['epochs_run']})")
    skipped = results[0]["skipped_rows"]
    if skipped:
        click.echo(f"skipped {skipped} rows with unusable images: see skipped.csv in the run folder")
    folds, out = o["folds"], o["out"]
    if folds > 1 and not Path(out, "cv.json").is_file():
        click.echo(f"run folder: {out} (fold {o['fold']} of {folds}; cv.md appears once every fold is trained)")
    elif folds > 1:
        for row in json.loads(Path(out, "cv.json").read_text())["rows"]:
            click.echo(f"{folds}-fold CV {row['fusion']:>13}: accuracy {100 * row['accuracy']:.2f} ± "
                       f"{100 * row['accuracy_std']:.2f}  weighted F1 {100 * row['weighted_f1']:.2f} ± "
                       f"{100 * row['weighted_f1_std']:.2f}")
        click.echo(f"run folder: {out} (cv.md, cv.png; one folder per fold; `mmsa export --run {out} --fold all` "
                   f"makes one model of all the folds)")
    else:
        click.echo(f"run folder: {out}" + (" (comparison.md, comparison.png)" if len(results) > 1 else ""))


@click.command()
@run_options
@data_options
@click.option("--predictions", type=click.Path(dir_okay=False), help="Also write per-row predictions (.csv/.parquet).")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@library_errors
def evaluate(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, predictions,
             device, as_json):
    """Metrics of a trained model on labelled data."""
    from .evaluate import evaluate_examples, table_image_root, write_predictions
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
        click.echo(f"{metrics['rows_with_errors']} rows had unusable images and are not counted")


@click.command()
@run_options
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Predictions file (.csv or .parquet).")
@device_option
@library_errors
def predict(run_dir, fusion, data, label_file, text_col, image_col, id_col, label_col, image_root, out, device):
    """Per-row predictions (guid, label, three probabilities, error) with a trained run."""
    from .evaluate import predict_examples, table_image_root, write_predictions
    from .runs import load_run

    run = load_run(run_dir, fusion)
    frame = predict_examples(run, _load(data, label_file, text_col, image_col, id_col, label_col, image_root),
                             device=device, image_root=table_image_root(data, image_root))
    write_predictions(frame, Path(out))
    errors = int(frame["error"].notna().sum())
    click.echo(f"wrote {len(frame)} predictions to {out}" + (f" ({errors} rows with errors, see its error column)"
                                                             if errors else ""))


if __name__ == "__main__":
    main()
