"""The run folder a training writes: refused if it exists (unless --overwrite), built in a
hidden sibling and renamed into place only once training succeeded, so a failed or
interrupted run leaves nothing new behind and an overwritten run is replaced whole."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .outputs import refuse_existing


def _missing_ancestors(folder: Path) -> list[Path]:
    """The folders above `folder` that do not exist yet, deepest first."""
    missing = []
    for parent in folder.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


@contextmanager
def staged_folder(final: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; on success it becomes `final` (an old
    `final` is removed only then); on any failure it is removed, with the parents it created."""
    refuse_existing(final, overwrite, when="once training succeeds")
    created = _missing_ancestors(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:  # KeyboardInterrupt included: nothing half-written stays
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    if final.is_dir():
        shutil.rmtree(final)
    elif final.exists():
        final.unlink()
    staging.rename(final)
