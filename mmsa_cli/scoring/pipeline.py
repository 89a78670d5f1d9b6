"""score_files(): Parquet in -> Parquet out as an overlapped, bounded pipeline.

    read thread     read chunk (pyarrow) -> decode + tokenize texts -> batches sorted by
                    length (one chunk ahead, so chunk boundaries never starve the model)
    submit thread   each batch's image tasks submitted to the worker pool
    worker pool     read + decode + resize images (CPU); on CUDA they check JPEG headers and
                    hand `gpu_decode_share` of the plain JPEGs to nvJPEG as bytes, preparing
                    the rest themselves (GpuDecodeShare); separate processes (workers.py)
                    that hand pixels back through shared-memory slots, released after prep
    prep threads    gather a batch's images -> pixel batch (numpy; on CUDA nvJPEG + batched
                    resize + upload of the CPU-prepared pixels, two threads with their own
                    streams so decode overlaps everything)
    infer thread    ONNX Runtime (IO binding on CUDA), bad-row policy
    main thread     chunk done -> output row group + checkpoint, progress

Queues between the threads are bounded (`prefetch` batches), and at most CHUNKS_IN_FLIGHT
chunks (row groups) are alive at once, from being read to being written, so memory depends
on the batch size, prefetch depth and row-group size, never on the input's size.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from .. import __version__
from ..model_folder import load_model_folder
from .errors import InputError, PipelineError, ScoreError
from .inputs import (BAD_INPUT_CHOICES, Chunk, Columns, InputSet, ResolvedColumns, check_output_not_an_input,
                     iter_chunks, open_inputs)
from .output import OutputWriter
from .preprocess import MAX_IMAGE_BYTES, ImageSpec, prepare_images
from .report import STAGES, RowProgress, ScoreSummary
from .storage import root_string
from ..contract.rows import ROW_COLUMN, count_kinds, output_schema
from .workers import WorkerPool

log = logging.getLogger(__name__)
_END = object()
AUTO = "auto"
# Chunks alive at once: one being scored while the next is read and tokenized. Two is what
# a file of two row groups holds anyway, so a longer file needs no more memory. A third
# would not add speed: reading and tokenizing took 2.2 s of an 11.2 s, 60,000-row run on
# the H100 (benchmarks/results/score_gpu.md), so the next chunk is ready long before it is due.
CHUNKS_IN_FLIGHT = 2


@dataclass
class ScoreOptions:
    """Everything about a score_files() job but its inputs, model and output: the CLI's options
    (`mmsa score --help`), one field each, with the same defaults."""
    columns: Columns = field(default_factory=Columns)
    image_root: str | Path | None = None     # None: each input file's folder
    allow_outside_root: bool = False
    device: str = "auto"                      # auto, cpu, cuda
    batch_size: int | None = None             # None: 32 on the CPU, 512 on CUDA
    row_group_size: int = 8_192               # rows per output row group = checkpoint interval
    workers: int | None = None                # image processes; 0 = in the prep thread; None: by device
    prefetch: int = 4                         # batches prepared ahead of the model
    prep_threads: int | None = None           # pixel-batch threads; None: 2 on CUDA, 1 on the CPU
    gpu_decode_share: float | str = 1.0       # CUDA: share of plain JPEGs nvJPEG decodes ("auto": GpuDecodeShare)
    image_decoder: str = "auto"               # CUDA: auto (DALI if installed, else nvjpeg), dali, nvjpeg, cpu
    overwrite: bool = False
    resume: bool = False
    progress: bool = True
    log_every_s: float = 30.0
    max_image_bytes: int = MAX_IMAGE_BYTES    # larger image files are error rows, refused before reading
    on_bad_input: str = "fail"                # "skip": an unreadable file or row group is skipped and listed
    decision_rule: bool = True                # False: labels by arg-max, ignoring the manifest's decision_offsets


def default_workers(device: str) -> int:
    cpus = os.cpu_count() or 2
    # On the CPU the model wants the cores; on CUDA the CPU only feeds it.
    return max(1, cpus - 2) if device == "cuda" else max(1, cpus // 4)


class GpuDecodeShare:
    """gpu_decode_share: the fraction of each batch's plain JPEGs (those nvJPEG takes) decoded
    by nvJPEG on the GPU; the CPU workers fully prepare the rest (PIL draft decode + resize +
    crop, as on a CPU-only run) and the prep thread uploads their pixels, so both decoders work
    at once. 1 = all on the GPU, 0 = none. Only runs that decode on the GPU use it.

    A number is used as it is. AUTO starts where `workers` processes at CPU_IMAGES_PER_S each
    keep pace with `prep_threads` threads at GPU_IMAGES_PER_S each (H100 measurements, nvJPEG
    sharing the GPU with ONNX Runtime), then after every batch balances the busy times of the
    two paths for that batch:
        cpu = the workers' seconds for the batch / workers         (they run in parallel)
        gpu = the prep thread's seconds for the batch / prep threads
        share += GAIN * (cpu - gpu) / (cpu + gpu)                   (kept in 0..1)
    so the slower side gets less work until neither waits for the other. A change reaches the
    batches submitted after it, a few batches later; GAIN is small enough for that delay not to
    make it oscillate. Without worker processes the CPU path runs in the prep thread, in series
    with nvJPEG, so AUTO is then 1."""

    CPU_IMAGES_PER_S = 270.0
    GPU_IMAGES_PER_S = 3500.0
    GAIN = 0.03

    def __init__(self, setting: float | str, workers: int, prep_threads: int):
        self.setting = check_share(setting)
        self.auto = self.setting == AUTO and workers > 0
        self.workers, self.prep_threads = max(workers, 1), max(prep_threads, 1)
        if self.setting != AUTO:
            self.value = float(self.setting)
        elif workers > 0:
            gpu = self.prep_threads * self.GPU_IMAGES_PER_S
            self.value = gpu / (gpu + workers * self.CPU_IMAGES_PER_S)
        else:
            self.value = 1.0
        self._lock = threading.Lock()
        self.batches, self._sum, self.low, self.high = 0, 0.0, self.value, self.value

    def next(self) -> float:
        """The share for the next batch submitted (recorded for the summary)."""
        with self._lock:
            v = self.value
            self.batches += 1
            self._sum += v
            self.low, self.high = min(self.low, v), max(self.high, v)
            return v

    def update(self, cpu_seconds: float, gpu_seconds: float) -> None:
        """One batch's busy times: the workers' summed seconds, the prep thread's seconds."""
        if not self.auto:
            return
        cpu, gpu = cpu_seconds / self.workers, gpu_seconds / self.prep_threads
        if cpu + gpu <= 0:
            return
        with self._lock:
            self.value = min(1.0, max(0.0, self.value + self.GAIN * (cpu - gpu) / (cpu + gpu)))

    def summary(self) -> dict:
        mean = self._sum / self.batches if self.batches else self.value
        return {"gpu_decode_share": self.setting, "share_mean": round(mean, 3), "share_min": round(self.low, 3),
                "share_max": round(self.high, 3), "share_last": round(self.value, 3)}


