"""Option groups and error handling shared by every `mmsa` command."""
from __future__ import annotations

import functools

import click

from .errors import MmsaError


def library_errors(fn):
    """MmsaError -> ClickException: a clear one-line message and exit code 1, no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MmsaError as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


device_option = click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
