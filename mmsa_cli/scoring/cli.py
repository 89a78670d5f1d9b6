"""`mmsa score`: parse options, call score_files(), print the summary. Exit codes: errors.py."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import click

from ..cli_options import CommandFailed, device_option, library_errors, say_for, stats_json_option, write_stats
from ..errors import EXIT_INTERRUPTED, MmsaError, PipelineError, exit_code_for
from .errors import InputError
from .preprocess import DECODERS
from .ray_cli import check_local_out, ray_options, score_with_ray  # imports neither Ray nor numpy
from .storage import is_uri


def _exit_codes(fn):
    """Like library_errors, and a failed or interrupted run still writes --stats-json (status,
    exit code, reason). Ctrl-C (SIGINT) exits EXIT_INTERRUPTED (130) with one line; the
    completed row groups are kept for --resume."""
    @functools.wraps(fn)
    def wrapper(*args, stats_json=None, out=None, **kwargs):
        try:
            return fn(*args, stats_json=stats_json, out=out, **kwargs)
        except MmsaError as exc:
            code = exit_code_for(exc)
            if not isinstance(exc, _StatsPathError):  # nowhere to write it
                _write_stats(stats_json, {"status": "failed", "exit_code": code, "error": str(exc)})
            raise CommandFailed(str(exc), code) from exc
        except KeyboardInterrupt as exc:
            done, parts = _rows_done(out)
            message = _interrupted_message(done, parts)
            _write_stats(stats_json, {"status": "interrupted", "exit_code": EXIT_INTERRUPTED, "error": message,
                                      "rows_done": done})
            raise CommandFailed(message, EXIT_INTERRUPTED) from exc
    return wrapper


def _rows_done(out: str | None) -> tuple[int, str]:
    from .output import rows_done

    return rows_done(out) if out else (0, "")


def _interrupted_message(done: int, parts: str) -> str:
    if not done:
        return "interrupted (SIGINT) before the first row group was written"
    return (f"interrupted (SIGINT) after {done} rows: the completed row groups are kept in {parts}; "
            f"rerun with --resume to continue")


def _write_stats(path: str | None, data: dict) -> None:
    """--stats-json after a failure: never hides the failure's own message and exit code."""
    if not path:
        return
    try:
        write_stats(path, data)
    except OSError as exc:
        click.echo(f"WARNING: cannot write --stats-json {path}: {exc.strerror or exc}", err=True)


class _StatsPathError(InputError):
    """--stats-json itself cannot be written (exit 2)."""


def check_stats_path(path: str | None) -> None:
    """--stats-json is checked before any work, like --out: a missing or unwritable folder
    (or a folder given as the file) would otherwise fail after the whole job."""
    if not path or path == "-":
        return
    if is_uri(path):  # object storage: the bucket must exist
        from .storage import bucket_of, one_line, open_fs

        try:
            bucket, found = bucket_of(*open_fs(path))
        except InputError as exc:  # an unknown scheme, credentials
            raise _StatsPathError(f"--stats-json: {exc}") from None
        except OSError as exc:
            raise _StatsPathError(f"cannot reach --stats-json {path}: {one_line(exc)}") from None
        if not found:
            raise _StatsPathError(f"--stats-json {path}: the bucket {bucket} does not exist")
        return
    target = Path(path)
    if target.is_dir():
        raise _StatsPathError(f"--stats-json {path} is a folder; give a file name (e.g. scored.stats.json)")
    folder = target.parent
    if not folder.is_dir():
        raise _StatsPathError(f"--stats-json folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise _StatsPathError(f"--stats-json {path} cannot be written (permissions or a read-only file system)")


class _Share(click.ParamType):
    """'auto' or a number from 0 to 1."""
    name = "auto|FLOAT"

    def convert(self, value, param, ctx):
        from .errors import InputError
        from .pipeline import check_share

        try:
            return check_share(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.strip() for v in values for c in v.split(",") if c.strip())


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="Model folder written by `mmsa export` (model.onnx, tokenizer/, manifest.json).")
@click.option("--out", required=True, type=click.Path(),
              help="Output Parquet file; with --engine ray a directory. Local, or on object storage "
                   "(s3://bucket/scored.parquet, gs://...).")
@click.option("--text-col", default="text", show_default=True, help="Text column.")
@click.option("--image-col", default="image", show_default=True,
              help="Image column: paths (relative to --image-root) or encoded image bytes.")
@click.option("--id-col", default=None, help="Id column copied to the output [default: guid if present, else "
                                             "the row position, in a column named 'row'].")
@click.option("--keep-columns", multiple=True, help="Input columns to copy to the output (comma-separated or repeated).")
@click.option("--image-root", type=click.Path(), default=None,
              help="Folder or bucket prefix (s3://bucket/images) image paths are relative to [default: each "
                   "input file's folder].")
