"""mmsa inside Ray Data pipelines: a Dataset in, the same Dataset with the result columns out.

    import ray
    from mmsa_cli.scoring import score_dataset, ScoreActor

    ds = ray.data.read_parquet("s3://bucket/tweets/")
    scored = score_dataset(ds, "models/ote", image_root="s3://bucket/images", actors=(1, 4), gpus_per_actor=0.5)
    scored.write_parquet("s3://bucket/scored/")        # Ray does not keep input order: join on the id

Two stages, each with its own resource budget:
  prepare_image_columns   Ray tasks (`image_cpus` CPUs each): read + decode + resize + crop each
                          image (the local engine's code, images/prepare.py) into uint8 pixels, or
                          the row's image error; for GPU actors, plain JPEGs stay bytes
                          (`gpu_decode_share`) and nvJPEG decodes them in the actor
  ScoreActor              an actor pool (`actors` = min, max; `gpus_per_actor` may be a fraction):
                          loads the model folder once, tokenizes, runs ONNX Runtime, applies the
                          bad-row policy (contract/rows.py)
Rows keep their error and never fail a batch: an unexpected exception scores the batch row by
row and marks only the rows that still fail (`internal: ...`). A fatal ONNX Runtime / CUDA
error ends the actor's process so Ray starts a fresh one (a broken CUDA context never heals).

Ray is imported lazily; without it the entry points raise RayUnavailableError (exit 2).
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import ConfigError
from ...contract.inputs import ModelInputs
from ...contract.model_folder import ModelFolder
from ..errors import InputError
from ..inputs import ResolvedColumns, resolve_columns
from ..options import Columns, RayOptions, ScoreOptions
from ..images.prepare import GpuSplit, ImageResult, ImageSpec, fetch_remote, prepare_image
from ...io.storage import is_relative_path, root_string

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mmsa-tweets[ray]'"
# Columns the image stage adds for the actors (dropped from the output).
PIXELS = "_mmsa_pixels"            # uint8 [S,S,3] as bytes; null when the image is unusable
IMAGE_ERROR = "_mmsa_image_error"  # "<kind>: <message>"; null when the pixels are fine
IS_JPEG = "_mmsa_is_jpeg"          # PIXELS holds the file's JPEG bytes, for the GPU actor's nvJPEG
PATH_COLUMN = "path"               # what read_parquet(include_paths=True) adds: the row's input file
INTERNAL = "internal"              # error kind of a row whose scoring raised (never expected)
# Bytes an image task needs beyond its pixels: the worker process, the decoder, Arrow. Ray's
# memory monitor saw 117.5 MiB for a task of 50 small images (tests/test_ray.py).
IMAGE_TASK_MEMORY = 160 << 20


class RayUnavailableError(ConfigError):
    """Ray is not installed (or too old), or the cluster cannot be reached (exit 2)."""


def require_ray():
    """The ray module, or RayUnavailableError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayUnavailableError(f"--engine ray needs Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


# ----------------------------------------------------------------------------- image stage

def read_image_results(table: pa.Table, image_col: str, spec: ImageSpec, image_root: str | None,
                       roots_from_paths: str | None = None, gpu_share: float = 0.0) -> list[ImageResult]:
    """One ImageResult per row (pixels, JPEG bytes or error), never an exception. gpu_share:
    the fraction of plain JPEGs left as bytes for nvJPEG (GpuSplit, as in the local
    pipeline); the rest are decoded here. image_root: a local
    folder or a URI prefix; None: each row's input file's folder when roots_from_paths is a
    scheme ('' for local files, 's3://'...) and the table has PATH_COLUMN, else only absolute
    paths and image bytes are accepted."""
    col = table.column(image_col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    values = col.to_pylist()
    if image_root is None and roots_from_paths is not None and PATH_COLUMN in table.column_names:
        roots = [roots_from_paths + os.path.dirname(p) for p in table.column(PATH_COLUMN).to_pylist()]
    elif image_root is None:  # absolute paths (under "/") and URIs only, as Scorer.score_batch
        roots, spec = ["/"] * len(values), replace(spec, allow_outside_root=True)
        values = [_relative_refused(v) for v in values]
    else:
        roots = [image_root] * len(values)
    if gpu_share > 0:
        spec = replace(spec, gpu_jpeg=True)
    split = GpuSplit(gpu_share) if gpu_share > 0 else None
    tasks = list(zip(values, roots))
    fetched = fetch_remote(tasks, spec)
    return [v if isinstance(v, ImageResult) else prepare_image(v, root, spec, split, fetched.get(i))
            for i, (v, root) in enumerate(tasks)]


def _relative_refused(value: Any) -> Any:
    """A relative path without an image root: its error row (never a silently missing image)."""
    if is_relative_path(value):
        return ImageResult("error", None, f"missing: image path {value!r} is relative and no image root was given")
    return value


def prepare_image_columns(table: pa.Table, *, image_col: str, spec: ImageSpec, image_root: str | None = None,
                          roots_from_paths: str | None = None, keep_image: bool = False,
                          gpu_share: float = 0.0) -> pa.Table:
    """The image stage (Ray tasks): the image column becomes PIXELS, IS_JPEG and IMAGE_ERROR."""
    results = read_image_results(table, image_col, spec, image_root, roots_from_paths, gpu_share)
    payload = [r.payload.tobytes() if r.status == "pixels" else r.payload if r.status == "jpeg" else None
               for r in results]
    drop = [c for c in (PATH_COLUMN, None if keep_image else image_col) if c and c in table.column_names]
    return (table.drop_columns(drop).append_column(PIXELS, pa.array(payload, pa.binary()))
            .append_column(IS_JPEG, pa.array([r.status == "jpeg" for r in results], pa.bool_()))
            .append_column(IMAGE_ERROR, pa.array([r.error for r in results], pa.string())))


# ----------------------------------------------------------------------------- scoring actor

class ScoreActor:
    """A Ray Data callable class: loads the model folder once, then scores batches.

    `__call__` takes a pyarrow Table (batch_format="pyarrow") or a dict of numpy arrays
    (batch_format="numpy") and returns the same kind: the id column, the result columns
    (label, prob_*, error, error_kind, predicted_from) and the kept columns. With dicts, a row
    without prediction has NaN probabilities (numpy has no null floats); with tables, nulls.
    Images are read here unless an upstream prepare_image_columns stage did it.
    """

    def __init__(self, model_dir: str, device: str = ScoreOptions.device, *, columns: Columns = Columns(),
                 image_root: str | None = None, roots_from_paths: str | None = None,
                 allow_outside_root: bool = ScoreOptions.allow_outside_root,
                 batch_size: int | None = ScoreOptions.batch_size, threads: int | None = None,
                 max_image_bytes: int = ScoreOptions.max_image_bytes, decision_rule: bool = ScoreOptions.decision_rule):
        from ..scorer import Scorer

        # The model is loaded from its path here, never shipped through the object store
        # (actor restarts need their constructor arguments; ray issue 53727).
        self.scorer = Scorer(str(model_dir), device, batch_size=batch_size, threads=threads,
                             decision_rule=decision_rule)
        self.columns = columns
        self.image_root = root_string(image_root)
        self.roots_from_paths = roots_from_paths
        self.spec = self.scorer.image_spec(allow_outside_root, max_image_bytes)

    def __call__(self, batch):
        as_dict = isinstance(batch, dict)
        table = pa.table({k: _to_arrow(v) for k, v in batch.items()}) if as_dict else _as_table(batch)
        try:
            out = self._score(table)
        except Exception as exc:
            _exit_if_fatal(exc)
            out = self._score_rows_one_by_one(table)
        if as_dict:
            return {c: out.column(c).to_numpy(zero_copy_only=False) for c in out.column_names}
        return out

    def _score(self, table: pa.Table) -> pa.Table:
        s = self.scorer
        prepared = PIXELS in table.column_names
        cols = resolve_columns(table.schema, self.columns, uses_text=s.uses_text,
                               uses_image=s.uses_image and not prepared, where="the batch")
        if cols.id is None:
            raise InputError(_NEED_ID)
        results = None
        if s.uses_image:
            results = (_prepared_results(table, s.inputs.image_size) if prepared else
                       read_image_results(table, cols.image, self.spec, self.image_root, self.roots_from_paths))
        plan = s.plan(table, ResolvedColumns(cols.text, None, cols.id, cols.keep), [""] * table.num_rows)
        images = (lambda rows: s.pixel_batch([results[i] for i in rows], self.spec)) if results is not None else None
        probs, errors, sources = s.score_plan(plan, images)  # the batch loop of every engine
        return s.result_table(table.column(cols.id), cols.id_name, probs, errors, sources,
                            {c: table.column(c) for c in cols.keep})

    def _score_rows_one_by_one(self, table: pa.Table) -> pa.Table:
        """After an unexpected exception: each row alone, so only the rows that fail again
        are marked (null prediction, error kind `internal`), never the whole batch."""
        id_col = self.columns.id or "guid"
        parts = []
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            try:
                parts.append(self._score(row))
            except Exception as exc:
                _exit_if_fatal(exc)
                log.warning("row %s could not be scored: %s", row.column(id_col)[0] if id_col in
                            row.column_names else i, exc)
                keep = {c: row.column(c) for c in self.columns.keep if c in row.column_names}
                parts.append(self.scorer.result_table(row.column(id_col), id_col, np.full((1, 3), np.nan, np.float32),
                                          [f"{INTERNAL}: {type(exc).__name__}: {exc}"], [None], keep))
        return pa.concat_tables(parts) if parts else table.select([])


_NEED_ID = ("the Ray engine needs an id column (a 'guid' column or --id-col): Ray does not keep row order, "
            "so rows are matched by id")


def _prepared_results(table: pa.Table, size: int) -> list[ImageResult]:
    results = []
    jpeg = table.column(IS_JPEG).to_pylist()
    for data, error, is_jpeg in zip(table.column(PIXELS).to_pylist(), table.column(IMAGE_ERROR).to_pylist(), jpeg):
        if error or data is None:
            results.append(ImageResult("error", None, error or "missing: no image"))
        elif is_jpeg:  # nvJPEG decodes it in pixel_batch (the CPU path would decode it there too)
            results.append(ImageResult("jpeg", data, None))
        else:
            results.append(ImageResult("pixels", np.frombuffer(data, np.uint8).reshape(size, size, 3), None))
    return results


def _exit_if_fatal(exc: BaseException) -> None:
    """ONNX Runtime and CUDA failures are the process's, not the row's: exit, and Ray restarts
    the actor and retries its batch."""
    fatal = type(exc).__module__.startswith("onnxruntime") or "CUDA" in str(exc) or "cuda" in type(exc).__name__
    if fatal:
        log.error("fatal model error, restarting this actor: %s: %s", type(exc).__name__, exc)
        os._exit(1)


def _to_arrow(values) -> pa.Array:
    arr = np.asarray(values)
    return pa.array(arr.tolist() if arr.dtype == object else arr)


def _as_table(batch) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    return pa.Table.from_pandas(batch, preserve_index=False)


# ----------------------------------------------------------------------------- Dataset in, Dataset out

# The defaults below are the declared options' (scoring/options.py): ScoreOptions for what both
# engines take, RayOptions for the cluster's. Keyword arguments stay the API.
_S, _R = ScoreOptions, RayOptions


def score_dataset(ds, model_dir: str | Path | ModelFolder, *, columns: Columns = Columns(),
                  image_root: str | Path | None = _S.image_root, allow_outside_root: bool = _S.allow_outside_root,
                  device: str = _S.device, actors: tuple[int, int] = _R.actors,
                  gpus_per_actor: float = _R.gpus_per_actor, cpus_per_actor: float = 1.0,
                  image_cpus: float = _R.image_cpus, batch_size: int | None = _S.batch_size,
                  rows_per_call: int = _R.rows_per_call, threads: int | None = None,
                  roots_from_paths: str | None = None, actor_class: type | None = None,
                  actor_kwargs: dict | None = None, schema: pa.Schema | None = None,
                  gpu_decode_share: float | str | None = None, max_image_bytes: int = _S.max_image_bytes,
                  decision_rule: bool = _S.decision_rule):
    """`ds` with mmsa's result columns: the id column, label, prob_positive, prob_neutral,
    prob_negative, error, error_kind, predicted_from, then `columns.keep`. Lazy, like every
    Dataset transformation; one row out per row in, in no particular order (join on the id).

    The model folder is checked here, on the driver (ModelFolderError, exit 3), and so are the
    columns (InputError, exit 2), before any work starts. image_root: a local folder or a
    URI prefix (`s3://bucket/images`); None accepts absolute paths and image bytes only.
    actor_class: a ScoreActor subclass (extra columns, instrumentation), given actor_kwargs too.
    schema: the input columns' types when the caller knows them; otherwise ds.schema(), which
    may run the pipeline on a first block to find out. gpu_decode_share: the fraction of plain
    JPEGs the image tasks pass to CUDA actors undecoded, for nvJPEG (jpeg_share_for; CPU actors
    get pixels: they would decode between model calls). Images over
    max_image_bytes are `too_large` rows; decision_rule=False labels by the arg-max instead of
    the model's decision offsets (the local engine's max_image_bytes and decision_rule)."""
    ray = require_ray()
    from ...contract.model_folder import load_model_folder

    # A folder the caller already loaded (and so checked) is not hashed a second time.
    folder = model_dir if isinstance(model_dir, ModelFolder) else load_model_folder(model_dir)
    m = folder.manifest
    cols = resolve_columns(schema or dataset_schema(ds), columns, uses_text=m.uses_text, uses_image=m.uses_image,
                           where="the dataset")
    if cols.id is None:
        raise InputError(_NEED_ID)
    low, high = actors
    if not 1 <= low <= high:
        raise ConfigError(f"actors must be 1 <= min <= max, not {low},{high}")
    actor_device = actor_device_for(device, gpus_per_actor)
    share = jpeg_share_for(gpu_decode_share, actor_device)
    root = root_string(image_root)
    if cols.image:
        spec = ImageSpec.of(ModelInputs.from_manifest(m), allow_outside_root=allow_outside_root,
                            max_bytes=max_image_bytes)
        ds = _image_stage(ds, cols, spec, root, roots_from_paths, rows_per_call, image_cpus, share)
    gpu = {"num_gpus": gpus_per_actor} if gpus_per_actor else {}
    return ds.map_batches(
        actor_class or ScoreActor, batch_format="pyarrow", batch_size=rows_per_call, zero_copy_batch=True,
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high), num_cpus=cpus_per_actor, **gpu,
        fn_constructor_kwargs=dict(model_dir=str(folder.path), device=actor_device, columns=columns,
                                   image_root=root, roots_from_paths=roots_from_paths,
                                   allow_outside_root=allow_outside_root, batch_size=batch_size, threads=threads,
                                   max_image_bytes=max_image_bytes, decision_rule=decision_rule,
                                   **(actor_kwargs or {})))


def _image_stage(ds, cols: ResolvedColumns, spec: ImageSpec, root: str | None, roots_from_paths: str | None,
                 rows_per_call: int, image_cpus: float, share: float):
    """The image tasks ahead of the actors: the image column becomes pixels (or JPEG bytes for
    a GPU actor), or the row's image error.

    The memory request sizes the task (its pixels plus one decoded image at a time) and keeps
    this stage apart: with identical requests Ray fuses it into the actors, which would then
    decode between model calls instead of receiving pixels from as many CPU tasks as the
    cluster has room for."""
    return ds.map_batches(prepare_image_columns, batch_format="pyarrow", batch_size=rows_per_call,
                          num_cpus=image_cpus, memory=rows_per_call * spec.size ** 2 * 3 + IMAGE_TASK_MEMORY,
                          zero_copy_batch=True,
                          fn_kwargs=dict(image_col=cols.image, spec=spec, image_root=root,
                                         roots_from_paths=roots_from_paths, keep_image=cols.image in cols.keep,
                                         gpu_share=share))


def jpeg_share_for(setting: float | str | None, actor_device: str) -> float:
    """The share of plain JPEGs the image tasks pass to the actors undecoded: only actors on
    CUDA take any (nvJPEG), also when Ray reserved a GPU for an actor kept on the CPU. None or
    "auto" is 1 there: the local pipeline's "auto" balances two decoders in one process, and
    here the image tasks run elsewhere."""
    if actor_device != "cuda":
        return 0.0
    return 1.0 if setting in (None, "auto") else float(setting)


def actor_device_for(device: str, gpus_per_actor: float) -> str:
    """An actor uses a GPU only when Ray reserved one for it: "auto" follows the reservation,
    "cuda" without one is refused (ConfigError, exit 2)."""
    if device == "cuda" and not gpus_per_actor:
        raise ConfigError("device cuda needs GPUs for the actors: give --gpus-per-actor (gpus_per_actor) > 0")
    return device if device != "auto" else ("cuda" if gpus_per_actor else "cpu")


def dataset_schema(ds) -> pa.Schema:
    """A Dataset's schema as pyarrow (Ray's Schema wraps it, or lists names and types)."""
    schema = ds.schema()
    base = getattr(schema, "base_schema", schema)
    if isinstance(base, pa.Schema):
        return base
    return pa.schema([pa.field(n, t if isinstance(t, pa.DataType) else pa.string())
                      for n, t in zip(schema.names, schema.types)])
