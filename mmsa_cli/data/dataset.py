"""Examples from an MVSA folder or a Parquet/CSV table, plus reproducible stratified splits."""
from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import LABELS
from ..errors import ConfigError, DataError
from ..contract.text import FALLBACK_ERRORS, clean_text, decode_text, guess_legacy_encoding

log = logging.getLogger(__name__)

TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}
_ALLOWED = ", ".join(LABELS)
_UNLABELLED = {"", "null", "none", "nan"}


@dataclass(frozen=True)
class Example:
    guid: str
    text: str
    image_path: Path
    label: int | None  # index into LABELS; None when unlabelled


# ---------------------------------------------------------------------------------------------
# MVSA folder: root/data/{guid}.jpg + {guid}.txt, labels in a `guid,tag` file


def read_mvsa(root: str | Path, label_file: str | Path = "train.txt") -> list[Example]:
    root = Path(root)
    label_path = Path(label_file) if Path(label_file).is_absolute() else root / label_file
    if not label_path.is_file():
        raise DataError(f"label file {label_path} does not exist (expected a 'guid,tag' file)")
    data_dir = root / "data"
    lines = label_path.read_bytes().decode("utf-8-sig", errors=FALLBACK_ERRORS).splitlines()

    rows: list[tuple[str, bytes | None, int | None]] = []  # guid, text bytes (None: no file), label
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or (lineno == 1 and line.replace(" ", "").lower() == "guid,tag"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0]:
            raise DataError(f"bad line {line!r} in {label_path.name} line {lineno}; expected 'guid,tag'")
        guid, tag = parts
        if "/" in guid or "\\" in guid or guid in (".", ".."):
            raise DataError(f"bad guid {guid!r} in {label_path.name} line {lineno}; a guid is a file stem, not a path")
        if guid in seen:
            raise DataError(f"duplicate guid {guid!r} in {label_path.name} lines {seen[guid]} and {lineno}")
        seen[guid] = lineno
        if tag.lower() in ("null", ""):
            label = None
        elif tag.lower() in LABELS:
            label = LABELS.index(tag.lower())
        else:
            raise DataError(
                f"unknown label {tag!r} in {label_path.name} line {lineno}; expected one of {_ALLOWED} (or null)"
            )
        try:
            raw = (data_dir / f"{guid}.txt").read_bytes()
        except FileNotFoundError:
            raw = None
        rows.append((guid, raw, label))

    legacy, not_utf8 = guess_legacy_encoding(raw for _, raw, _ in rows if raw is not None)
    if not_utf8:
        log.info("%d of %d texts in %s are not UTF-8; decoded as %s", not_utf8, len(rows), data_dir, legacy)
    examples = [Example(guid, "" if raw is None else decode_text(raw, legacy), data_dir / f"{guid}.jpg", label)
                for guid, raw, label in rows]
    missing_text = [guid for guid, raw, _ in rows if raw is None]
    if missing_text:  # keep the rows (image-only) but say so
        log.warning("%d of %d rows have no text file in %s (e.g. %s.txt); using empty text",
                    len(missing_text), len(examples), data_dir, missing_text[0])
    return examples


# ---------------------------------------------------------------------------------------------
# Parquet / CSV tables


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pandas NA/NaT
    except (TypeError, ValueError):
        return False


def _parse_label(value: Any, column: str, row: int, path: Path) -> int | None:
    if _is_null(value):
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _UNLABELLED:
            return None
        if s in LABELS:
            return LABELS.index(s)
        if s in ("0", "1", "2"):
            return int(s)
    else:
        number = value.item() if hasattr(value, "item") else value  # numpy scalars -> Python
        if not isinstance(number, bool) and isinstance(number, (int, float)) and number in (0, 1, 2):
            return int(number)
    raise DataError(
        f"unknown label {value!r} in column {column!r} data row {row} of {path}; "
        f"expected one of {_ALLOWED} (any case), 0..2 or null"
    )


def _read_frame(path: Path):
    import pandas as pd

    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unsupported table {path}: suffix {path.suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"table {path} does not exist")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        # Strings only, and only empty cells are null: ids keep leading zeros, a tweet "NA" stays text.
        return pd.read_csv(path, sep=kind, dtype=str, keep_default_na=False, na_values=[""],
                           encoding="utf-8-sig", encoding_errors=FALLBACK_ERRORS)
    except Exception as e:  # pyarrow/pandas parse errors have many types
        raise DataError(f"cannot read table {path}: {e}") from None


