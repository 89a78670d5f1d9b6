"""Reading the inputs in fixed-size chunks.

Rows are numbered 0.. over all input files in order; chunk k holds rows
[k * chunk_rows, (k + 1) * chunk_rows) whatever the files' own row groups are, so a resumed
run cuts exactly the same chunks (and batches) as an uninterrupted one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ...io.storage import one_line
from ..errors import InputError
from .columns import ResolvedColumns
from .files import InputFile, InputSet

log = logging.getLogger(__name__)
# Bytes of file the Parquet reader reads at a time. Without a buffer it reads a whole column
# chunk at once, and with pyarrow's default pre-buffering every requested row group up front:
# a 43 MiB, 1,000,000-row file held 47 MiB of Arrow memory while it was read, 5 MiB like this
# (benchmarks/bench_read_memory.py).
READ_BUFFER_BYTES = 1 << 20


@dataclass
class Chunk:
    index: int
    start: int                 # global position of its first row
    table: pa.Table            # the columns scoring reads, in input order
    roots: list[str]           # image root of each row (its file's folder unless --image-root)
    read_seconds: float = 0.0

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def iter_chunks(inputs: InputSet, cols: ResolvedColumns, chunk_rows: int, start_row: int = 0,
                read_rows: int = 16_384, *, skipped: list[dict] | None = None) -> Iterator[Chunk]:
    """Chunks of exactly chunk_rows rows (the last may be shorter), from global row start_row
    (a multiple of chunk_rows). The file is read through a small buffer without pre-buffering,
    so memory is bounded by one chunk and a read batch, whatever the file's size or its row
    groups' size.

    With `skipped` (a list: --on-bad-input skip), a row group that cannot be read is appended
    to it ({"file", "row_group", "rows", "reason"}) and its rows are left out; the row groups
    already in it (from the checkpoint, on --resume) are left out without being read, so a
    resumed run cuts the same chunks. Each row group is then read whole before its rows are
    used (memory: one input row group), so a bad one leaves nothing half-read behind."""
    yield from _ChunkReader(inputs, cols, chunk_rows, start_row, read_rows, skipped).chunks()


class _ChunkReader:
    """iter_chunks' state: the rows read so far (global position `row`), and the pieces that
    wait to fill the next chunk."""

    def __init__(self, inputs: InputSet, cols: ResolvedColumns, chunk_rows: int, start_row: int, read_rows: int,
                 skipped: list[dict] | None):
        self.inputs, self.cols, self.read_rows, self.skipped = inputs, cols, read_rows, skipped
        self.chunk_rows, self.start_row = chunk_rows, start_row
        self.known = {(s["file"], s["row_group"]) for s in skipped or ()}
        self.schema = inputs.unified_schema(cols.read)
        self.pieces: list[pa.Table] = []
        self.roots: list[str] = []
        self.have, self.index, self.row, self.seconds = 0, start_row // chunk_rows, 0, 0.0

    def chunks(self) -> Iterator[Chunk]:
        for f in self.inputs.files:
            if self.row + f.num_rows <= self.start_row and not any(k[0] == str(f.path) for k in self.known):
                self.row += f.num_rows  # wholly before the resume point
                continue
            yield from self._file(f)
        if self.have:
            yield self._emit(self.have)

    def _file(self, f: InputFile) -> Iterator[Chunk]:
        g = pf = None
        try:
            pf = pq.ParquetFile(f.open(), pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
            root = self.inputs.root_of(f)
            for g in range(pf.metadata.num_row_groups):
                yield from self._row_group(pf, str(f.path), g, root)
        except (OSError, pa.ArrowException) as exc:
            where = f"{f.path}" + (f" (row group {g})" if g is not None else "")
            raise InputError(f"cannot read {where}: {one_line(exc)} (--on-bad-input skip skips an unreadable "
                             f"file or row group and lists it)") from None
        finally:
            if pf is not None:
                pf.close(force=True)  # the object's stream too

    def _row_group(self, pf, name: str, g: int, root: str) -> Iterator[Chunk]:
        n = pf.metadata.row_group(g).num_rows
        if (name, g) in self.known:
            return
        if self.row + n <= self.start_row:  # wholly before the resume point
            self.row += n
            return
        skip = max(0, self.start_row - self.row)
        t0 = time.perf_counter()
        batches = pf.iter_batches(batch_size=self.read_rows, row_groups=[g], columns=self.cols.read)
        if self.skipped is not None:
            try:
                batches = list(batches)
            except (OSError, pa.ArrowException) as exc:
                self.skipped.append({"file": name, "row_group": g, "rows": n, "reason": one_line(exc)})
                log.warning("skipped unreadable row group %d of %s (%d rows): %s", g, name, n, one_line(exc))
                return
        self.seconds += time.perf_counter() - t0
        for batch in batches:
            t0 = time.perf_counter()
            part = pa.Table.from_batches([batch]).cast(self.schema)
            self.seconds += time.perf_counter() - t0
            if skip:
                part, skip = part.slice(min(skip, part.num_rows)), max(0, skip - part.num_rows)
            self.pieces.append(part)
            self.roots.extend([root] * part.num_rows)
            self.have += part.num_rows
            self.row += batch.num_rows
            while self.have >= self.chunk_rows:
                yield self._emit(self.chunk_rows)
                self.seconds = 0.0

    def _emit(self, n: int) -> Chunk:
        table = pa.concat_tables(self.pieces) if self.pieces else self.schema.empty_table()
        chunk = Chunk(self.index, self.index * self.chunk_rows, table.slice(0, n), self.roots[:n], self.seconds)
        self.pieces, self.roots, self.have, self.index = [table.slice(n)], self.roots[n:], self.have - n, self.index + 1
        return chunk
