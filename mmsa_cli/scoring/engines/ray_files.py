"""`mmsa score --engine ray`: Parquet files (local or object storage) -> a directory of
Parquet files on a Ray cluster, resumable, with a manifest written last.

    OUT/part-<hash>.parquet   scored rows; one file per written batch, named by the hash of
                              its ids, so a batch Ray runs twice overwrites its own file
    OUT/_job.json             the job's fingerprint (inputs, model, options), written first
    OUT/_manifest.json        written last: files, row counts, error counts by kind, model
                              sha256, options. Present = the run is complete.

Resume: the ids already in OUT's part files are skipped (read once on the driver, handed to
the filter tasks through the object store: about 8 bytes per id). A part file appears
whole or not at all (written under a temporary name and renamed; object stores publish an
object when its upload completes), so a killed driver never leaves half a batch behind.
Ray does not keep input order: join on the id.
"""
from __future__ import annotations

import posixpath
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ... import __version__
from ...errors import InputError, PipelineError
from ...io.part_folder import MANIFEST_FILE, OutputDir, write_part
from ...contract.model_folder import ModelFolder, load_model_folder
from ..inputs import InputSet, ResolvedColumns, open_inputs
from ..options import RayOptions, ScoreOptions
from .local import job_fields
from .ray_dataset import _NEED_ID, PATH_COLUMN, RayUnavailableError, actor_device_for, require_ray, score_dataset

# Actors that may die while starting, in a row, before the job fails (Ray Data's default is
# 0: the first one fails the job). Deaths at start were seen in the multi-node test when it
# ran in the same process after another cluster (actors cancelled before they ran, dozens a
# second: no budget helps there, hence its fresh interpreter); a budget covers the few a
# lost node can cause, and a start that always fails (no CUDA on a node) still ends the job.
ACTOR_INIT_DEATHS = 20


@dataclass
class RaySummary:
    status: str                         # "done" or "already_complete"
    output: str
    rows: int
    rows_this_run: int
    resumed_rows: int
    rows_with_errors: int
    errors_by_kind: dict
    rows_without_prediction: int
    files: int
    wall_seconds: float
    rows_per_second: float
    engine: str = "ray"
    model: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def skipped_lines(self) -> list[str]:
        """Inputs left out: none (--on-bad-input skip is the local engine's; a Ray job that
        cannot read an input fails with exit 6)."""
        return []

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_kind.items())) or "none"
        if self.status == "already_complete":
            return [f"mmsa score: {self.output} is already complete ({self.rows} rows); nothing to do"]
        return [f"mmsa score (ray): {self.rows} rows in {self.files} files under {self.output} "
                f"({self.rows_this_run} scored by this run, {self.resumed_rows} kept from before)",
                f"  {self.rows_with_errors} rows with errors ({kinds}); {self.rows_without_prediction} without prediction",
                f"  {self.wall_seconds:.1f} s, {self.rows_per_second:,.1f} rows/s"]


def drop_done(table: pa.Table, *, id_col: str, done) -> pa.Table:
    """Resume: rows whose id is already in the output are not scored again. `done`: the ids,
    or an ObjectRef to them (put once by the driver, read from each node's object store)."""
    if not isinstance(done, pa.Array):
        import ray

        done = ray.get(done)
    return table.filter(pc.invert(pc.is_in(table.column(id_col), value_set=done)))


# ----------------------------------------------------------------------------- the cluster

