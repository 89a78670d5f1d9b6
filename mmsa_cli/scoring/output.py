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
import posixpath
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError, OutputExistsError, PipelineError, ResumeMismatchError
from .storage import is_uri, open_fs
from ..contract.rows import count_kinds

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.json"
JOB_KEY = b"mmsa.job"
ROWS_KEY = b"mmsa.rows"  # rows the run wrote: a final file holding fewer is unfinished
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


def finished_job(meta: pq.FileMetaData) -> dict | None:
    """The fingerprint of a finished output, from its footer: None if it has none, or if the
    file holds fewer rows than the run wrote (an upload an object store published part way)."""
    kv = meta.metadata or {}
    try:
        job = json.loads(kv[JOB_KEY]) if JOB_KEY in kv else None
        if ROWS_KEY in kv and int(kv[ROWS_KEY]) != meta.num_rows:
            return None
        return job
    except (ValueError, TypeError):
        return None


class _LocalFolder:
    """The output file and its parts folder on the local disk: an flock against a second run,
    fsync'd writes, atomic renames."""

    def __init__(self, out: Path):
        self.out = out
        self.dir = out.with_name(out.name + ".parts")
        self.location = self.dir  # the parts folder, as messages name it
        self._lock_fd: int | None = None

    def check(self) -> None:
        if self.out.suffix.lower() not in (".parquet", ".pq"):
            raise InputError(f"output {self.out} must be a .parquet file")
        if self.out.is_dir():
            raise InputError(f"output {self.out} is a folder; give a file name (e.g. scored.parquet)")
        if not self.out.parent.is_dir():
            raise InputError(f"output folder {self.out.parent} does not exist")

    def lock(self) -> None:
        self.dir.mkdir(exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputExistsError(f"{self.out} is being written by another running `mmsa score` "
                                    f"(lock {self.dir / '.lock'})") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            try:  # nothing to resume in it (failed before the first row group): leave no litter
                if set(self.names()) <= {".lock"}:
                    self.remove()
            except OSError:
                pass

    def finished_job(self) -> dict | None:
        if not self.out.exists():
            return None
        try:
            return finished_job(pq.read_metadata(self.out)) or {}
        except Exception:
            return {}

    def names(self) -> list[str]:
        return [p.name for p in self.dir.iterdir()]

    def read_text(self, name: str) -> str:
        return (self.dir / name).read_text()

    def write_durable(self, name: str, data: bytes) -> None:
        _write_durable(self.dir / name, data)

    def write_table(self, name: str, table: pa.Table) -> None:
        final = self.dir / name
        tmp = final.with_name(final.name + ".tmp")
        pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(self.dir, directory=True)

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.dir / name, columns=columns)

    def delete(self, name: str) -> None:
        p = self.dir / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        for tmp in self.out.parent.glob(f".{self.out.name}.tmp-*"):  # a dead run's final file (we hold the lock)
            tmp.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_final(self, schema: pa.Schema, tables) -> None:
        """The output written under a hidden name, fsync'd, renamed: whole or absent."""
        tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables:
                    writer.write_table(table)
            _fsync_path(tmp)
            os.replace(tmp, self.out)
            _fsync_path(self.out.parent, directory=True)
        finally:
            tmp.unlink(missing_ok=True)