@click.option("--allow-outside-root", is_flag=True, help="Accept image paths outside --image-root ('..', absolute).")
@device_option
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Rows per model call [default: 32 CPU, 512 CUDA].")
# Defaults repeat ScoreOptions.row_group_size / .prefetch: the pipeline (numpy, pyarrow) is imported
# only when scoring runs, so `mmsa --help` stays fast; test_score_option_defaults_are_the_library_defaults
# keeps them equal.
@click.option("--row-group-size", type=click.IntRange(1), default=8_192, show_default=True,
              help="Rows per output row group; also the checkpoint interval for --resume.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Image worker processes (0: in-process) [default: CPUs-2 on CUDA, CPUs/4 on the CPU].")
@click.option("--prefetch", type=click.IntRange(1), default=4, show_default=True, help="Batches prepared ahead of the model.")
@click.option("--gpu-decode-share", type=_Share(), default="1", show_default=True,
              help="CUDA: fraction of each batch's plain JPEGs decoded by nvJPEG on the GPU; the image workers "
                   "decode and resize the rest on the CPU, in parallel (1: all on the GPU, 0: none; 1 was "
                   "fastest on a 16-core H100 machine). Try lower values where the GPU is slow and "
                   "cores are many. auto: balanced after every batch by the two paths' "
                   "busy times. No effect on CPU runs.")
@click.option("--max-image-bytes", type=click.IntRange(1), default=50_000_000, show_default=True,
              help="Image files larger than this are error rows (too_large), refused before they are read.")
@click.option("--on-bad-input", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="An input file or row group that cannot be read: fail (exit 2), or skip it and list it "
                   "with its reason (summary, --stats-json, stderr).")
@click.option("--image-decoder", type=click.Choice(DECODERS), default="auto", show_default=True,
              help="CUDA: who decodes and resizes the JPEGs. dali: NVIDIA DALI on the GPU's JPEG engines (pip install "
                   "mmsa-tweets[gpu]); nvjpeg: torchvision's nvJPEG; cpu: the image workers, pixels uploaded; auto: dali "
                   "when installed, else nvjpeg. No effect on CPU runs.")
@click.option("--no-decision-rule", is_flag=True,
              help="Label each row by the arg-max of its probabilities, ignoring the model's decision rule "
                   "(the manifest's decision_offsets).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (or an interrupted run's parts).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run; starts fresh if there is none, "
                                             "does nothing if the output is complete.")
@stats_json_option
@click.option("--no-progress", is_flag=True, help="No progress bar or periodic progress lines.")
@click.option("--log-every", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds between progress lines when stderr is not a terminal.")
@ray_options
@library_errors
@_exit_codes
def score(inputs, model_dir, out, text_col, image_col, id_col, keep_columns, image_root, allow_outside_root, device,
          batch_size, row_group_size, workers, prefetch, gpu_decode_share, max_image_bytes, on_bad_input,
          image_decoder, no_decision_rule, overwrite, resume, stats_json, no_progress, log_every, **engine):
    """Score INPUTS (Parquet files, folders of them, or globs; local or s3://, gs://...)
    into one Parquet file.

    Output columns: the id (or `row`), label, prob_positive, prob_neutral, prob_negative,
    error (null when the row was fine), error_kind, predicted_from, then any --keep-columns;
    rows in input order.

    \b
    Exit codes: 0 done or already complete; 2 usage or input problem; 3 model folder
    invalid; 4 output exists (another job) or an interrupted run awaits --resume;
    5 --resume refused (inputs/model/options changed); 6 failed while scoring (rerun
    with --resume); 7 --device cuda without a usable GPU; 130 interrupted (Ctrl-C; rerun
    with --resume); 1 any other error. See mmsa_cli/scoring/README.md.
    """
    from .inputs import Columns
    from .pipeline import ScoreOptions, score_files

    check_stats_path(stats_json)
    if engine["engine"] == "local":
        check_local_out(out)
    opts = ScoreOptions(
        columns=Columns(text=text_col, image=image_col, id=id_col, keep=_split(keep_columns)),
        image_root=image_root, allow_outside_root=allow_outside_root, device=device, batch_size=batch_size,
        row_group_size=row_group_size, workers=workers, prefetch=prefetch, gpu_decode_share=gpu_decode_share,
        overwrite=overwrite, resume=resume, progress=not no_progress, log_every_s=log_every,
        max_image_bytes=max_image_bytes, on_bad_input=on_bad_input, image_decoder=image_decoder,
        decision_rule=not no_decision_rule)
    if engine["engine"] == "ray":
        summary = score_with_ray(list(inputs), model_dir, out, opts, engine)
    else:
        summary = score_files(list(inputs), model_dir, out, opts)
    say = say_for(stats_json)
    for line in summary.lines():
        say(line)
    for warning in summary.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    for line in summary.skipped_lines():
        click.echo(f"WARNING: {line}", err=True)
    if stats_json:
        try:
            write_stats(stats_json, summary.to_dict())
        except OSError as exc:  # checked up front: only a fault appearing during the run gets here
            raise PipelineError(f"the output {out} is complete, but --stats-json {stats_json} cannot be written: "
                                f"{exc.strerror or exc}") from None
