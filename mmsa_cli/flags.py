"""Options declared once. An option is a dataclass field made by `option()`: its default, help,
and range or choices. The command line is generated from those fields (cli_options.py:
dataclass_options) and the library checks values against the same declarations
(`check_config`), so nothing is written twice. A flag that several commands take is a
`Shared` declaration below: one help, one default, one range (MLflow's cli_args, as fields).

    @dataclass
    class ExportOptions:
        precision: str = option("fp32", "fp16 keeps float32 inputs/outputs ...", choices=PRECISIONS)
        device: str = DEVICE()
        overwrite: bool = OVERWRITE(detail="only by an export that passed its checks")

Adding an option to a command is one such line. Torch-free and click-free: every install
imports it, and so does `--help`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .contract.device import DEVICES
from .errors import ConfigError
from .registry import FUSION_NAMES


def option(default: Any, help: str, *, choices: tuple | None = None,
           min: float | None = None, max: float | None = None, min_open: bool = False, max_open: bool = False,
           path: str = "", aliases: tuple[str, ...] = (), cli: bool = True, flag: str = "",
           parse: Callable[[Any], Any] | None = None, metavar: str = "", open_choice: bool = False) -> Any:
    """A field with what the command line and the checks need. choices: the allowed values
    (open_choice: listed, but other values pass too; a text encoder may be a folder); path =
    "file", "dir" or "any": must exist when given; aliases = hidden old spellings; cli=False: no
    flag; flag: the flag when it is not `--` + the name with dashes (a bool defaulting to True
    gets a `--no-...` flag that turns it off); parse: value -> checked value, raising an
    MmsaError (for what a range cannot say: 'auto' or a number); metavar: the flag's value name."""
    meta = dict(help=help, choices=choices, min=min, max=max, min_open=min_open, max_open=max_open, path=path,
                aliases=aliases, cli=cli, flag=flag, parse=parse, metavar=metavar, open_choice=open_choice)
    if isinstance(default, (list, dict, set)):
        raise TypeError("a mutable default: declare a tuple")
    return dataclasses.field(default=default, metadata=meta)


class Shared:
    """A flag several commands take, declared once: `DEVICE()` is a field of each command's
    options. `detail` fills the help's {detail} (what --overwrite replaces, and when)."""

    def __init__(self, default: Any, help: str, **declared):
        self.default, self.help, self.declared = default, help, declared

    def __call__(self, detail: str = "", **overrides) -> Any:
        return option(self.default, self.help.format(detail=detail), **(self.declared | overrides))


def flag_of(f: dataclasses.Field) -> str:
    """The field's command-line flag: --name-with-dashes unless declared otherwise."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


# --------------------------------------------------------------------------- the shared flags

DEVICE = Shared("auto", "auto: CUDA when usable, else the CPU (and says so); cuda: fail with exit 7 where CUDA "
                        "cannot be used.", choices=DEVICES)
OVERWRITE = Shared(False, "Replace an existing --out ({detail}); without it an existing output is refused (exit 4).")
FUSION = Shared(None, "Which model of a `--fusion all` run folder.", choices=FUSION_NAMES, flag="--fusion")
NO_DECISION_RULE = Shared(True, "Label each row by the arg-max of its probabilities, ignoring {detail}.",
                          flag="--no-decision-rule")
# Columns of a table: the data of train/evaluate/predict, the inputs of score.
TEXT_COL = Shared("text", "Text column of a table.", flag="--text-col")
IMAGE_COL = Shared("image", "Image column of a table: paths (relative to --image-root) or encoded image bytes.",
                   flag="--image-col")
ID_COL = Shared(None, "Id column of a table, copied to the output [default: guid if present, else the row "
                      "position (score: in a column named 'row')].", flag="--id-col")
IMAGE_ROOT = Shared(None, "Folder that a table's image paths are relative to, and may not leave (score: or a bucket "
                          "prefix, s3://bucket/images) [default: the table's folder; score: each input file's].",
                    flag="--image-root")


# --------------------------------------------------------------------------- the checks

def describe_allowed(meta: dict) -> str:
    """'one of a, b' or 'in [0, 1)': what a field accepts, for error messages."""
    if isinstance(meta["choices"], tuple):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low = "(" if meta["min_open"] else "["
    high = ")" if meta["max_open"] else "]"
    lo = meta["min"] if meta["min"] is not None else "-inf"
    hi = meta["max"] if meta["max"] is not None else "inf"
    return f"in {low}{lo}, {hi}{high}"


def check_config(cfg: Any) -> None:
    """Every value passes its declared parse, choices and range (a ConfigError names the first
    one that does not, by its flag); an open choice is checked where it is loaded, and a None
    where None is the default means "not given"."""
    for f in dataclasses.fields(cfg):
        meta, value = f.metadata, getattr(cfg, f.name)
        if not meta or (value is None and f.default is None):
            continue
        if meta.get("parse") is not None:
            value = meta["parse"](value)
        choices = meta.get("choices")
        values = value if isinstance(value, (tuple, list)) else (value,)
        if choices is not None and not meta.get("open_choice") and any(v not in choices for v in values):
            raise ConfigError(f"{flag_of(f)} {value!r} is not {describe_allowed(meta)}")
        low, high = meta.get("min"), meta.get("max")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                (low is not None and (value < low or (meta["min_open"] and value == low)))
                or (high is not None and (value > high or (meta["max_open"] and value == high)))):
            raise ConfigError(f"{flag_of(f)} {value} is not {describe_allowed(meta)}")


def values_of(cls: type, values: dict[str, Any], **given) -> Any:
    """An instance of the options dataclass `cls` from a command's parsed values (the fields it
    declares; others are ignored), with `given` fields set directly."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names}, **given)
