"""The one rule for an existing --out, in every command: it is another job's output, refused
(exit 4) unless --overwrite, which replaces it only once the new output is complete (each
command writes under a temporary name and renames at the end)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputExistsError


def refuse_existing(out: str | Path, overwrite: bool, *, when: str = "once the new one is complete") -> None:
    """OutputExistsError for an existing file or non-empty folder at `out`, unless overwrite."""
    out = Path(out)
    if overwrite or not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    raise OutputExistsError(f"--out '{out}' already exists: choose another --out, or add --overwrite to replace it "
                            f"{when}")


def current_umask() -> int:
    """The process umask (reading it means setting it: put straight back); outputs other users
    (a scheduler) read follow it."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
