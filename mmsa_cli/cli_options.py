"""Option groups and error handling shared by every `mmsa` command (the CLI vocabulary)."""
from __future__ import annotations

import functools

import click

from .errors import MmsaError, exit_code_for
from .io.storage import is_uri, open_fs


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


# --------------------------------------------------------------------------- the data argument


def data_argument(fn):
    """DATA (positional, or the hidden old `--data`) + the table-layout options; the command
    receives `data` (checked: exactly one of the two) and the layout options by name."""
    options = [
        click.argument("data_path", required=False, metavar="DATA", type=click.Path(exists=True)),
        click.option("--data", "data_option", hidden=True, type=click.Path(exists=True),
                     help="Old spelling of the DATA argument."),
        click.option("--label-file", default="train.txt", show_default=True,
                     help="MVSA layout: the guid,tag file, relative to DATA."),
        click.option("--text-col", default="text", show_default=True, help="Table layout: text column."),
        click.option("--image-col", default="image", show_default=True, help="Table layout: image path column."),
        click.option("--id-col", default=None, help="Table layout: id column [default: guid if present, else row number]."),
        click.option("--label-col", default="label", show_default=True, help="Table layout: label column (optional)."),
        click.option("--image-root", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Table layout: folder image paths are relative to [default: the table's folder]."),
    ]
    for option in reversed(options):
        fn = option(fn)

    @functools.wraps(fn)
    def wrapper(*args, data_path=None, data_option=None, **kwargs):
        if (data_path is None) == (data_option is None):
            raise click.UsageError("give the data once: DATA (an MVSA folder or a Parquet/CSV table)"
                                   if data_path is None else "give the data once: DATA or --data, not both")
        return fn(*args, data=data_path or data_option, **kwargs)
    return wrapper


# --------------------------------------------------------------------------- options from config dataclasses

class PresetChoice(click.Choice):
    """A choice whose test-only names are accepted but not listed in --help; `open` also
    accepts any other value (a text encoder may be a model folder)."""

    def __init__(self, choices, hidden=(), open=False):
        super().__init__(choices)
        self.hidden, self.open = tuple(hidden), open

    def get_metavar(self, param, ctx):
        shown = "|".join(str(c) for c in self.choices if c not in self.hidden)
        return f"[{shown}|DIR]" if self.open else f"[{shown}]"

    def convert(self, value, param, ctx):
        if self.open and value not in self.choices:
            return value
        return super().convert(value, param, ctx)


class NameList(click.ParamType):
    """Comma-separated names (or a list, from a config file), each one of `choices`."""
    name = "names"

    def __init__(self, choices):
        self.choices = tuple(choices)

    def convert(self, value, param, ctx):
        names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
        names = tuple(n for n in names if n)
        bad = [n for n in names if n not in self.choices]
        if bad or not names:
            self.fail(f"{','.join(bad) or 'nothing'} is not a list of {', '.join(self.choices)}", param, ctx)
        return names

    def get_metavar(self, param, ctx):
        return "NAME,NAME..."


def _range(kind, meta):
    if meta["min"] is None and meta["max"] is None:
        return kind
    cls = click.IntRange if kind is int else click.FloatRange
    return cls(meta["min"], meta["max"], min_open=meta["min_open"], max_open=meta["max_open"])


def field_type(f, type_hint, hidden_choices=(), open_choices=()):
    """The click type a config field's declaration (mmsa_cli/config.py: option) implies."""
    meta = f.metadata
    choices = meta["choices"]
    if str(type_hint).startswith("tuple"):
        return NameList(choices)
    if choices is not None:
        return PresetChoice(choices, hidden_choices, open=f.name in open_choices)
    if meta["path"]:
        return click.Path(exists=True, file_okay=meta["path"] != "dir", dir_okay=meta["path"] != "file")
    kind = {"int": int, "float": float, "bool": bool}.get(str(type_hint), str)
    return _range(kind, meta) if kind in (int, float) else click.BOOL if kind is bool else click.STRING


def dataclass_options(classes, *, hidden_choices=(), open_choices=()):
    """Decorator adding one option per command-line field of each config dataclass: name
    `--field-name`, help, default, range and choices from the field's declaration. Path
    options default to None (not given); aliases become hidden options `<field>_alias`."""
    import dataclasses
    import typing

    def decorate(fn):
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for f in reversed(dataclasses.fields(cls)):
                meta = f.metadata
                if not meta.get("cli"):
                    continue
                flag = "--" + f.name.replace("_", "-")
                ptype = field_type(f, hints[f.name].__name__ if isinstance(hints[f.name], type) else hints[f.name],
                                   hidden_choices, open_choices)
                for alias in meta["aliases"]:
                    fn = click.option(alias, f"{f.name}_alias", type=ptype, default=None, hidden=True)(fn)
                if ptype is click.BOOL:
                    fn = click.option(flag, f.name, is_flag=True, default=f.default, help=meta["help"])(fn)
                    continue
                default = None if meta["path"] else f.default
                default = ",".join(default) if isinstance(default, tuple) else default
                fn = click.option(flag, f.name, type=ptype, default=default, help=meta["help"],
                                  show_default=default not in ("", None))(fn)
        return fn
    return decorate


# The rest of the shared vocabulary (README, "One vocabulary for every command").
stats_json_option = click.option(
    "--stats-json", type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the command's summary as JSON to this file; `-` = standard output (the text lines go to "
         "stderr).")


def overwrite_option(what: str):
    return click.option("--overwrite", is_flag=True,
                        help=f"Replace an existing --out ({what}); without it an existing output is refused (exit 4).")


def say_for(stats_json: str | None):
    """click.echo, or echo to stderr when standard output carries the --stats-json document."""
    return (lambda line: click.echo(line, err=True)) if stats_json == "-" else click.echo


def write_stats(stats_json: str | None, stats: dict) -> None:
    """--stats-json: `-` is standard output; a file, local or on object storage (s3://...)."""
    import json
    from pathlib import Path

    text = json.dumps(stats, indent=2)
    if stats_json == "-":
        click.echo(text)
    elif stats_json and is_uri(stats_json):
        fs, path = open_fs(stats_json)
        with fs.open_output_stream(path) as f:
            f.write((text + "\n").encode())
    elif stats_json:
        Path(stats_json).write_text(text + "\n")
