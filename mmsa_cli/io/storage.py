"""Paths that may live on object storage: `s3://bucket/key`, `gs://...`, or anything
`pyarrow.fs.FileSystem.from_uri` opens; plain paths stay on the local disk.

Both engines use it for their inputs and their output; scoring/images/remote.py reads images under a
bucket prefix with it. Light on imports (pyarrow only when a store is opened), so the
command-line modules ask `is_uri` here too.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def open_fs(location: str | Path):
    """(pyarrow FileSystem, path within it) for a URI or a local path (made absolute)."""
    from pyarrow import fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return pafs.FileSystem.from_uri(str(location))
    except Exception as exc:  # unknown scheme, bad bucket name, missing credentials
        raise InputError(f"cannot open {location}: {exc}") from None


def bucket_of(fs, path: str) -> tuple[str, bool]:
    """(the bucket of a path in an object store, whether it exists); OSError if unreachable."""
    from pyarrow import fs as pafs

    bucket = path.split("/", 1)[0]
    return bucket, fs.get_file_info(bucket).type == pafs.FileType.Directory


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (Arrow's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def is_relative_path(value) -> bool:
    """A non-empty path string that is neither absolute nor a URI: it needs an image root."""
    return isinstance(value, str) and bool(value.strip()) and not is_uri(value) and not Path(value.strip()).is_absolute()


def root_string(root: str | Path | None) -> str | None:
    """An image root as the workers get it: a URI as given, a local folder made absolute."""
    if root is None:
        return None
    return str(root) if is_uri(root) else str(Path(root).resolve())


def scheme_of(location: str | Path) -> str:
    """'s3://' for 's3://bucket/x', '' for a local path."""
    text = str(location)
    return text.split("://", 1)[0] + "://" if is_uri(text) else ""
