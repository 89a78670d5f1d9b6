"""Scoring errors, each with the process exit code a scheduler can act on.

    0  done (rows with problems are data: see the `error` column and the summary),
       or the output is already complete for this very job (nothing to do)
    1  other user-facing error (any other mmsa error)
    2  usage or input problem: bad option, input missing or unreadable, column absent
    3  model folder invalid (incomplete, modified, wrong format) or not loadable
    4  output exists from another job, or an interrupted run is waiting for --resume
    5  --resume refused: the interrupted run used other inputs, model or options
    6  failed while scoring (I/O error, worker crash, runtime failure): completed row
       groups are kept; rerun with --resume to continue
"""
from __future__ import annotations

from ..errors import MmsaError

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_OUTPUT_EXISTS = 4
EXIT_RESUME_MISMATCH = 5
EXIT_RUNTIME = 6


class ScoreError(MmsaError):
    exit_code = EXIT_OTHER


class InputError(ScoreError):
    """The input files, their columns or an option make the job impossible."""
    exit_code = EXIT_USAGE


class ModelLoadError(ScoreError):
    """The model folder passed its checks but ONNX Runtime cannot run it."""
    exit_code = EXIT_MODEL


class OutputExistsError(ScoreError):
    exit_code = EXIT_OUTPUT_EXISTS


class ResumeMismatchError(ScoreError):
    exit_code = EXIT_RESUME_MISMATCH


class PipelineError(ScoreError):
    """Scoring stopped part way; what was written so far can be resumed."""
    exit_code = EXIT_RUNTIME


def exit_code_for(exc: BaseException) -> int:
    from ..model_folder import ModelFolderError

    if isinstance(exc, ModelFolderError):
        return EXIT_MODEL
    return getattr(exc, "exit_code", EXIT_OTHER)
