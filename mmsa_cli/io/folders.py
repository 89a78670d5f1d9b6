"""Where `mmsa score` writes: the output file and its parts folder, on the local disk
(LocalFolder: an flock, fsync'd writes, atomic renames) or on an object store (StoreFolder:
whole-object uploads), behind one interface that checkpointed.OutputWriter uses.
"""
from __future__ import annotations

import fcntl
import json
import os
import posixpath
import shutil
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, OutputExistsError
from .storage import bucket_of, is_uri, one_line, open_fs

CHECKPOINT = "checkpoint.json"
JOB_KEY = b"mmsa.job"
ROWS_KEY = b"mmsa.rows"  # rows the run wrote: a final file holding fewer is unfinished


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


class LocalFolder:
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


class StoreFolder:
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
        try:
            kind = self.fs.get_file_info(self.path).type
            bucket, exists = bucket_of(self.fs, self.path)
        except OSError as exc:
            raise InputError(f"cannot reach the output {self.out}: {one_line(exc)}") from None
        if kind == pafs.FileType.Directory:
            raise InputError(f"output {self.out} is a prefix holding objects; give a file name (e.g. scored.parquet)")
        if not exists:
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

    def write_durable(self, name: str, data: bytes | pa.Buffer) -> None:
        with self.fs.open_output_stream(f"{self.dir}/{name}") as f:
            f.write(data)

    def write_table(self, name: str, table: pa.Table) -> None:
        buffer = pa.BufferOutputStream()  # one upload of a finished file, never a half-written one
        pq.write_table(table, buffer, row_group_size=max(table.num_rows, 1))
        self.write_durable(name, buffer.getvalue())  # the Arrow buffer itself, not a bytes copy

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


def folder_for(out: str | Path) -> LocalFolder | StoreFolder:
    return StoreFolder(str(out)) if is_uri(out) else LocalFolder(Path(out))
