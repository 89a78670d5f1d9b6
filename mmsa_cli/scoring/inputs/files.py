"""Which files scoring reads: Parquet files, folders and globs, local or on one object store,
with their footers read up front (row counts, schemas, the fingerprint a --resume checks)."""
from __future__ import annotations

import glob
import logging
import os
import posixpath
import re
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ...io.storage import is_uri, one_line, open_fs, root_string, scheme_of
from ..errors import InputError
from ..options import Columns
from .columns import ResolvedColumns, resolve_columns

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class InputFile:
    path: Path | str           # a local file, or the URI of an object (s3://bucket/in/a.parquet)
    num_rows: int
    size: int
    mtime_ns: int              # -1 where the store does not say
    schema: pa.Schema
    fs: Any = None             # the pyarrow FileSystem of a URI; None: the local disk
    fs_path: str = ""          # the object's path in fs (bucket/key)

    def open(self):
        """What pq.ParquetFile reads: the local path, or a random-access stream of the object."""
        return self.path if self.fs is None else self.fs.open_input_file(self.fs_path)

    @property
    def folder(self) -> str:
        """The default image root: the file's folder (a URI prefix for an object)."""
        return posixpath.dirname(self.path) if self.fs is not None else str(Path(self.path).parent.resolve())

    @property
    def key(self) -> str:
        """The file's identity in fingerprints: an absolute path or the URI."""
        return str(self.path) if self.fs is not None else str(Path(self.path).resolve())


