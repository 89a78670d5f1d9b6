"""`mmsa score`: parse options, call one engine, print the summary. Exit codes: errors.py.

Its own flags are its inputs and outputs (INPUTS, --model, --out, --stats-json, --engine); the
rest are generated from the declared options (options.py: Columns, ScoreOptions, RayOptions)."""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import click

from ..cli_options import CommandFailed, dataclass_options, library_errors, say_for, stats_json_option, write_stats
from ..errors import EXIT_INTERRUPTED, InputError, MmsaError, PipelineError, exit_code_for
from ..flags import values_of
from ..io.storage import is_uri
from .options import Columns, RayOptions, ScoreOptions


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
    from ..io.checkpointed import rows_done

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
        from ..io.storage import bucket_of, one_line, open_fs

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


def check_local_out(out) -> None:
    """The local engine writes one Parquet file (local or s3://, gs://...), never into a folder."""
    if not is_uri(out) and os.path.isdir(out):
        raise click.BadParameter(f"{out} is a directory (the local engine writes one Parquet file)", param_hint="--out")


def score_with_ray(inputs, model_dir, out, opts: ScoreOptions, ray: RayOptions):
    from .engines.ray_files import score_files_ray

    ray = dataclasses.replace(ray, rows_per_file=opts.row_group_size)
    return score_files_ray(inputs, model_dir, out, opts, ray, progress=opts.progress)


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="Model folder written by `mmsa export` (model.onnx, tokenizer/, manifest.json).")
@click.option("--out", required=True, type=click.Path(),
              help="Output Parquet file; with --engine ray a directory. Local, or on object storage "
                   "(s3://bucket/scored.parquet, gs://...).")
@stats_json_option
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine, one Parquet file (the pipeline). ray: a Ray Data job (pip install "
                   "'mmsa-tweets[ray]'), --out is a directory of Parquet files plus _manifest.json, --row-group-size "
                   "rows per file at most; rows in no particular order (join on the id column, which it requires).")
@dataclass_options([Columns, ScoreOptions, RayOptions])
@library_errors
@_exit_codes
def score(inputs, model_dir, out, stats_json, engine, **options):
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
    check_stats_path(stats_json)
    opts = values_of(ScoreOptions, options, columns=values_of(Columns, options))
    if engine == "ray":
        summary = score_with_ray(list(inputs), model_dir, out, opts, values_of(RayOptions, options))
    else:
        from .engines.local import score_files

        check_local_out(out)
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
