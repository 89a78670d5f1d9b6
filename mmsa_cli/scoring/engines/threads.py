"""The local engine's threads: one job's rows read, prepared, scored and written at once.

    read thread     read chunk (pyarrow) -> decode + tokenize texts -> batches sorted by
                    length (one chunk ahead, so chunk boundaries never starve the model)
    submit thread   each batch's image tasks submitted to the worker pool
    worker pool     read + decode + resize images (images/workers.py, separate processes)
    prep threads    gather a batch's images -> pixel batch (numpy; on CUDA nvJPEG or DALI +
                    batched resize + upload of the CPU-prepared pixels)
    infer thread    ONNX Runtime (IO binding on CUDA), bad-row policy
    main thread     chunk done -> output row group + checkpoint, progress

Queues between the threads are bounded (`prefetch` batches), and at most CHUNKS_IN_FLIGHT
chunks (row groups) are alive at once, from being read to being written, so memory depends
on the batch size, prefetch depth and row-group size, never on the input's size.
"""
from __future__ import annotations

import functools
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from ...contract.rows import count_kinds
from ...io.checkpointed import OutputWriter
from ..errors import PipelineError, ScoreError
from ..images.prepare import ImageSpec, prepare_images
from ..images.workers import WorkerPool
from ..inputs import Chunk, InputSet, ResolvedColumns, iter_chunks
from ..report import STAGES, RowProgress
from .decode_share import GpuDecodeShare

END = object()
# Chunks alive at once: one being scored while the next is read and tokenized. Two is what
# a file of two row groups holds anyway, so a longer file needs no more memory. A third
# would not add speed: reading and tokenizing took 2.2 s of an 11.2 s, 60,000-row run on
# the H100 (benchmarks/results/score_gpu.md), so the next chunk is ready long before it is due.
CHUNKS_IN_FLIGHT = 2


class Threads:
    """Threads that stop together: the first failure sets `stop`, every wait gives up on it,
    and the failure is re-raised where the threads were started."""

    def __init__(self):
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def run(self, stages: list[Callable[[], None]], main: Callable[[], None]) -> None:
        """Each stage in its own thread, `main` in this one; joins them all, then re-raises the
        first failure (a non-mmsa one as a PipelineError: the completed row groups are kept)."""
        threads = [threading.Thread(target=self.guard, args=(fn,), name=f"mmsa-{fn.__name__.strip('_')}",
                                    daemon=True) for fn in stages]
        for t in threads:
            t.start()
        try:
            self.guard(main)
        except BaseException as exc:  # KeyboardInterrupt: stop the threads, keep the parts
            self.fail(exc)
        finally:
            if self.failure is not None:
                self.stop.set()
            for t in threads:
                t.join()
            self.closed()
        if self.failure is not None:
            exc = self.failure
            if isinstance(exc, (ScoreError, KeyboardInterrupt)):
                raise exc
            raise PipelineError(f"scoring failed: {type(exc).__name__}: {exc}; the completed row groups are kept: "
                                f"rerun with --resume") from exc

    def closed(self) -> None:
        """After every thread ended (a subclass's resources go here)."""

    def guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        # Ctrl-C wins over what it causes in the other threads: the exit code says "interrupted"
        if self.failure is None or (isinstance(exc, KeyboardInterrupt) and not isinstance(self.failure, KeyboardInterrupt)):
            self.failure = exc
        self.stop.set()

    def put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def acquire(self, slots: threading.Semaphore) -> bool:
        while not self.stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return END


@dataclass
class ChunkState:
    chunk: Chunk
    plan: Any
    probs: np.ndarray
    errors: list
    predicted_from: list
    pending: int


@dataclass
class Plumbing:
    """What a scoring job's threads work with besides the Scorer: where rows come from and go to,
    and the sizes that bound its memory."""
    source: InputSet
    cols: ResolvedColumns
    spec: ImageSpec
    writer: OutputWriter
    schema: pa.Schema
    progress: RowProgress
    batch_size: int
    chunk_rows: int
    workers: int
    prefetch: int
    prep_threads: int = 1
    skip_bad_input: bool = False          # --on-bad-input skip: unreadable row groups are listed, not fatal


