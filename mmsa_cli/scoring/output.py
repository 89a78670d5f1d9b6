"""Crash-safe output: row groups as part files + a checkpoint, one atomic rename at the end.

    scored.parquet.parts/          while running (removed when complete)
      .lock                        flock held by the running job (a second run is refused)
      part-000000.parquet ...      one row group each, fsync'd, renamed into place
      checkpoint.json              parts and rows done, error counts, the job's fingerprint
    scored.parquet                 written to a hidden temporary name, fsync'd, renamed

A killed ParquetWriter leaves a file without a footer, which is why each row group is its own
small file. The checkpoint is updated only after its part is durable, so --resume restarts
exactly at the first row group not yet written, and the finished file is the same as an
uninterrupted run's. On --resume every part is read back first: from the first one that is
unreadable or of the wrong length (a disk or copy fault), the parts are scored again.

An output location that cannot be written (missing or read-only folder) is refused before any
work (exit 2); a write that fails while scoring is a PipelineError (exit 6), one line each.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError, OutputExistsError, PipelineError, ResumeMismatchError
from ..contract.rows import count_kinds

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.json"
JOB_KEY = b"mmsa.job"
# Test hook: seconds to pause after each row group (lets a test kill -9 a run part way).
PAUSE_ENV = "MMSA_SCORE_TEST_PAUSE_S"


@dataclass
class Checkpoint:
    job: dict                                        # the fingerprint: inputs, model, options
    parts: int = 0
    rows_done: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    no_prediction: int = 0
    # --on-bad-input skip: the input row groups skipped so far (inputs.iter_chunks), so a
    # resumed run leaves out the same ones without reading them
    skipped: list[dict] = field(default_factory=list)


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)


def read_job(path: Path) -> dict | None:
    """The fingerprint stored in a finished output file, or None if it has none / is unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[JOB_KEY]) if JOB_KEY in meta else None
    except Exception:
        return None


