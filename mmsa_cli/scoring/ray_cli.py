"""The `--engine` options of `mmsa score` (kept apart from cli.py so the two merge easily).
Imports neither Ray nor numpy: `mmsa --help` stays fast, and a missing Ray is reported only
when `--engine ray` is asked for."""
from __future__ import annotations

import os

import click

from ..io.storage import is_uri


class _Actors(click.ParamType):
    """MIN or MIN,MAX: the scoring actor pool (MIN,MAX lets Ray grow it while there is work)."""
    name = "MIN[,MAX]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
        except ValueError:
            low, high = 0, -1
        if not 1 <= low <= high:
            self.fail(f"{value!r}: expected MIN or MIN,MAX with 1 <= MIN <= MAX (e.g. 4 or 2,8)", param, ctx)
        return low, high


_OPTIONS = [
    click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="local: this machine, one Parquet file (the pipeline). ray: a Ray Data job (pip install "
                      "'mmsa-tweets[ray]'), --out is a directory of Parquet files plus _manifest.json, --row-group-size "
                      "rows per file at most; rows in no particular order (join on the id column, which it "
                      "requires)."),
    click.option("--ray-address", default=None,
                 help="Ray engine: 'auto' or 'ray://HOST:10001' (or HOST:PORT) joins a cluster [default: start "
                      "a local one]."),
    click.option("--actors", type=_Actors(), default="1", show_default=True,
                 help="Ray engine: scoring actors, MIN or MIN,MAX (each loads the model once)."),
    click.option("--gpus-per-actor", type=click.FloatRange(0, 64), default=0.0, show_default=True,
                 help="Ray engine: GPUs per scoring actor; fractions share a GPU (0.5: two models per GPU). "
                      "0: the actors run on the CPU."),
    click.option("--image-cpus", type=click.FloatRange(0.01), default=1.0, show_default=True,
                 help="Ray engine: CPUs per image-decoding task (the CPU stage before the actors)."),
    click.option("--ray-rows-per-call", type=click.IntRange(1), default=1024, show_default=True,
                 help="Ray engine: rows per block and per actor call."),
    click.option("--ray-cpus", type=click.IntRange(1), default=None,
                 help="Ray engine, local cluster only: logical CPUs it offers [default: the machine's]."),
    click.option("--ray-object-store-mb", type=click.IntRange(75), default=None,
                 help="Ray engine, local cluster only: object store size [default: Ray's]."),
]


def check_local_out(out) -> None:
    """The local engine writes one Parquet file (local or s3://, gs://...), never into a folder."""
    if not is_uri(out) and os.path.isdir(out):
        raise click.BadParameter(f"{out} is a directory (the local engine writes one Parquet file)", param_hint="--out")


def ray_options(fn):
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def score_with_ray(inputs, model_dir, out, opts, engine: dict):
    from .engines.ray_files import RayOptions, score_files_ray

    ropts = RayOptions(address=engine["ray_address"], actors=engine["actors"],
                       gpus_per_actor=engine["gpus_per_actor"], image_cpus=engine["image_cpus"],
                       rows_per_call=engine["ray_rows_per_call"], rows_per_file=opts.row_group_size, local_cpus=engine["ray_cpus"],
                       object_store_mb=engine["ray_object_store_mb"])
    return score_files_ray(inputs, model_dir, out, opts, ropts, progress=opts.progress)
