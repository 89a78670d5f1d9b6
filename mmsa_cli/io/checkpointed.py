"""Crash-safe output: row groups as part files + a checkpoint, one atomic rename at the end.

    scored.parquet.parts/          while running (removed when complete)
      .lock                        flock held by the running job (a second run is refused)
      part-000000.parquet ...      one row group each, fsync'd, renamed into place
      checkpoint.json              parts and rows done, error counts, the job's fingerprint
    scored.parquet                 written to a hidden temporary name, fsync'd, renamed

The same layout on object storage (`--out s3://bucket/scored.parquet`), where each object is
uploaded whole instead of renamed (folders.py: the two places behind one interface).

A killed ParquetWriter leaves a file without a footer, which is why each row group is its own
small file. The checkpoint is updated only after its part is durable, so --resume restarts
exactly at the first row group not yet written, and the finished file is the same as an
uninterrupted run's. On --resume every part is read back first: from the first one that is
unreadable or of the wrong length (a disk or copy fault), the parts are scored again.

An output location that cannot be written (missing or read-only folder) is refused before any
work (exit 2); a write that fails while scoring is a PipelineError (exit 6), one line each.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from ..contract.rows import count_kinds
from ..errors import InputError, OutputExistsError, PipelineError, ResumeMismatchError
from .folders import CHECKPOINT, JOB_KEY, ROWS_KEY, folder_for
from .storage import one_line

log = logging.getLogger(__name__)
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


def rows_done(out: str | Path) -> tuple[int, str]:
    """(rows an interrupted run at `out` has written, where its parts are); 0 if none."""
    folder = folder_for(out)
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
        self.folder = folder_for(out)
        self.out = self.folder.out
        self.parts_dir = self.folder.location
        self.job = job
        self.complete = False
        self.checkpoint = Checkpoint(job)
        self.folder.check()
        try:
            self.folder.lock()
        except OSError as exc:  # read-only file system, permissions
            raise InputError(f"cannot write the output next to {self.out}: {exc.strerror or one_line(exc)} "
                             f"({self.parts_dir})") from None
        try:
            self._decide(overwrite, resume)
        except OSError as exc:
            self.release()
            raise InputError(f"cannot prepare the output {self.out}: {exc.strerror or one_line(exc)} "
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
            raise PipelineError(f"cannot write {self.parts_dir}/{name}: {one_line(exc)}") from None
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
            raise PipelineError(f"cannot write {self.out}: {exc.strerror or one_line(exc)}; the completed row "
                                f"groups are kept: rerun with --resume") from None
        except Exception as exc:  # a part damaged after it was written: --resume re-scores it
            raise PipelineError(f"cannot read {self.parts_dir}/{reading[0]} back: {one_line(exc)}; rerun with "
                                f"--resume (it checks the parts and scores a bad one again)") from None
        self.release()
        self.folder.remove()

