"""Scoring errors. Exit codes are the package's one table (mmsa_cli/errors.py)."""
from __future__ import annotations

from ..errors import (EXIT_DEVICE, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_OTHER, EXIT_OUTPUT_EXISTS,  # noqa: F401
                      EXIT_RESUME_MISMATCH, EXIT_RUNTIME, EXIT_USAGE, DataError, FolderError, InputError, MmsaError,
                      OutputExistsError, PipelineError, ResumeMismatchError, exit_code_for)

ScoreError = MmsaError  # what scoring raises; kept as a name for API users


class ModelLoadError(FolderError):
    """The model folder passed its checks but ONNX Runtime cannot run it."""
