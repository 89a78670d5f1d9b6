"""Write MVSA-Single tweets as a Parquet file for `mmsa score` (guid, text as mmsa reads it,
image path relative to the dataset folder), e.g. the 511 test tweets, to check that an exported
model scores what `mmsa predict` wrote. The file goes outside the repository.

    python benchmarks/mvsa_parquet.py ../shared/data/mvsa-single test_without_label.txt /tmp/test511.parquet
    mmsa score /tmp/test511.parquet --model models/best --out /tmp/scored.parquet --image-root ../shared/data/mvsa-single
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_cli.data.dataset import read_mvsa  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="MVSA-Single folder (data/, the label files)")
    ap.add_argument("label_file", help="e.g. test_without_label.txt or train.txt")
    ap.add_argument("out", type=Path, help="Parquet file to write")
    args = ap.parse_args()
    write_tweets(args.data, args.label_file, args.out)


def write_tweets(data: Path, label_file: str, out: Path) -> None:
    """The tweets of `label_file` as a Parquet file: guid, text, image path relative to `data`."""
    examples = read_mvsa(data, label_file)
    table = pa.table({"guid": [e.guid for e in examples], "text": [e.text for e in examples],
                      "image": [str(e.image_path.relative_to(data)) for e in examples]})
    pq.write_table(table, out)
    print(f"wrote {len(examples)} rows to {out}")


if __name__ == "__main__":
    main()