class _StoreFolder:
    """The output object and its parts prefix on an object store (s3://, gs://...). Each
    object is published whole when its upload completes, so no temporary names are needed.
    An object store has no lock: two jobs writing the same --out at once are not detected.
    An upload cannot be abandoned once begun, so a final object cut short by a failure may
    be published; its footer's row count (ROWS_KEY) then differs from the file's, and the
    next run treats it as unfinished."""

    def __init__(self, out: str):
        self.out = out
        self.fs, self.path = open_fs(out)
        self.location = out + ".parts"
        self.dir = self.path + ".parts"

    def check(self) -> None:
        from pyarrow import fs as pafs

        if posixpath.splitext(self.path)[1].lower() not in (".parquet", ".pq"):
            raise InputError(f"output {self.out} must be a .parquet file")
        bucket = self.path.split("/", 1)[0]
        try:
            kind, bucket_kind = self.fs.get_file_info([self.path, bucket])
        except OSError as exc:
            raise InputError(f"cannot reach the output {self.out}: {' '.join(str(exc).split())}") from None
        if kind.type == pafs.FileType.Directory:
            raise InputError(f"output {self.out} is a prefix holding objects; give a file name (e.g. scored.parquet)")
        if bucket_kind.type != pafs.FileType.Directory:
            raise InputError(f"the output's bucket {bucket} does not exist ({self.out})")

    def lock(self) -> None:  # no lock on an object store; the marker proves the prefix is writable
        self.write_durable(".lock", json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())

    def unlock(self) -> None:
        try:
            if set(self.names()) <= {".lock"}:
                self.remove()
        except OSError:
            pass

    def finished_job(self) -> dict | None:
        from pyarrow import fs as pafs

        if self.fs.get_file_info(self.path).type != pafs.FileType.File:
            return None
        try:
            with self.fs.open_input_file(self.path) as f:
                return finished_job(pq.ParquetFile(f).metadata) or {}
        except Exception:
            return {}

    def names(self) -> list[str]:
        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.dir, allow_not_found=True))
        return [posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File]

    def read_text(self, name: str) -> str:
        with self.fs.open_input_file(f"{self.dir}/{name}") as f:
            return f.readall().decode()

    def write_durable(self, name: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.dir}/{name}") as f:
            f.write(data)

    def write_table(self, name: str, table: pa.Table) -> None:
        buffer = pa.BufferOutputStream()  # one upload of a finished file, never a half-written one
        pq.write_table(table, buffer, row_group_size=max(table.num_rows, 1))
        self.write_durable(name, buffer.getvalue().to_pybytes())

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open_input_file(f"{self.dir}/{name}") as f:
            return pq.read_table(f, columns=columns)

    def delete(self, name: str) -> None:
        try:
            self.fs.delete_file(f"{self.dir}/{name}")
        except FileNotFoundError:
            pass

    def remove(self) -> None:
        try:
            self.fs.delete_dir(self.dir)
        except OSError:
            pass

    def remove_temporaries(self) -> None:  # uploads leave none
        pass

    def write_final(self, schema: pa.Schema, tables) -> None:
        with self.fs.open_output_stream(self.path) as stream, pq.ParquetWriter(stream, schema) as writer:
            for table in tables:
                writer.write_table(table)


def _folder_for(out: str | Path):
    return _StoreFolder(str(out)) if is_uri(out) else _LocalFolder(Path(out))


def rows_done(out: str | Path) -> tuple[int, str]:
    """(rows an interrupted run at `out` has written, where its parts are); 0 if none."""
    folder = _folder_for(out)
    try:
        return int(json.loads(folder.read_text(CHECKPOINT))["rows_done"]), str(folder.location)
    except (OSError, ValueError, KeyError, TypeError):
        return 0, str(folder.location)