def check_share(setting: float | str) -> float | str:
    """AUTO or a number in 0..1 (InputError otherwise)."""
    if isinstance(setting, str) and setting.strip().lower() == AUTO:
        return AUTO
    try:
        value = float(setting)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise InputError(f"gpu_decode_share must be 'auto' or a number from 0 to 1, not {setting!r}")
    return value


def job_fingerprint(inputs: InputSet, folder, opts: ScoreOptions, batch_size: int) -> dict:
    """What must not change between a run and its --resume (and identifies a finished output).
    `model_folder_sha256` covers every file of the model folder that decides a prediction
    (model_folder.CHECKSUMS), not only model.onnx."""
    c = opts.columns
    return {"format": 2, "inputs": inputs.fingerprint(), "model_sha256": folder.manifest.model_sha256,
            "model_folder_sha256": folder.digest,
            "columns": {"text": c.text, "image": c.image, "id": c.id, "keep": list(c.keep)},
            "image_root": root_string(opts.image_root),
            "allow_outside_root": opts.allow_outside_root, "batch_size": batch_size,
            "row_group_size": opts.row_group_size, "max_image_bytes": opts.max_image_bytes,
            "on_bad_input": opts.on_bad_input, "decision_rule": opts.decision_rule}


def check_options(opts: ScoreOptions) -> None:
    """Values the CLI's types already check; the API gets the same one-line errors."""
    if opts.row_group_size < 1 or (opts.batch_size is not None and opts.batch_size < 1) or opts.prefetch < 1:
        raise InputError("row_group_size, batch_size and prefetch must be >= 1")
    if opts.max_image_bytes < 1:
        raise InputError(f"max_image_bytes must be >= 1, not {opts.max_image_bytes}")
    if opts.on_bad_input not in BAD_INPUT_CHOICES:
        raise InputError(f"on_bad_input must be one of {', '.join(BAD_INPUT_CHOICES)}, not {opts.on_bad_input!r}")
    check_share(opts.gpu_decode_share)
    from .preprocess import check_decoder

    check_decoder(opts.image_decoder)


