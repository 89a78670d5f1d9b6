"""Option groups and error handling shared by every `mmsa` command (the CLI vocabulary)."""
from __future__ import annotations

import functools

import click

from .errors import MmsaError, exit_code_for
from .flags import flag_of
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


# --------------------------------------------------------------------------- the data argument


def data_argument(fn):
    """DATA (positional, or the hidden old `--data`) + the table-layout options (TableLayout);
    the command receives `data` (checked: exactly one of the two) and the layout options by name."""
    from .config import TableLayout

    fn = dataclass_options([TableLayout])(fn)
    fn = click.option("--data", "data_option", hidden=True, type=click.Path(exists=True),
                      help="Old spelling of the DATA argument.")(fn)
    fn = click.argument("data_path", required=False, metavar="DATA", type=click.Path(exists=True))(fn)

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


class Parsed(click.ParamType):
    """A value checked by its declaration's parse function (flags.py: option(parse=...)); the
    function's one-line MmsaError becomes click's usage error."""

    def __init__(self, parse, metavar: str):
        self.parse, self.name = parse, metavar or "VALUE"

    def convert(self, value, param, ctx):
        try:
            return self.parse(value)
        except MmsaError as exc:
            self.fail(str(exc), param, ctx)


class Names(click.ParamType):
    """Comma-separated names, the option repeatable (e.g. --keep-columns a,b --keep-columns c)."""
    name = "NAME[,NAME...]"

    def convert(self, value, param, ctx):
        return tuple(n.strip() for n in value.split(",") if n.strip()) if isinstance(value, str) else tuple(value)


def _range(kind, meta):
    if meta["min"] is None and meta["max"] is None:
        return kind
    cls = click.IntRange if kind is int else click.FloatRange
    return cls(meta["min"], meta["max"], min_open=meta["min_open"], max_open=meta["max_open"])


def field_type(f, type_hint, hidden_choices=()):
    """The click type a field's declaration (mmsa_cli/flags.py: option) implies."""
    meta = f.metadata
    choices = meta["choices"]
    hint = str(type_hint).replace(" | None", "")
    if choices is not None and hint.startswith("tuple"):
        return NameList(choices)
    if choices is not None:
        return PresetChoice(choices, hidden_choices, open=meta.get("open_choice", False))
    if meta.get("parse") is not None:
        return Parsed(meta["parse"], meta.get("metavar", ""))
    if hint.startswith("tuple"):
        return Names()
    if meta["path"]:
        return click.Path(exists=True, file_okay=meta["path"] != "dir", dir_okay=meta["path"] != "file")
    kind = {"int": int, "float": float, "bool": bool}.get(hint, str)
    return _range(kind, meta) if kind in (int, float) else click.BOOL if kind is bool else click.STRING


def _field_option(f, hint, hidden_choices):
    """The click options of one declared field: its flag (and hidden old spellings)."""
    meta, flag = f.metadata, flag_of(f)
    ptype = field_type(f, hint, hidden_choices)
    options = [click.option(alias, f"{f.name}_alias", type=ptype, default=None, hidden=True) for alias in meta["aliases"]]
    if ptype is click.BOOL:  # a flag; one that defaults to True is spelled --no-... and turns it off
        return options + [click.option(flag, f.name, is_flag=True, flag_value=not f.default, default=f.default,
                                       help=meta["help"])]
    default = None if meta["path"] else f.default
    multiple = isinstance(ptype, Names)
    default = ",".join(map(str, default)) if isinstance(default, tuple) and not multiple else default
    return options + [click.option(flag, f.name, type=ptype, default=default, help=meta["help"], multiple=multiple,
                                   metavar=meta.get("metavar") or None,
                                   show_default=default not in ("", None, ()) and not multiple)]


def dataclass_options(classes, *, hidden_choices=()):
    """Decorator adding one option per command-line field of each options dataclass: its flag,
    help, default, range and choices from the field's declaration (flags.py: option). Path
    options default to None (not given); aliases become hidden options `<field>_alias`; a tuple
    field without choices is a repeatable, comma-separated option (multiple=True, merged)."""
    import dataclasses
    import typing

    def decorate(fn):
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for f in reversed(dataclasses.fields(cls)):
                if not f.metadata.get("cli"):
                    continue
                hint = hints[f.name].__name__ if isinstance(hints[f.name], type) else hints[f.name]
                for option in reversed(_field_option(f, hint, hidden_choices)):
                    fn = option(fn)
        return _merging_lists(fn)
    return decorate


def _merging_lists(fn):
    """A repeated comma-separated option arrives as a tuple of tuples: one tuple of names."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        merged = {k: tuple(n for part in v for n in part) if isinstance(v, tuple) and v and isinstance(v[0], tuple)
                  else v for k, v in kwargs.items()}
        return fn(*args, **merged)
    return wrapper


# The rest of the shared vocabulary (README, "One vocabulary for every command").
stats_json_option = click.option(
    "--stats-json", type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the command's summary as JSON to this file; `-` = standard output (the text lines go to "
         "stderr).")


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