class OutputWriter:
    """Decides fresh / resume / already complete, then writes parts and the final file; `out`
    is a local path or the URI of an object (s3://bucket/scored.parquet)."""

    def __init__(self, out: str | Path, job: dict, *, overwrite: bool = False, resume: bool = False):
        if overwrite and resume:
            raise InputError("--overwrite and --resume cannot be used together")
        self.folder = _folder_for(out)
        self.out = self.folder.out
        self.parts_dir = self.folder.location
        self.job = job
        self.complete = False
        self.checkpoint = Checkpoint(job)
        self.folder.check()
        try:
            self.folder.lock()
        except OSError as exc:  # read-only file system, permissions
            raise InputError(f"cannot write the output next to {self.out}: {exc.strerror or _one_line(exc)} "
                             f"({self.parts_dir})") from None
        try:
            self._decide(overwrite, resume)
        except OSError as exc:
            self.release()
            raise InputError(f"cannot prepare the output {self.out}: {exc.strerror or _one_line(exc)} "
                             f"({getattr(exc, 'filename', '') or self.parts_dir})") from None
        except BaseException:
            self.release()
            raise
        if self.complete:
            self.release()
            self.folder.remove()

    # ------------------------------------------------------------------ state

    def release(self) -> None:
        self.folder.unlock()

    def _decide(self, overwrite: bool, resume: bool) -> None:
        done = self.folder.finished_job()  # None: no output yet; {}: not a finished mmsa output
        if done == self.job and not overwrite:
            self.complete = True  # this very job already finished: nothing to do
            return
        saved = self._read_checkpoint()
        ours = saved is not None and saved.job == self.job  # e.g. an --overwrite run, interrupted
        if done is not None and not overwrite and not ours:
            raise OutputExistsError(f"{self.out} exists and was written by another job (other inputs, model "
                                    f"or options): use --overwrite to replace it")
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
        keep = {self._part(k) for k in range(self.checkpoint.parts)}
        for name in self.folder.names():  # parts written after the last checkpoint, temporaries
            if name not in keep and name not in (CHECKPOINT, ".lock"):
                self.folder.delete(name)
        self.folder.remove_temporaries()

    def _check_parts(self, saved: Checkpoint) -> Checkpoint:
        """Read every part back: the checkpoint is rebuilt from the parts up to the first one
        that is unreadable or not a full row group, so that one and the rest are scored again
        (never a resume that fails forever at the end)."""
        rows_per_part = int(saved.job.get("row_group_size") or 0)
        good = Checkpoint(saved.job, skipped=list(saved.skipped))
        for k in range(saved.parts):
            try:
                part = self.folder.read_table(self._part(k), columns=["label", "error"])
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
            return Checkpoint(**json.loads(self.folder.read_text(CHECKPOINT)))
        except (OSError, ValueError, TypeError):
            return None

    def _clear_parts(self) -> None:
        for name in self.folder.names():
            if name != ".lock":
                self.folder.delete(name)

    @property
    def start_row(self) -> int:
        return self.checkpoint.rows_done

    # ------------------------------------------------------------------ writing

    @staticmethod
    def _part(k: int) -> str:
        return f"part-{k:06d}.parquet"

    def write_part(self, table: pa.Table, errors_by_kind: dict[str, int], no_prediction: int) -> None:
        cp = self.checkpoint
        name = self._part(cp.parts)
        try:
            self.folder.write_table(name, table)
            cp.parts += 1
            cp.rows_done += table.num_rows
            for kind, n in errors_by_kind.items():
                cp.errors_by_kind[kind] = cp.errors_by_kind.get(kind, 0) + n
            cp.no_prediction += no_prediction
            self.folder.write_durable(CHECKPOINT, json.dumps(asdict(cp), indent=1).encode())
        except OSError as exc:
            raise PipelineError(f"cannot write {self.parts_dir}/{name}: {_one_line(exc)}") from None
        pause = float(os.environ.get(PAUSE_ENV) or 0)
        if pause:
            time.sleep(pause)

    def finalize(self, schema: pa.Schema, metadata: dict[bytes, bytes]) -> None:
        """Concatenate the parts (one row group each) into the output, whole or not at all."""
        schema = schema.with_metadata({**metadata, JOB_KEY: json.dumps(self.job, sort_keys=True).encode(),
                                       ROWS_KEY: str(self.checkpoint.rows_done).encode()})
        reading = [self._part(0)]

        def tables():
            for k in range(self.checkpoint.parts):
                reading[0] = self._part(k)
                yield self.folder.read_table(reading[0]).cast(schema)

        try:
            self.folder.write_final(schema, tables())
        except OSError as exc:
            raise PipelineError(f"cannot write {self.out}: {exc.strerror or _one_line(exc)}; the completed row "
                                f"groups are kept: rerun with --resume") from None
        except Exception as exc:  # a part damaged after it was written: --resume re-scores it
            raise PipelineError(f"cannot read {self.parts_dir}/{reading[0]} back: {_one_line(exc)}; rerun with "
                                f"--resume (it checks the parts and scores a bad one again)") from None
        self.release()
        self.folder.remove()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
