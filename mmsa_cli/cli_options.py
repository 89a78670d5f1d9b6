"""Option groups and error handling shared by every `mmsa` command (the CLI vocabulary)."""
from __future__ import annotations

import functools

import click

from .errors import MmsaError, exit_code_for


class CommandFailed(click.ClickException):
    """A one-line reason on stderr and the exit code of mmsa_cli/errors.py."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def library_errors(fn):
    """MmsaError -> a clear one-line message and its exit code (mmsa_cli/errors.py), no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MmsaError as exc:
            raise CommandFailed(str(exc), exit_code_for(exc)) from exc
    return wrapper


device_option = click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
    help="auto: CUDA when usable, else the CPU (and says so); cuda: fail with exit 7 where CUDA cannot be used.")
