#!/usr/bin/env python
"""Memory held while `mmsa score` reads its input, against the file's size.

For files of 100,000 / 1,000,000 rows (tweet-like text, an image path), in row groups of
10,000 rows or in one row group, it reads every chunk with mmsa's reader (`iter_chunks`)
and with pyarrow's default `ParquetFile(path).iter_batches()`, and reports the peak of
Arrow's allocated bytes while reading (one process, one reader at a time).

    python benchmarks/bench_read_memory.py --out benchmarks/results/read_memory.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_cli.scoring import Columns  # noqa: E402
from mmsa_cli.scoring.inputs import iter_chunks, open_inputs, resolve_columns  # noqa: E402


def make_file(path: Path, rows: int, row_group_size: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array("love great awful meeting report sunny rain team win lose city today news".split())
    block = 100_000
    texts = [" ".join(rng.choice(words, k)) + f" #{i}" for i, k in enumerate(rng.integers(3, 30, block))]
    table = pa.table({"guid": [str(i) for i in range(block)], "text": texts,
                      "image": [f"img/{i % 64}.jpg" for i in range(block)]})
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(rows // block):
            writer.write_table(table, row_group_size=row_group_size)


def peak_mib(chunks) -> float:
    peak = 0
    for chunk in chunks:
        peak = max(peak, pa.total_allocated_bytes())
        del chunk
    return round(peak / 2**20, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-read-memory-"))
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        for group in (10_000, rows):
            path = work / f"in-{rows}-{group}.parquet"
            make_file(path, rows, group)
            source = open_inputs(path)
            cols = resolve_columns(source.files[0].schema, Columns(), uses_text=True, uses_image=True, where="b")
            mmsa = peak_mib(iter_chunks(source, cols, 8_192))
            default = peak_mib(pq.ParquetFile(path).iter_batches(batch_size=16_384, columns=cols.read))
            results.append({"rows": rows, "row_group_rows": group, "file_mib": round(path.stat().st_size / 2**20, 1),
                            "mmsa_reader_peak_arrow_mib": mmsa, "pyarrow_default_peak_arrow_mib": default})
            print(results[-1], flush=True)
            path.unlink()
    print("| rows | row group | file MiB | mmsa reader: Arrow MiB held | pyarrow defaults: Arrow MiB held |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['row_group_rows']:,} | {r['file_mib']} | {r['mmsa_reader_peak_arrow_mib']} | "
              f"{r['pyarrow_default_peak_arrow_mib']} |")
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "pyarrow": pa.__version__,
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