def read_table(
    path: str | Path,
    *,
    text_col: str = "text",
    image_col: str = "image",
    id_col: str | None = None,
    label_col: str | None = "label",
    image_root: Path | None = None,
) -> list[Example]:
    """Rows of a Parquet/CSV/TSV table.

    id_col=None: use a 'guid' column if present, else the row position. A named id_col must exist.
    label_col: a missing 'label' column means unlabelled; any other name must exist. None: no labels.
    Relative image paths are joined onto image_root (default: the table's folder); use
    resolve_image_path per row to refuse paths escaping the root.
    """
    path = Path(path)
    df = _read_frame(path)
    columns = [str(c) for c in df.columns]

    def require(col: str, what: str) -> None:
        if col not in df.columns:
            raise DataError(f"{what} column {col!r} not found in {path}; available columns: {', '.join(columns)}")

    require(text_col, "text")
    require(image_col, "image")
    if id_col is None:
        id_col = "guid" if "guid" in df.columns else None
    else:
        require(id_col, "id")
    if label_col is not None and label_col not in df.columns:
        if label_col != "label":
            require(label_col, "label")
        label_col = None

    root = Path(image_root) if image_root is not None else path.parent
    ids = df[id_col].tolist() if id_col else [str(i) for i in range(len(df))]
    texts = df[text_col].tolist()
    images = df[image_col].tolist()
    labels = df[label_col].tolist() if label_col else [None] * len(df)

    examples: list[Example] = []
    no_image = 0
    for i, (guid, text, image, label) in enumerate(zip(ids, texts, images, labels)):
        if _is_null(guid):
            raise DataError(f"empty id in column {id_col!r} data row {i + 1} of {path}")
        if isinstance(guid, float) and guid.is_integer():
            guid = int(guid)  # Parquet ids stored as float64 because of nulls elsewhere
        text = "" if _is_null(text) else clean_text(str(text))
        if _is_null(image) or not str(image).strip():
            no_image += 1
            image_path = Path()  # fails per row when loaded, like any bad image
        elif isinstance(image, (bytes, bytearray, dict)):
            raise DataError(
                f"column {image_col!r} data row {i + 1} of {path} holds {type(image).__name__}; expected an image path"
            )
        else:
            image_path = root / str(image).strip()  # an absolute path stays absolute
        examples.append(Example(str(guid), text, image_path,
                                _parse_label(label, label_col or "", i + 1, path) if label_col else None))

    if no_image:
        log.warning("%d of %d rows of %s have no image path", no_image, len(examples), path)
    dup = len(examples) - len({e.guid for e in examples})
    if dup:
        log.warning("%d duplicate ids in %s", dup, path)
    return examples


def load_examples(
    source: str | Path,
    *,
    label_file: str | Path = "train.txt",
    text_col: str = "text",
    image_col: str = "image",
    id_col: str | None = None,
    label_col: str | None = "label",
    image_root: Path | None = None,
) -> list[Example]:
    """An MVSA folder (containing data/) or a Parquet/CSV/TSV table."""
    path = Path(source)
    if path.is_dir() and (path / "data").is_dir():
        return read_mvsa(path, label_file)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return read_table(path, text_col=text_col, image_col=image_col, id_col=id_col,
                          label_col=label_col, image_root=image_root)
    problem = "does not exist" if not path.exists() else "is not a supported input"
    raise DataError(
        f"{path} {problem}; expected an MVSA folder (containing data/{{guid}}.jpg, data/{{guid}}.txt and a "
        f"'guid,tag' label file) or a table file ({', '.join(TABLE_SUFFIXES)}) with "
        f"{text_col!r} and {image_col!r} columns"
    )


# ---------------------------------------------------------------------------------------------
# Splits


def _check_labels(labels: Sequence[int | None]) -> list[int]:
    bad = [i for i, y in enumerate(labels) if y is None or not 0 <= int(y) < len(LABELS)]
    if bad:
        raise DataError(f"cannot split: label {labels[bad[0]]!r} at index {bad[0]} is not in 0..{len(LABELS) - 1} "
                        f"({len(bad)} such rows); drop unlabelled rows first")
    return [int(y) for y in labels]


def _counts(labels: list[int]) -> str:
    c = Counter(labels)
    return ", ".join(f"{LABELS[k]}={c[k]}" for k in sorted(c))


def stratified_split(
    labels: Sequence[int], val_fraction: float = 0.2, seed: int = 42
) -> tuple[list[int], list[int]]:
    """Sorted (train, val) indices; the same seed always gives the same split."""
    from sklearn.model_selection import train_test_split

    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise ConfigError(f"val_fraction {val_fraction!r} must be between 0 and 1 (exclusive)")
    y = _check_labels(labels)
    try:
        train, val = train_test_split(list(range(len(y))), test_size=val_fraction, random_state=seed, stratify=y)
    except ValueError as e:
        raise DataError(f"cannot make a stratified {val_fraction} split of {len(y)} rows ({_counts(y)}): {e}") from None
    return sorted(int(i) for i in train), sorted(int(i) for i in val)


def stratified_kfold(labels: Sequence[int], k: int = 5, seed: int = 42) -> list[tuple[list[int], list[int]]]:
    """k shuffled stratified folds of sorted (train, val) indices; every index is in exactly one val fold."""
    from sklearn.model_selection import StratifiedKFold

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"k {k!r} must be an integer >= 2")
    y = _check_labels(labels)
    smallest = min(Counter(y).values(), default=0)
    if smallest < k:
        raise DataError(f"cannot make {k} stratified folds: the smallest class has {smallest} rows ({_counts(y)}); "
                        f"need at least {k} per class")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split([0] * len(y), y)
    return [(sorted(int(i) for i in tr), sorted(int(i) for i in va)) for tr, va in folds]


def write_split(path: str | Path, examples: Sequence[Example], train_idx: Sequence[int], val_idx: Sequence[int]) -> None:
    """CSV guid,split,label so a run's split can be inspected and reused."""
    overlap = set(train_idx) & set(val_idx)
    if overlap:
        raise ValueError(f"{len(overlap)} indices are in both train and val (e.g. {min(overlap)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [(i, "train") for i in train_idx] + [(i, "val") for i in val_idx]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["guid", "split", "label"])
        for i, split in sorted(rows):
            ex = examples[i]
            w.writerow([ex.guid, split, "" if ex.label is None else LABELS[ex.label]])


def read_split(path: str | Path) -> dict[str, str]:
    """guid -> 'train' | 'val' from a file written by write_split."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"guid", "split"} <= set(reader.fieldnames):
            raise DataError(f"split file {path} has columns {reader.fieldnames}; expected guid,split,label")
        out: dict[str, str] = {}
        for lineno, row in enumerate(reader, start=2):
            split = (row["split"] or "").strip()
            if split not in ("train", "val"):
                raise DataError(f"unknown split {split!r} in {path} line {lineno}; expected one of train, val")
            out[row["guid"]] = split
    return out