def score_files(inputs: str | Path | Sequence[str | Path], model_dir: str | Path, out: str | Path,
                options: ScoreOptions | None = None, *, scorer=None) -> ScoreSummary:
    """Score Parquet file(s) into `out`; see README.md for the options and guarantees.
    `scorer` lets a caller reuse a loaded Scorer for several files."""
    opts = options or ScoreOptions()
    check_options(opts)
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
            from .scorer import Scorer

            load = time.perf_counter()
            scorer = Scorer(model_dir, opts.device, batch_size=opts.batch_size, verify_checksum=False,
                            image_decoder=opts.image_decoder, decision_rule=opts.decision_rule)
            load_seconds = time.perf_counter() - load
        schema = _output_schema(source, cols)
        workers = opts.workers if opts.workers is not None else default_workers(scorer.device)
        progress = RowProgress(source.total_rows, writer.start_row, enabled=opts.progress, every_s=opts.log_every_s)
        prep_threads = opts.prep_threads or (2 if scorer.device == "cuda" else 1)
        spec = scorer.image_spec(opts.allow_outside_root, opts.max_image_bytes)
        run = _Run(scorer, source, cols, spec, writer, schema, progress,
                   opts.batch_size or scorer.batch_size, opts.row_group_size, workers, opts.prefetch,
                   prep_threads, GpuDecodeShare(opts.gpu_decode_share, workers if cols.image else 0, prep_threads))
        run.skip_bad_input = opts.on_bad_input == "skip"
        start_row = writer.start_row
        run.start()
        progress.close()
        meta = {b"mmsa.version": __version__.encode(), b"mmsa.model": _model_meta(scorer, folder).encode()}
        t0 = time.perf_counter()
        writer.finalize(schema, meta)
        run.stages["write"] += time.perf_counter() - t0
    finally:
        writer.release()
    cp = writer.checkpoint
    seconds = time.perf_counter() - wall
    done = cp.rows_done - start_row
    skipped = source.unreadable + cp.skipped
    return ScoreSummary(
        "done", str(out), cp.rows_done, done, start_row, sum(cp.errors_by_kind.values()), dict(cp.errors_by_kind),
        cp.no_prediction, round(seconds, 3), round(done / seconds, 1) if seconds > 0 else 0.0,
        {k: round(v, 3) for k, v in run.stages.items()}, scorer.device, scorer.provider,
        {**scorer.describe(), "model_folder_sha256": folder.digest},
        workers, opts.batch_size or scorer.batch_size, list(scorer.warnings), run.image_summary(),
        skipped_inputs=skipped, rows_skipped=sum(s["rows"] or 0 for s in skipped),
        model_load_seconds=round(load_seconds, 3))


