"""score_files(): Parquet files in -> one Parquet file out, on this machine, resumable.

The job: inputs opened and checked, the output decided (fresh, resume, already complete:
mmsa_cli/io/checkpointed.py), the model loaded once, then the rows streamed through the
stage threads (threads.py) and the output renamed into place; a ScoreSummary comes back.
job_fingerprint() is what a --resume must match; the Ray engine's job extends job_fields().
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from ... import __version__
from ...contract.model_folder import ModelFolder, load_model_folder
from ...contract.rows import ROW_COLUMN, output_schema
from ...io.checkpointed import OutputWriter
from ...io.storage import root_string
from ..inputs import InputSet, ResolvedColumns, check_output_not_an_input, open_inputs
from ..options import AUTO, Columns, ScoreOptions, check_share  # noqa: F401  (their old home: this module)
from ..report import RowProgress, ScoreSummary
from .decode_share import GpuDecodeShare  # noqa: F401  (its old home: this module)
from .threads import CHUNKS_IN_FLIGHT, Plumbing, ScoringThreads  # noqa: F401  (CHUNKS_IN_FLIGHT: old home)


def default_workers(device: str) -> int:
    cpus = os.cpu_count() or 2
    # On the CPU the model wants the cores; on CUDA the CPU only feeds it.
    return max(1, cpus - 2) if device == "cuda" else max(1, cpus // 4)


def job_fields(inputs: InputSet, folder: ModelFolder, opts: ScoreOptions, id_col: str | None) -> dict:
    """What identifies a scoring job in either engine: inputs, model folder, columns, image
    options. `model_folder_sha256` covers every file of the model folder that decides a
    prediction (model_folder.CHECKSUMS), not only model.onnx."""
    c = opts.columns
    return {"inputs": inputs.fingerprint(), "model_sha256": folder.manifest.model_sha256,
            "model_folder_sha256": folder.digest,
            "columns": {"text": c.text, "image": c.image, "id": id_col, "keep": list(c.keep)},
            "image_root": root_string(opts.image_root), "allow_outside_root": opts.allow_outside_root,
            "max_image_bytes": opts.max_image_bytes, "decision_rule": opts.decision_rule}


def job_fingerprint(inputs: InputSet, folder: ModelFolder, opts: ScoreOptions, batch_size: int) -> dict:
    """What must not change between a run and its --resume (and identifies a finished output):
    job_fields, and the batching and skipping that decide which rows land in which part."""
    return {"format": 2, **job_fields(inputs, folder, opts, opts.columns.id), "batch_size": batch_size,
            "row_group_size": opts.row_group_size, "on_bad_input": opts.on_bad_input}


def score_files(inputs: str | Path | Sequence[str | Path], model_dir: str | Path, out: str | Path,
                options: ScoreOptions | None = None, *, scorer=None) -> ScoreSummary:
    """Score Parquet file(s) into `out`; see README.md for the options and guarantees.
    `scorer` lets a caller reuse a loaded Scorer for several files."""
    opts = options or ScoreOptions()
    opts.check()
    wall = time.perf_counter()
    source = open_inputs(inputs, opts.image_root, skip_unreadable=opts.on_bad_input == "skip")
    check_output_not_an_input(out, source)
    folder = scorer.folder if scorer is not None else load_model_folder(model_dir)
    m = folder.manifest
    cols = source.resolve_columns(opts.columns, uses_text=m.uses_text, uses_image=m.uses_image)
    batch_size = opts.batch_size or (scorer.batch_size if scorer is not None else 0)  # 0: the device's default
    job = job_fingerprint(source, folder, opts, batch_size)
    writer = OutputWriter(out, job, overwrite=opts.overwrite, resume=opts.resume)
    if writer.complete:
        return ScoreSummary("already_complete", str(out), source.total_rows, 0, 0, 0, {}, 0,
                            round(time.perf_counter() - wall, 3), 0.0, {}, "", "",
                            {"path": str(folder.path), "model_sha256": m.model_sha256,
                             "model_folder_sha256": folder.digest})
    load_seconds = 0.0  # model load + warm-up, when this call loads the model (inside the wall time)
    try:
        if scorer is None:
            from ..scorer import Scorer  # onnxruntime: only when this call loads the model

            load = time.perf_counter()
            scorer = Scorer(model_dir, opts.device, batch_size=opts.batch_size, verify_checksum=False,
                            image_decoder=opts.image_decoder, decision_rule=opts.decision_rule)
            load_seconds = time.perf_counter() - load
        start_row = writer.start_row
        threads = _stream(scorer, folder, source, cols, writer, opts)
    finally:
        writer.release()
    cp = writer.checkpoint
    seconds = time.perf_counter() - wall
    done = cp.rows_done - start_row
    skipped = source.unreadable + cp.skipped
    return ScoreSummary(
        "done", str(out), cp.rows_done, done, start_row, sum(cp.errors_by_kind.values()), dict(cp.errors_by_kind),
        cp.no_prediction, round(seconds, 3), round(done / seconds, 1) if seconds > 0 else 0.0,
        {k: round(v, 3) for k, v in threads.stages.items()}, scorer.device, scorer.provider,
        {**scorer.describe(), "model_folder_sha256": folder.digest},
        threads.job.workers, opts.batch_size or scorer.batch_size, list(scorer.warnings), threads.image_summary(),
        skipped_inputs=skipped, rows_skipped=sum(s["rows"] or 0 for s in skipped),
        model_load_seconds=round(load_seconds, 3))


def _stream(scorer, folder: ModelFolder, source: InputSet, cols: ResolvedColumns, writer: OutputWriter,
            opts: ScoreOptions) -> ScoringThreads:
    """The rows through the stage threads into the writer's parts, then the output renamed in."""
    schema = _output_schema(source, cols)
    workers = opts.workers if opts.workers is not None else default_workers(scorer.device)
    progress = RowProgress(source.total_rows, writer.start_row, enabled=opts.progress, every_s=opts.log_every_s)
    prep_threads = opts.prep_threads or (2 if scorer.device == "cuda" else 1)
    spec = scorer.image_spec(opts.allow_outside_root, opts.max_image_bytes)
    plumbing = Plumbing(source, cols, spec, writer, schema, progress, opts.batch_size or scorer.batch_size,
                        opts.row_group_size, workers, opts.prefetch, prep_threads,
                        skip_bad_input=opts.on_bad_input == "skip")
    threads = ScoringThreads(scorer, plumbing,
                             GpuDecodeShare(opts.gpu_decode_share, workers if cols.image else 0, prep_threads))
    threads.start()
    progress.close()
    meta = {b"mmsa.version": __version__.encode(), b"mmsa.model": _model_meta(scorer, folder).encode()}
    t0 = time.perf_counter()
    writer.finalize(schema, meta)
    threads.stages["write"] += time.perf_counter() - t0
    return threads


def _output_schema(source: InputSet, cols: ResolvedColumns) -> pa.Schema:
    unified = source.unified_schema(cols.read)
    id_field = unified.field(cols.id) if cols.id else pa.field(ROW_COLUMN, pa.int64())
    return output_schema(id_field, [unified.field(c) for c in cols.keep])


def _model_meta(scorer, folder) -> str:
    m = scorer.manifest
    return json.dumps({"name": Path(scorer.folder.path).name, "fusion": m.fusion, "text_encoder": m.text_encoder,
                       "image_encoder": m.image_encoder, "precision": m.precision, "target": m.target,
                       "model_sha256": m.model_sha256, "model_folder_sha256": folder.digest,
                       "format_version": m.format_version,
                       "exported_with": m.versions, "source_run": m.source_run}, sort_keys=True)