class OutputWriter:
    """Decides fresh / resume / already complete, then writes parts and the final file."""

    def __init__(self, out: str | Path, job: dict, *, overwrite: bool = False, resume: bool = False):
        if overwrite and resume:
            raise InputError("--overwrite and --resume cannot be used together")
        self.out = Path(out)
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.job = job
        self.complete = False
        self.checkpoint = Checkpoint(job)
        self._lock_fd: int | None = None
        if self.out.suffix.lower() not in (".parquet", ".pq"):
            raise InputError(f"output {self.out} must be a .parquet file")
        if self.out.is_dir():
            raise InputError(f"output {self.out} is a folder; give a file name (e.g. scored.parquet)")
        if not self.out.parent.is_dir():
            raise InputError(f"output folder {self.out.parent} does not exist")
        try:
            self._lock()
        except OSError as exc:  # read-only file system, permissions
            raise InputError(f"cannot write the output next to {self.out}: {exc.strerror or exc} "
                             f"({self.parts_dir})") from None
        try:
            self._decide(overwrite, resume)
        except OSError as exc:
            self.release()
            raise InputError(f"cannot prepare the output {self.out}: {exc.strerror or exc} "
                             f"({getattr(exc, 'filename', '') or self.parts_dir})") from None
        except BaseException:
            self.release()
            raise
        if self.complete:
            self.release()
            shutil.rmtree(self.parts_dir, ignore_errors=True)

    # ------------------------------------------------------------------ state

    def _lock(self) -> None:
        self.parts_dir.mkdir(exist_ok=True)
        fd = os.open(self.parts_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputExistsError(f"{self.out} is being written by another running `mmsa score` "
                                    f"(lock {self.parts_dir / '.lock'})") from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            try:  # nothing to resume in it (failed before the first row group): leave no litter
                if {p.name for p in self.parts_dir.iterdir()} <= {".lock"}:
                    shutil.rmtree(self.parts_dir, ignore_errors=True)
            except OSError:
                pass

    def _decide(self, overwrite: bool, resume: bool) -> None:
        if self.out.exists() and not overwrite:
            if read_job(self.out) == self.job:
                self.complete = True  # this very job already finished: nothing to do
                return
            raise OutputExistsError(f"{self.out} exists and was written by another job (other inputs, model "
                                    f"or options): use --overwrite to replace it")
        saved = self._read_checkpoint()
        if overwrite or saved is None:
            self._clear_parts()
            return
        if not resume:
            raise OutputExistsError(
                f"an interrupted run left {self.parts_dir} ({saved.rows_done} rows done): rerun with --resume "
                f"to continue it, or --overwrite to start again")
        if saved.job != self.job:
            changed = sorted(k for k in set(saved.job) | set(self.job) if saved.job.get(k) != self.job.get(k))
            raise ResumeMismatchError(f"cannot resume {self.parts_dir}: the interrupted run used different "
                                      f"{', '.join(changed)}; use --overwrite to start again")
        self.checkpoint = self._check_parts(saved)
        keep = {f"part-{k:06d}.parquet" for k in range(self.checkpoint.parts)}
        for p in self.parts_dir.iterdir():  # parts written after the last checkpoint, temporaries
            if p.name not in keep and p.name not in (CHECKPOINT, ".lock"):
                p.unlink()
        for p in self.out.parent.glob(f".{self.out.name}.tmp-*"):  # a dead run's final file (we hold the lock)
            p.unlink(missing_ok=True)

    def _check_parts(self, saved: Checkpoint) -> Checkpoint:
        """Read every part back: the checkpoint is rebuilt from the parts up to the first one
        that is unreadable or not a full row group, so that one and the rest are scored again
        (never a resume that fails forever at the end)."""
        rows_per_part = int(saved.job.get("row_group_size") or 0)
        good = Checkpoint(saved.job, skipped=list(saved.skipped))
        for k in range(saved.parts):
            try:
                part = pq.read_table(self._part(k), columns=["label", "error"])
            except Exception:  # truncated, corrupt, missing: Arrow raises several types
                break
            last = good.rows_done + part.num_rows >= saved.rows_done
            if part.num_rows == 0 or (part.num_rows != rows_per_part and not last):
                break
            good.parts += 1
            good.rows_done += part.num_rows
            for kind, n in count_kinds(part.column("error").to_pylist()).items():
                good.errors_by_kind[kind] = good.errors_by_kind.get(kind, 0) + n
            good.no_prediction += part.column("label").null_count
        if good.rows_done != saved.rows_done:
            log.warning("part %d of %s is unreadable or incomplete: resuming at row %d instead of %d",
                        good.parts, self.parts_dir, good.rows_done, saved.rows_done)
        return good

    def _read_checkpoint(self) -> Checkpoint | None:
        try:
            raw = json.loads((self.parts_dir / CHECKPOINT).read_text())
            return Checkpoint(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def _clear_parts(self) -> None:
        for p in self.parts_dir.iterdir():
            if p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    @property
    def start_row(self) -> int:
        return self.checkpoint.rows_done

    # ------------------------------------------------------------------ writing

    def _part(self, k: int) -> Path:
        return self.parts_dir / f"part-{k:06d}.parquet"

    def write_part(self, table: pa.Table, errors_by_kind: dict[str, int], no_prediction: int) -> None:
        cp = self.checkpoint
        final = self._part(cp.parts)
        tmp = final.with_name(final.name + ".tmp")
        try:
            pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
            _fsync_path(tmp)
            os.replace(tmp, final)
            _fsync_path(self.parts_dir, directory=True)
            cp.parts += 1
            cp.rows_done += table.num_rows
            for kind, n in errors_by_kind.items():
                cp.errors_by_kind[kind] = cp.errors_by_kind.get(kind, 0) + n
            cp.no_prediction += no_prediction
            _write_durable(self.parts_dir / CHECKPOINT, json.dumps(asdict(cp), indent=1).encode())
        except OSError as exc:
            raise PipelineError(f"cannot write {final}: {exc}") from None
        pause = float(os.environ.get(PAUSE_ENV) or 0)
        if pause:
            time.sleep(pause)

    def finalize(self, schema: pa.Schema, metadata: dict[bytes, bytes]) -> None:
        """Concatenate the parts (one row group each) into the output, atomically."""
        tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        schema = schema.with_metadata({**metadata, JOB_KEY: json.dumps(self.job, sort_keys=True).encode()})
        k = 0
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for k in range(self.checkpoint.parts):
                    writer.write_table(pq.read_table(self._part(k)).cast(schema))
            _fsync_path(tmp)
            os.replace(tmp, self.out)
            _fsync_path(self.out.parent, directory=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PipelineError(f"cannot write {self.out}: {exc.strerror or exc}; the completed row groups are "
                                f"kept: rerun with --resume") from None
        except Exception as exc:  # a part damaged after it was written: --resume re-scores it
            tmp.unlink(missing_ok=True)
            raise PipelineError(f"cannot read {self._part(k)} back: {' '.join(str(exc).split())}; rerun with "
                                f"--resume (it checks the parts and scores a bad one again)") from None
        self.release()
        shutil.rmtree(self.parts_dir, ignore_errors=True)