def _output_schema(source: InputSet, cols: ResolvedColumns) -> pa.Schema:
    unified = source.unified_schema(cols.read)
    id_field = unified.field(cols.id) if cols.id else pa.field(ROW_COLUMN, pa.int64())
    return output_schema(id_field, [unified.field(c) for c in cols.keep])


def _model_meta(scorer, folder) -> str:
    import json

    m = scorer.manifest
    return json.dumps({"name": Path(scorer.folder.path).name, "fusion": m.fusion, "text_encoder": m.text_encoder,
                       "image_encoder": m.image_encoder, "precision": m.precision, "target": m.target,
                       "model_sha256": m.model_sha256, "model_folder_sha256": folder.digest,
                       "format_version": m.format_version,
                       "exported_with": m.versions, "source_run": m.source_run}, sort_keys=True)


@dataclass
class _ChunkState:
    chunk: Chunk
    plan: Any
    probs: np.ndarray
    errors: list
    predicted_from: list
    pending: int


class _Run:
    """The threads of one scoring run; the first failure stops them all and is re-raised."""

    def __init__(self, scorer, source: InputSet, cols: ResolvedColumns, spec: ImageSpec, writer: OutputWriter,
                 schema: pa.Schema, progress: RowProgress, batch_size: int, chunk_rows: int, workers: int,
                 prefetch: int, prep_threads: int = 1, share: GpuDecodeShare | None = None):
        self.scorer, self.source, self.cols, self.spec = scorer, source, cols, spec
        self.writer, self.schema, self.progress = writer, schema, progress
        self.batch_size, self.chunk_rows, self.workers = batch_size, chunk_rows, workers
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.stages = {k: 0.0 for k in STAGES}
        self._stage_lock = threading.Lock()
        self.prep_threads = prep_threads
        self.share = share or GpuDecodeShare(1.0, workers, prep_threads)
        gpu = getattr(scorer, "_gpu", None)  # how each image was prepared: the GPU path's counts
        self.images = dict.fromkeys(gpu.counts if gpu is not None else ("nvjpeg", "cpu", "nvjpeg_rejected"), 0)
        self.plans: queue.Queue = queue.Queue(maxsize=1)
        self.batches: queue.Queue = queue.Queue(maxsize=prefetch)
        self.ready: queue.Queue = queue.Queue(maxsize=2)
        self.done: queue.Queue = queue.Queue(maxsize=2)
        self.chunk_slots = threading.Semaphore(CHUNKS_IN_FLIGHT)  # taken by _read, given back by _write_chunk
        self.pool: WorkerPool | None = None
        self.skip_bad_input = False  # --on-bad-input skip: unreadable row groups are listed, not fatal

    # -------------------------------------------------------------- orchestration

    def start(self) -> None:
        gpu = getattr(self.scorer, "_gpu", None)
        gpu_before = dict(gpu.seconds) if gpu is not None else {}
        counts_before = dict(gpu.counts) if gpu is not None else {}
        switch = sys.getswitchinterval()
        if gpu is not None:  # many short GIL holds between GPU calls: hand the GIL over sooner
            sys.setswitchinterval(0.001)
        try:
            self._start()
        finally:
            sys.setswitchinterval(switch)
        for k, v in gpu_before.items():  # host time of the GPU prep: nvJPEG call vs resize and the rest
            self.stages[f"decode_gpu.{k}"] = gpu.seconds[k] - v
        for k, v in counts_before.items():
            self.images[k] = gpu.counts[k] - v

    def image_summary(self) -> dict:
        """Images decoded by nvJPEG / prepared on the CPU (nvjpeg_rejected: refused by nvJPEG,
        then CPU-prepared, so also in cpu); the GPU decode share used, where GPU decoding ran."""
        if not self.cols.image:
            return {}
        out = dict(self.images)
        out.update(self.share.summary() if self.spec.gpu_jpeg else {"gpu_decode_share": None})
        out["decoder"] = getattr(self.scorer, "image_decoder", None) or "cpu"
        return out

    def _start(self) -> None:
        if self.workers > 0 and self.cols.image:
            per, prefetch = self._part_size(self.batch_size), self.batches.maxsize
            # Enough slots for every batch that can be in flight: queued, being submitted, in prep.
            slots = (prefetch + self.prep_threads + 2) * -(-self.batch_size // per)
            self.pool = WorkerPool(self.workers, self.spec, slot_count=slots, slot_images=per, stop=self.stop)
        stages = [self._read, self._submit_batches, *[self._prep] * self.prep_threads, self._infer]
        threads = [threading.Thread(target=self._guard, args=(fn,), name=f"mmsa-{fn.__name__.strip('_')}", daemon=True)
                   for fn in stages]
        for t in threads:
            t.start()
        try:
            self._guard(self._write)
        except BaseException as exc:  # KeyboardInterrupt: stop the threads, keep the parts
            self._fail(exc)
        finally:
            if self.failure is not None:
                self.stop.set()
            for t in threads:
                t.join()
            if self.pool is not None:
                self.pool.shutdown()
        if self.failure is not None:
            exc = self.failure
            if isinstance(exc, (ScoreError, KeyboardInterrupt)):
                raise exc
            raise PipelineError(f"scoring failed: {type(exc).__name__}: {exc}; the completed row groups are kept: "
                                f"rerun with --resume") from exc

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        # Ctrl-C wins over what it causes in the other threads: the exit code says "interrupted"
        if self.failure is None or (isinstance(exc, KeyboardInterrupt) and not isinstance(self.failure, KeyboardInterrupt)):
            self.failure = exc
        self.stop.set()

    def _add(self, stage: str, seconds: float) -> None:
        with self._stage_lock:
            self.stages[stage] += seconds

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _acquire(self, slots: threading.Semaphore) -> bool:
        while not self.stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    # -------------------------------------------------------------- stages

    def _read(self) -> None:
        skipped = self.writer.checkpoint.skipped if self.skip_bad_input else None
        chunks = iter_chunks(self.source, self.cols, self.chunk_rows, self.writer.start_row, skipped=skipped)
        while True:
            if not self._acquire(self.chunk_slots):
                return
            chunk = next(chunks, None)
            if chunk is None:
                break
            self.stages["read"] += chunk.read_seconds
            plan = self.scorer.plan(chunk.table, self.cols, chunk.roots, self.batch_size)
            self.stages["tokenize"] += plan.seconds
            state = _ChunkState(chunk, plan, np.full((chunk.num_rows, 3), np.nan, np.float32),
                                [None] * chunk.num_rows, [None] * chunk.num_rows, len(plan.batches))
            if not self._put(self.plans, state):
                return
        self._put(self.plans, _END)

    def _submit_batches(self) -> None:
        while (state := self._get(self.plans)) is not _END:
            for rows in state.plan.batches:
                if not self._put(self.batches, (state, rows, self._submit(state.plan, rows))):
                    return
        self._put(self.batches, _END)

    def _submit(self, plan, rows: np.ndarray) -> list[Future] | list:
        tasks = self.scorer.image_tasks(plan, rows)
        if not tasks:
            return []
        share = self.share.next() if self.spec.gpu_jpeg else 1.0
        if self.pool is None:
            return [(tasks, share)]  # prepared in the prep thread
        per = self._part_size(len(tasks))
        # `start` continues the split's pattern across chunks: the batch is split as one.
        return [self.pool.submit(tasks[i:i + per], share, i) for i in range(0, len(tasks), per)]

    def _part_size(self, tasks: int) -> int:
        """Images per worker task list: a batch spread over all workers (at least 8 each)."""
        return max(8, -(-tasks // max(self.workers, 1)))

    def _prep(self) -> None:
        while (item := self._get(self.batches)) is not _END:
            state, rows, parts = item
            pixels = errors = None
            if self.cols.image:
                results = []
                cpu_seconds = 0.0
                for part in parts:
                    if isinstance(part, Future):
                        res, seconds = part.result()
                    else:
                        res, seconds = prepare_images(part[0], self.spec, part[1])
                    results += res
                    cpu_seconds += seconds
                self._add("decode_cpu", cpu_seconds)
                t0 = time.perf_counter()
                pixels, errors = self.scorer.pixel_batch(results, self.spec)
                seconds = time.perf_counter() - t0
                for part in parts:  # pixel_batch copied the pixels out of shared memory
                    if isinstance(part, Future):
                        self.pool.release(part)
                self._add("decode_gpu" if self.scorer.device == "cuda" else "decode_cpu", seconds)
                if self.spec.gpu_jpeg:
                    self.share.update(cpu_seconds, seconds)
                else:
                    self._count_cpu(sum(r.status == "pixels" for r in results))
            if not self._put(self.ready, (state, rows, pixels, errors)):
                return
        self._put(self.batches, _END)  # for the sibling prep threads
        self._put(self.ready, _END)

    def _count_cpu(self, n: int) -> None:
        with self._stage_lock:
            self.images["cpu"] += n

    def _infer(self) -> None:
        ended = 0
        while ended < self.prep_threads:
            t0 = time.perf_counter()
            item = self._get(self.ready)
            self._add("infer_waiting", time.perf_counter() - t0)
            if item is _END:
                if self.stop.is_set():
                    return
                ended += 1
                continue
            state, rows, pixels, image_errors = item
            t0 = time.perf_counter()
            probs, outcomes = self.scorer.infer(state.plan, rows, pixels, image_errors)
            self._add("infer", time.perf_counter() - t0)
            state.probs[rows] = probs
            for i, e, source in zip(rows, outcomes.errors, outcomes.predicted_from):
                state.errors[i], state.predicted_from[i] = e, source
            state.pending -= 1
            if state.pending == 0 and not self._put(self.done, state):
                return
        self._put(self.done, _END)

    def _write(self) -> None:
        """Row groups in chunk order (with two prep threads a chunk can finish before its
        predecessor)."""
        waiting: dict[int, _ChunkState] = {}
        expected = self.writer.start_row // self.chunk_rows
        while (state := self._get(self.done)) is not _END:
            waiting[state.chunk.index] = state
            while expected in waiting:
                self._write_chunk(waiting.pop(expected))
                expected += 1

    def _write_chunk(self, state: _ChunkState) -> None:
        t0 = time.perf_counter()
        chunk = state.chunk
        ids = (chunk.table.column(self.cols.id) if self.cols.id
               else pa.array(np.arange(chunk.start, chunk.start + chunk.num_rows, dtype=np.int64)))
        keep = {c: chunk.table.column(c) for c in self.cols.keep}
        table = self.scorer.result_table(ids, self.cols.id_name, state.probs, state.errors, state.predicted_from,
                                         keep, self.schema)
        kinds = count_kinds(state.errors)
        no_prediction = int(np.isnan(state.probs).any(axis=1).sum())
        self.writer.write_part(table, dict(kinds), no_prediction)
        rows = chunk.num_rows
        del table, ids, keep, chunk
        state.chunk = state.plan = None  # the chunk's input, tokens and image paths: written, not needed
        _release_free_memory()
        self.chunk_slots.release()
        self._add("write", time.perf_counter() - t0)
        self.progress.update(rows, sum(kinds.values()))


def _release_free_memory() -> None:
    """After each row group: hand memory the chunk freed back to the OS (Arrow's pool, glibc's
    heap), so the resident set does not creep up with the number of row groups through
    fragmentation. Milliseconds per row group."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, looked up once; None where there is no glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
