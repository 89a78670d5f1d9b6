"""Library errors and the process exit codes every `mmsa` command uses (one table, README).

    0    done (row errors are data: see the `error` column and the summary), or the output
         was already complete for this very job
    1    any other mmsa error
    2    usage or input problem: bad option, input missing or unreadable, column absent
    3    model or run folder invalid (incomplete, modified, wrong format) or not loadable
    4    output exists from another job, or an interrupted run waits for --resume
    5    --resume refused: the interrupted run used other inputs, model or options
    6    failed while working (I/O error, worker crash, runtime failure); what was completed
         is kept: rerun with --resume where the command has it
    7    --device cuda asked for, but no usable CUDA GPU (nothing ran; `auto` falls back)
    130  interrupted (Ctrl-C / SIGINT); what was completed is kept
The CLI turns an MmsaError into a one-line message and its class's exit code (no traceback).
"""

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_OUTPUT_EXISTS = 4
EXIT_RESUME_MISMATCH = 5
EXIT_RUNTIME = 6
EXIT_DEVICE = 7
EXIT_INTERRUPTED = 130


class MmsaError(Exception):
    """A user-facing problem (bad input, missing weights, invalid folder): no traceback."""
    exit_code = EXIT_OTHER


class ConfigError(MmsaError):
    """An invalid option value: the message names the value and what is allowed."""
    exit_code = EXIT_USAGE


class WeightsNotFoundError(MmsaError):
    """Pretrained weights were asked for but are not available offline."""
    exit_code = EXIT_USAGE


class DataError(MmsaError):
    """Input data cannot be read (missing file, missing column, bad label)."""
    exit_code = EXIT_USAGE


class InputError(DataError):
    """The input files, their columns or an option make the job impossible."""


class FolderError(MmsaError):
    """A model or run folder is incomplete, modified or of another format."""
    exit_code = EXIT_MODEL


class OutputExistsError(MmsaError):
    """--out exists from another job (use --overwrite), or an interrupted run waits for --resume."""
    exit_code = EXIT_OUTPUT_EXISTS


class ResumeMismatchError(MmsaError):
    """--resume of a run whose inputs, model folder or options were different."""
    exit_code = EXIT_RESUME_MISMATCH


class PipelineError(MmsaError):
    """Work stopped part way; what was completed is kept."""
    exit_code = EXIT_RUNTIME


class DeviceUnavailableError(MmsaError):
    """--device cuda where CUDA cannot be used: an error, never a silent (10x slower) CPU run."""
    exit_code = EXIT_DEVICE


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception (the table above)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return getattr(exc, "exit_code", EXIT_OTHER)
