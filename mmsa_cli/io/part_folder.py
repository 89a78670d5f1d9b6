"""The Ray engine's output: a directory of Parquet part files (local or on an object store),
resumable, with a manifest written last.

    OUT/part-<hash>.parquet   scored rows; one file per written batch, named by the hash of
                              its ids, so a batch Ray runs twice overwrites its own file
    OUT/_job.json             the job's fingerprint (inputs, model, options), written first
    OUT/_manifest.json        written last: files, row counts, error counts by kind, model
                              sha256, options. Present = the run is complete.

A part file appears whole or not at all (written under a temporary name and renamed; object
stores publish an object when its upload completes), so a killed driver never leaves half a
batch behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, OutputExistsError, ResumeMismatchError
from .checkpointed import PAUSE_ENV
from .storage import open_fs, scheme_of

JOB_FILE, MANIFEST_FILE = "_job.json", "_manifest.json"
PART_PREFIX = "part-"


class OutputDir:
    """OUT as a directory (local or on an object store): refuses another job's output, knows
    whether it is complete, and what an interrupted run already wrote."""

    def __init__(self, out: str | Path, job: dict, *, overwrite: bool, resume: bool):
        """Decides only (exit 4 or 5 here, before the cluster starts); prepare() writes."""
        from pyarrow import fs as pafs

        if overwrite and resume:
            raise InputError("--resume and --overwrite exclude each other")
        self.uri = str(out)
        self.fs, self.path = open_fs(out)
        self.scheme = scheme_of(out)
        self.job = job
        self.complete = False
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.File:
            raise OutputExistsError(f"--out {out} is a file; the Ray engine writes a directory (choose another name)")
        existing = (self.fs.get_file_info(pafs.FileSelector(self.path)) if info.type == pafs.FileType.Directory
                    else [])
        self.clear = bool(existing) and overwrite
        if existing and not overwrite:
            self._decide_existing({posixpath.basename(i.path) for i in existing}, resume)

    def prepare(self) -> None:
        """Create OUT (emptied with --overwrite) and record the job in it."""
        if self.clear:
            self.fs.delete_dir_contents(self.path)
        self.fs.create_dir(self.path, recursive=True)
        self._write(JOB_FILE, self.job)

    def _decide_existing(self, names: set[str], resume: bool) -> None:
        if MANIFEST_FILE in names:
            if self.read_json(MANIFEST_FILE).get("job") == self.job:
                self.complete = True
                return
            raise OutputExistsError(f"{self.uri} holds the finished output of another job (other inputs, model or "
                                    f"options): use --overwrite or another --out")
        if JOB_FILE not in names:
            raise OutputExistsError(f"{self.uri} exists and is not an mmsa output directory: use --overwrite or "
                                    f"another --out")
        if not resume:
            raise OutputExistsError(f"{self.uri} holds an interrupted run: rerun with --resume (or --overwrite)")
        before = self.read_json(JOB_FILE)
        changed = sorted(k for k in set(before) | set(self.job) if before.get(k) != self.job.get(k))
        if changed:
            raise ResumeMismatchError(f"--resume refused: the interrupted run in {self.uri} used other "
                                      f"{', '.join(changed)}; use --overwrite")

    def read_json(self, name: str) -> dict:
        with self.fs.open_input_stream(f"{self.path}/{name}") as f:
            return json.loads(f.read())

    def _write(self, name: str, data: dict) -> None:
        write_atomic(self.fs, f"{self.path}/{name}", (json.dumps(data, indent=2) + "\n").encode())

    def part_files(self) -> list[str]:
        from pyarrow import fs as pafs

        return sorted(i.path for i in self.fs.get_file_info(pafs.FileSelector(self.path))
                      if posixpath.basename(i.path).startswith(PART_PREFIX) and i.path.endswith(".parquet"))

    def read_parts(self, columns: list[str]) -> pa.Table:
        tables = [pq.read_table(p, columns=columns, filesystem=self.fs) for p in self.part_files()]
        return pa.concat_tables(tables) if tables else None

    def finalize(self, manifest: dict) -> None:
        self._write(MANIFEST_FILE, manifest)


def write_atomic(fs, path: str, data: bytes) -> None:
    """Whole or nothing: a temporary name renamed on a local disk; object stores publish an
    object only once its upload completes."""
    from pyarrow import fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{posixpath.dirname(path)}/.tmp-{posixpath.basename(path)}-{time.time_ns()}"
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as f:
            f.write(data)


def write_part(table: pa.Table, *, fs, path: str, id_col: str) -> pa.Table:
    """The write stage (Ray tasks): one Parquet file per batch, named by its ids' hash, so a
    re-executed batch replaces its own file instead of adding a second copy of its rows."""
    ids = "\n".join(sorted(str(v) for v in table.column(id_col).to_pylist()))
    name = f"{PART_PREFIX}{hashlib.sha256(ids.encode()).hexdigest()[:24]}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(fs, f"{path}/{name}", sink.getvalue().to_pybytes())
    pause = float(os.environ.get(PAUSE_ENV) or 0)  # tests: time to kill the driver between parts
    if pause:
        time.sleep(pause)
    return pa.table({"file": [name], "rows": [table.num_rows]})