def connect(ray, opts: RayOptions) -> bool:
    """Start or join the cluster; True when this call started Ray (so it shuts it down)."""
    if ray.is_initialized():
        return False
    address = opts.address
    if address in (None, "", "local"):
        store = opts.object_store_mb * 1024 ** 2 if opts.object_store_mb else None
        # "local": never join whatever /tmp/ray/ray_current_cluster points at (a stale file
        # makes plain ray.init() try a dead cluster).
        ray.init(address="local", num_cpus=opts.local_cpus, object_store_memory=store, include_dashboard=False,
                 log_to_driver=False)
        return True
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as exc:
        raise RayUnavailableError(f"--ray-address {address}: cannot join the Ray cluster: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds with one line, not after Ray's minute of retries."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(f"--ray-address {address!r}: expected 'auto', 'local', 'HOST:PORT' or "
                                  f"'ray://HOST:PORT'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailableError(f"--ray-address {address}: cannot connect to {host}:{port} within "
                                  f"{timeout_s:.0f} s ({exc.strerror or exc})") from None


# ----------------------------------------------------------------------------- the job

def score_files_ray(inputs, model_dir: str | Path, out: str | Path, options: ScoreOptions | None = None,
                    ray_options: RayOptions | None = None, *, progress=None) -> RaySummary:
    """What `mmsa score --engine ray` runs. `options` is the local engine's ScoreOptions
    (columns, image_root, allow_outside_root, device, batch_size, max_image_bytes, decision_rule,
    overwrite, resume). Every check that can fail runs before the cluster starts."""
    opts, ropts = options or ScoreOptions(), ray_options or RayOptions()
    opts.check()
    wall = time.perf_counter()
    ray = require_ray()                                       # exit 2, before anything else
    job = _RayJob.open(inputs, model_dir, opts, ropts)        # exit 2 (inputs, options), 3 (model folder)
    target = OutputDir(out, job.fingerprint, overwrite=opts.overwrite, resume=opts.resume)   # exit 4 / 5
    if target.complete:
        done = target.read_json(MANIFEST_FILE)
        return RaySummary("already_complete", str(out), done["rows"], 0, done["rows"], done["rows_with_errors"],
                          done["errors_by_kind"], done["rows_without_prediction"], len(done["files"]),
                          round(time.perf_counter() - wall, 3), 0.0, model=job.model)
    started = connect(ray, ropts)                             # exit 2 when unreachable
    try:
        target.prepare()
        _configure(ray, progress)
        this_run, resumed = job.run(ray, target)
    except Exception as exc:
        if getattr(exc, "exit_code", None):
            raise
        raise PipelineError(f"the Ray job failed; parts written so far are kept, rerun with --resume: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        if started:
            ray.shutdown()
    return _finalize(target, job.cols.id, job.source.total_rows, this_run, resumed, job.fingerprint, job.model,
                     ropts, wall)


def _configure(ray, progress) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = 0   # > 0 drops whole blocks; rows carry their errors instead
    # An actor still starting on a node that is lost dies "in __init__", which Ray Data
    # does not retry by default. The model folder was checked here, so such deaths are
    # the cluster, not the model; the count resets whenever an actor starts.
    ctx.max_consecutive_actor_init_deaths = ACTOR_INIT_DEATHS
    if progress is not None:
        ctx.enable_progress_bars = bool(progress)


@dataclass
class _RayJob:
    """One --engine ray job, checked on the driver: its inputs, model folder and columns."""
    opts: ScoreOptions
    ropts: RayOptions
    folder: ModelFolder
    source: InputSet
    cols: ResolvedColumns
    fingerprint: dict
    model: dict

    @classmethod
    def open(cls, inputs, model_dir, opts: ScoreOptions, ropts: RayOptions) -> "_RayJob":
        folder = load_model_folder(model_dir)
        m = folder.manifest
        source = open_inputs(inputs, opts.image_root)         # every footer read here
        cols = source.resolve_columns(opts.columns, uses_text=m.uses_text, uses_image=m.uses_image)
        if cols.id is None:
            raise InputError(_NEED_ID)
        actor_device_for(opts.device, ropts.gpus_per_actor)   # cuda without GPUs
        fingerprint = {"format": "mmsa-ray-output/1", **job_fields(source, folder, opts, cols.id)}
        model = {"path": str(folder.path), "model_sha256": m.model_sha256, "fusion": m.fusion}
        return cls(opts, ropts, folder, source, cols, fingerprint, model)

    def run(self, ray, target: OutputDir) -> tuple[int, int]:
        """Read, skip what an interrupted run wrote, score, write parts: (rows this run, resumed)."""
        opts, ropts, cols = self.opts, self.ropts, self.cols
        before = target.read_parts([cols.id])
        resumed = before.num_rows if before is not None else 0
        in_fs, paths, scheme = self.source.location()
        with_paths = bool(opts.image_root is None and cols.image)  # each file's folder is its rows' image root
        ds = ray.data.read_parquet(paths, filesystem=in_fs, include_paths=with_paths)
        ds = ds.select_columns(cols.read + ([PATH_COLUMN] if with_paths else []))
        # A few small files can come back as a single block, which one actor would score
        # alone: cut blocks to rows_per_call rows (streaming, no shuffle).
        ds = ds.repartition(target_num_rows_per_block=ropts.rows_per_call)
        if resumed:
            ds = ds.map_batches(drop_done, batch_format="pyarrow", zero_copy_batch=True,
                                fn_kwargs={"id_col": cols.id, "done": ray.put(before.column(cols.id).combine_chunks())})
        scored = score_dataset(ds, self.folder, columns=opts.columns, image_root=opts.image_root,
                               allow_outside_root=opts.allow_outside_root, device=opts.device,
                               actors=ropts.actors, gpus_per_actor=ropts.gpus_per_actor, image_cpus=ropts.image_cpus,
                               batch_size=opts.batch_size, rows_per_call=ropts.rows_per_call,
                               roots_from_paths=scheme, schema=self.source.unified_schema(cols.read),
                               gpu_decode_share=opts.gpu_decode_share,
                               max_image_bytes=opts.max_image_bytes, decision_rule=opts.decision_rule)
        written = scored.map_batches(write_part, batch_format="pyarrow", batch_size=ropts.rows_per_file,
                                     fn_kwargs={"fs": target.fs, "path": target.path, "id_col": cols.id})
        this_run = 0
        for batch in written.iter_batches(batch_format="pyarrow", batch_size=None):
            this_run += pc.sum(batch.column("rows")).as_py() or 0
        return this_run, resumed


def _finalize(target: OutputDir, id_col: str, total_rows: int, this_run: int, resumed: int, job: dict,
              model: dict, ropts: RayOptions, wall: float) -> RaySummary:
    """Count what OUT holds, check every input row is there exactly once, write the manifest."""
    files = target.part_files()
    per_file, kinds, rows, no_pred, ids = [], Counter(), 0, 0, []
    for path in files:
        t = pq.read_table(path, columns=[id_col, "error_kind", "label"], filesystem=target.fs)
        per_file.append({"name": posixpath.basename(path), "rows": t.num_rows})
        kinds.update(k for k in t.column("error_kind").to_pylist() if k)
        no_pred += t.column("label").null_count
        rows += t.num_rows
        ids.append(t.column(id_col))
    unique = len(pc.unique(pa.chunked_array(ids).combine_chunks())) if ids else 0
    if rows != total_rows or unique != rows:
        raise PipelineError(f"{target.uri} holds {rows} rows ({unique} distinct ids) for {total_rows} input rows: "
                            f"the ids must be unique; rerun with --resume, or --overwrite")
    seconds = time.perf_counter() - wall
    summary = RaySummary("done", target.uri, rows, this_run, resumed, sum(kinds.values()), dict(kinds), no_pred,
                         len(files), round(seconds, 3), round(this_run / seconds, 1) if seconds > 0 else 0.0,
                         model=model)
    import ray

    target.finalize({**summary.to_dict(), "files": per_file, "job": job, "mmsa_version": __version__,
                     "ray_version": ray.__version__, "ray_options": asdict(ropts)})
    return summary