class ScoringThreads(Threads):
    """The stages of one score_files() job, each a thread (the module's docstring)."""

    def __init__(self, scorer, job: Plumbing, share: GpuDecodeShare | None = None):
        super().__init__()
        self.scorer, self.job, self.cols, self.spec = scorer, job, job.cols, job.spec
        self.stages = {k: 0.0 for k in STAGES}
        self._stage_lock = threading.Lock()
        self.share = share or GpuDecodeShare(1.0, job.workers, job.prep_threads)
        gpu = getattr(scorer, "_gpu", None)  # how each image was prepared: the GPU path's counts
        self.images = dict.fromkeys(gpu.counts if gpu is not None else ("nvjpeg", "cpu", "nvjpeg_rejected"), 0)
        self.plans: queue.Queue = queue.Queue(maxsize=1)
        self.batches: queue.Queue = queue.Queue(maxsize=job.prefetch)
        self.ready: queue.Queue = queue.Queue(maxsize=2)
        self.done: queue.Queue = queue.Queue(maxsize=2)
        self.chunk_slots = threading.Semaphore(CHUNKS_IN_FLIGHT)  # taken by _read, given back by _write_chunk
        self.pool: WorkerPool | None = None

    # -------------------------------------------------------------- orchestration

    def start(self) -> None:
        gpu = getattr(self.scorer, "_gpu", None)
        gpu_before = dict(gpu.seconds) if gpu is not None else {}
        counts_before = dict(gpu.counts) if gpu is not None else {}
        switch = sys.getswitchinterval()
        if gpu is not None:  # many short GIL holds between GPU calls: hand the GIL over sooner
            sys.setswitchinterval(0.001)
        try:
            self.pool = self._worker_pool()
            self.run([self._read, self._submit_batches, *[self._prep] * self.job.prep_threads, self._infer],
                     self._write)
        finally:
            sys.setswitchinterval(switch)
        for k, v in gpu_before.items():  # host time of the GPU prep: nvJPEG call vs resize and the rest
            self.stages[f"decode_gpu.{k}"] = gpu.seconds[k] - v
        for k, v in counts_before.items():
            self.images[k] = gpu.counts[k] - v

    def _worker_pool(self) -> WorkerPool | None:
        if not (self.job.workers > 0 and self.cols.image):
            return None
        per = self._part_size(self.job.batch_size)
        # Enough slots for every batch that can be in flight: queued, being submitted, in prep.
        slots = (self.job.prefetch + self.job.prep_threads + 2) * -(-self.job.batch_size // per)
        return WorkerPool(self.job.workers, self.spec, slot_count=slots, slot_images=per, stop=self.stop)

    def closed(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def image_summary(self) -> dict:
        """Images decoded by nvJPEG / prepared on the CPU (nvjpeg_rejected: refused by nvJPEG,
        then CPU-prepared, so also in cpu); the GPU decode share used, where GPU decoding ran."""
        if not self.cols.image:
            return {}
        out = dict(self.images)
        out.update(self.share.summary() if self.spec.gpu_jpeg else {"gpu_decode_share": None})
        out["decoder"] = getattr(self.scorer, "image_decoder", None) or "cpu"
        return out

    def _add(self, stage: str, seconds: float) -> None:
        with self._stage_lock:
            self.stages[stage] += seconds

    # -------------------------------------------------------------- stages

    def _read(self) -> None:
        writer = self.job.writer
        skipped = writer.checkpoint.skipped if self.job.skip_bad_input else None
        chunks = iter_chunks(self.job.source, self.cols, self.job.chunk_rows, writer.start_row, skipped=skipped)
        while True:
            if not self.acquire(self.chunk_slots):
                return
            chunk = next(chunks, None)
            if chunk is None:
                break
            self.stages["read"] += chunk.read_seconds
            plan = self.scorer.plan(chunk.table, self.cols, chunk.roots, self.job.batch_size)
            self.stages["tokenize"] += plan.seconds
            state = ChunkState(chunk, plan, np.full((chunk.num_rows, 3), np.nan, np.float32),
                               [None] * chunk.num_rows, [None] * chunk.num_rows, len(plan.batches))
            if not self.put(self.plans, state):
                return
        self.put(self.plans, END)

    def _submit_batches(self) -> None:
        while (state := self.get(self.plans)) is not END:
            for rows in state.plan.batches:
                if not self.put(self.batches, (state, rows, self._submit(state.plan, rows))):
                    return
        self.put(self.batches, END)

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
        return max(8, -(-tasks // max(self.job.workers, 1)))

    def _prep(self) -> None:
        while (item := self.get(self.batches)) is not END:
            state, rows, parts = item
            pixels, errors = self._pixels(parts) if self.cols.image else (None, None)
            if not self.put(self.ready, (state, rows, pixels, errors)):
                return
        self.put(self.batches, END)  # for the sibling prep threads
        self.put(self.ready, END)

    def _pixels(self, parts: list):
        """A batch's prepared images (from the workers, or prepared here) -> its pixel batch."""
        results, cpu_seconds = [], 0.0
        for part in parts:
            res, seconds = part.result() if isinstance(part, Future) else prepare_images(part[0], self.spec, part[1])
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
            self._add_images("cpu", sum(r.status == "pixels" for r in results))
        return pixels, errors

    def _add_images(self, kind: str, n: int) -> None:
        with self._stage_lock:
            self.images[kind] += n

    def _infer(self) -> None:
        ended = 0
        while ended < self.job.prep_threads:
            t0 = time.perf_counter()
            item = self.get(self.ready)
            self._add("infer_waiting", time.perf_counter() - t0)
            if item is END:
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
            if state.pending == 0 and not self.put(self.done, state):
                return
        self.put(self.done, END)

    def _write(self) -> None:
        """Row groups in chunk order (with two prep threads a chunk can finish before its
        predecessor)."""
        waiting: dict[int, ChunkState] = {}
        expected = self.job.writer.start_row // self.job.chunk_rows
        while (state := self.get(self.done)) is not END:
            waiting[state.chunk.index] = state
            while expected in waiting:
                self._write_chunk(waiting.pop(expected))
                expected += 1

    def _write_chunk(self, state: ChunkState) -> None:
        t0 = time.perf_counter()
        chunk = state.chunk
        ids = (chunk.table.column(self.cols.id) if self.cols.id
               else pa.array(np.arange(chunk.start, chunk.start + chunk.num_rows, dtype=np.int64)))
        keep = {c: chunk.table.column(c) for c in self.cols.keep}
        table = self.scorer.result_table(ids, self.cols.id_name, state.probs, state.errors, state.predicted_from,
                                         keep, self.job.schema)
        kinds = count_kinds(state.errors)
        no_prediction = int(np.isnan(state.probs).any(axis=1).sum())
        self.job.writer.write_part(table, dict(kinds), no_prediction)
        rows = chunk.num_rows
        del table, ids, keep, chunk
        state.chunk = state.plan = None  # the chunk's input, tokens and image paths: written, not needed
        release_free_memory()
        self.chunk_slots.release()
        self._add("write", time.perf_counter() - t0)
        self.job.progress.update(rows, sum(kinds.values()))


def release_free_memory() -> None:
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