@dataclass
class InputSet:
    files: list[InputFile]
    image_root: str | Path | None = None     # a folder or a URI prefix; None: each file's own folder
    # --on-bad-input skip: files whose footer cannot be read ({"file", "row_group": None,
    # "rows": None, "reason"}), left out of `files`
    unreadable: list[dict] = field(default_factory=list)
    # the unreadable files' [identity, size, mtime_ns], taken when they were listed
    unreadable_stamps: list[list] = field(default_factory=list)
    total_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.total_rows = sum(f.num_rows for f in self.files)

    def root_of(self, f: InputFile) -> str:
        return root_string(self.image_root) if self.image_root is not None else f.folder

    def fingerprint(self) -> list[list]:
        """Identifies the input for --resume and reruns: paths, sizes, modification times
        (an unreadable file skipped by --on-bad-input skip too: repairing it changes the job)."""
        readable = [[f.key, f.size, f.mtime_ns] for f in self.files]
        return readable + [[*stamp, "unreadable"] for stamp in self.unreadable_stamps]

    def resolve_columns(self, columns: Columns, *, uses_text: bool, uses_image: bool) -> ResolvedColumns:
        """The columns scoring reads, checked in every file before any work (fail fast on a
        missing column); the id is --id-col, else 'guid' when every file has it."""
        columns = replace(columns, id=default_id_column(self, columns))
        resolved = [resolve_columns(f.schema, columns, uses_text=uses_text, uses_image=uses_image, where=str(f.path))
                    for f in self.files]
        return resolved[0]

    def location(self) -> tuple[Any, list[str], str]:
        """(filesystem, paths in it, URI scheme or '') of the readable files, for readers that
        take a filesystem and paths (Ray Data)."""
        if self.files[0].fs is None:
            from pyarrow import fs as pafs
            return pafs.LocalFileSystem(), [f.key for f in self.files], ""
        return self.files[0].fs, [f.fs_path for f in self.files], scheme_of(str(self.files[0].path))

    def unified_schema(self, cols: Sequence[str]) -> pa.Schema:
        """The read columns' types over all files (int32 and int64 ids unify; int and string do not)."""
        if not self.files:
            return pa.schema([])
        try:
            return pa.unify_schemas([pa.schema([f.schema.field(c) for c in cols]) for f in self.files],
                                    promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as exc:
            raise InputError(f"the input files' columns {', '.join(cols)} do not have compatible types: {exc}") from None


def _stamp(fs, path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file in `fs`; -1 for what the store does not say."""
    try:
        info = fs.get_file_info(path)
    except OSError:
        return -1, -1
    size = info.size if info.size is not None else -1
    return size, info.mtime_ns if info.mtime_ns is not None else -1


def default_id_column(inputs: InputSet, columns: Columns) -> str | None:
    """The id column: --id-col, else 'guid' when every input file has it, else None (row
    positions). 'guid' in only some files is refused, whatever their order: some files'
    guids would otherwise be silently replaced by row numbers."""
    if columns.id is not None:
        return columns.id
    having = [f for f in inputs.files if "guid" in f.schema.names]
    if not having:
        return None
    if len(having) == len(inputs.files):
        return "guid"
    lacking = [str(f.path) for f in inputs.files if "guid" not in f.schema.names]
    raise InputError(f"column 'guid' (the default id) is in {len(having)} of the {len(inputs.files)} input files but "
                     f"not in {', '.join(lacking[:3])}{' ...' if len(lacking) > 3 else ''}: add it to those files, "
                     f"or score them separately")


def check_output_not_an_input(out: str | Path, inputs: InputSet) -> None:
    """Writing over an input would destroy it (with --overwrite) or mix the two: refused
    whatever the flags, also through a symlink or a hard link."""
    if is_uri(out):  # the same object: the same URI (no links on a store)
        taken = {f.key for f in inputs.files} | {u["file"] for u in inputs.unreadable}
        if str(out) in taken:
            raise InputError(f"output {out} is one of the input files: choose another --out")
        return
    out = Path(out)
    try:
        out_stat = out.stat()
    except OSError:
        return  # nothing there (or not reachable): it cannot be an input
    paths = [Path(f.path) for f in inputs.files if f.fs is None]
    paths += [Path(u["file"]) for u in inputs.unreadable if not is_uri(u["file"])]  # skipped: still inputs
    for path in paths:
        try:
            same = os.path.samestat(out_stat, path.stat())
        except OSError:
            continue
        if same:
            raise InputError(f"output {out} is the input file {path} (same file): choose another --out")


def find_inputs(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """A Parquet file, a folder of them (*.parquet, *.pq, sorted), a glob, or a list of those."""
    if not isinstance(spec, (str, Path)):
        found = [p for s in spec for p in find_inputs(s)]
        return list(dict.fromkeys(found))
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in PARQUET_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"input folder {path} holds no Parquet files (*.parquet, *.pq)")
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"no files match the input pattern {text!r}")
        return files
    raise InputError(f"input {text!r} does not exist (expected a Parquet file, a folder of them, or a glob)")


def list_inputs(specs: Sequence[str | Path]):
    """(filesystem, [paths in it], scheme) for URIs of one object store: objects, prefixes
    holding Parquet files, or globs (local inputs: find_inputs)."""
    from pyarrow import fs as pafs

    remote = [s for s in specs if is_uri(s)]
    if len(remote) != len(specs) or len({scheme_of(s) for s in specs}) != 1:
        raise InputError("inputs must all be local or all on the same object store")
    fs, paths = None, []
    for s in map(str, specs):
        fs, path = open_fs(s)
        if glob.has_magic(path):
            base = path[:min(path.find(c) for c in "*?[" if c in path)].rsplit("/", 1)[0]
            pattern = _glob_regex(path)
            found = sorted(i.path for i in _listing(fs, base, recursive=True)
                           if i.type == pafs.FileType.File and pattern.match(i.path))
            if not found:
                raise InputError(f"no objects match the input pattern {s!r}")
            paths += found
            continue
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            found = sorted(i.path for i in _listing(fs, path, recursive=False)
                           if i.type == pafs.FileType.File and i.path.lower().endswith(PARQUET_SUFFIXES))
            if not found:
                raise InputError(f"input folder {s} holds no Parquet files (*.parquet, *.pq)")
            paths += found
        elif info.type == pafs.FileType.File:
            paths.append(path)
        else:
            raise InputError(f"input {s} does not exist (expected a Parquet file or a folder of them)")
    return fs, list(dict.fromkeys(paths)), scheme_of(specs[0])


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob as the local engine's glob.glob(recursive=True) reads it: `*` and `?` stay within
    one path level, `**/` spans any number of them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1:j].replace("\\", "\\\\")  # as fnmatch.translate
            body = "^" + body[1:] if body.startswith("!") else "\\" + body if body.startswith("^") else body
            out.append(f"[{body}]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _listing(fs, path: str, recursive: bool):
    from pyarrow import fs as pafs

    try:
        return fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
    except OSError as exc:
        raise InputError(f"cannot list {path}: {one_line(exc)}") from None


def open_inputs(spec: str | Path | Sequence[str | Path], image_root: str | Path | None = None, *,
                skip_unreadable: bool = False) -> InputSet:
    """The input files (local, or objects of one store) with their footers read; one whose
    footer cannot be read is an InputError, or (skip_unreadable) listed in
    InputSet.unreadable and left out."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if any(is_uri(s) for s in specs):
        fs, names, scheme = list_inputs(specs)
        located = [(scheme + name, fs, name) for name in names]
    else:
        fs, _ = open_fs(".")
        located = [(path, None, str(path)) for path in find_inputs(specs)]
    files, unreadable, stamps = [], [], []
    for path, store, inner in located:
        size, mtime_ns = _stamp(fs, str(Path(inner).resolve()) if store is None else inner)
        try:
            with (nullcontext(path) if store is None else store.open_input_file(inner)) as source, \
                    pq.ParquetFile(source) as pf:
                meta, schema = pf.metadata, pf.schema_arrow
        except Exception as exc:  # not Parquet, truncated footer, permissions
            if not skip_unreadable:
                raise InputError(f"cannot read {path} as Parquet: {one_line(exc)}") from None
            unreadable.append({"file": str(path), "row_group": None, "rows": None,
                               "reason": f"cannot read as Parquet: {one_line(exc)}"})
            key = str(path) if store is not None else str(Path(path).resolve())
            stamps.append([key, size, mtime_ns])
            log.warning("skipped unreadable input %s: %s", path, one_line(exc))
            continue
        files.append(InputFile(path, meta.num_rows, size, mtime_ns, schema, store, inner if store else ""))
    if not files:
        raise InputError(f"no readable input: {len(unreadable)} file(s) skipped as unreadable "
                         f"({unreadable[0]['file']}: {unreadable[0]['reason']})")
    check_image_root(image_root)
    return InputSet(files, image_root, unreadable, stamps)


def check_image_root(image_root: str | Path | None) -> None:
    """--image-root must be a folder, or a prefix of a store that holds objects."""
    if image_root is None:
        return
    if not is_uri(image_root):
        if not Path(image_root).is_dir():
            raise InputError(f"--image-root {image_root} is not a folder")
        return
    from pyarrow import fs as pafs

    fs, path = open_fs(image_root)
    try:
        kind = fs.get_file_info(path).type
    except OSError as exc:
        raise InputError(f"cannot open --image-root {image_root}: {one_line(exc)}") from None
    if kind != pafs.FileType.Directory:
        raise InputError(f"--image-root {image_root} is not a folder or a prefix holding objects")


