"""`mmsa train --config FILE`: option values from a TOML or YAML file, or a run folder's
config.json (which replays that run), and the precedence of every source:

    an explicit flag  >  the config file  >  the recipe (--recipe, or `recipe` in the file)  >  the default

A file holds option names (`lr`, `epochs`, `freeze`, as on the command line with `_` for `-`),
at its top level or grouped in `model`, `train` and `weights` tables, as config.json writes
them. config.json's other keys (INFORMATIONAL) are ignored: versions, the creation time, the
data path (give DATA again), labels and image preprocessing (derived from the options).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import CONFIG_CLASSES, RECIPES, upgrade_legacy
from ..errors import ConfigError

INFORMATIONAL = ("mmsa_version", "created", "data", "labels", "image", "torch_version")
OPTION_FIELDS = {f.name: section for section, cls in CONFIG_CLASSES.items() for f in dataclasses.fields(cls)}


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"--config {path}: YAML needs PyYAML (pip install pyyaml), or write the file as TOML")
        return yaml.safe_load(text)
    if suffix == ".json":
        return json.loads(text)
    raise ConfigError(f"--config {path}: unknown format '{suffix}'; use .toml, .yaml/.yml or a run's config.json")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """{option name: value} from the file, sections flattened, old names upgraded; unknown
    keys are refused with the allowed ones named. Values are checked by the caller."""
    path = Path(path)
    try:
        content = _parse(path)
    except ConfigError:
        raise
    except Exception as exc:  # a syntax error: one line naming the file
        raise ConfigError(f"--config {path}: cannot be read ({type(exc).__name__}: {exc})".replace("\n", " "))
    if not isinstance(content, dict):
        raise ConfigError(f"--config {path}: expected a table of options, got {type(content).__name__}")
    values: dict[str, Any] = {}
    for key, value in content.items():
        if key in CONFIG_CLASSES and isinstance(value, dict):
            section = upgrade_legacy(CONFIG_CLASSES[key], value)
            for name in section:
                if OPTION_FIELDS.get(name) != key:
                    raise ConfigError(f"--config {path}: unknown key '{key}.{name}'; allowed in [{key}]: "
                                      + ", ".join(f.name for f in dataclasses.fields(CONFIG_CLASSES[key])))
            values.update(section)
        elif key in OPTION_FIELDS or key == "recipe":
            values[key] = value
        elif key not in INFORMATIONAL:
            raise ConfigError(f"--config {path}: unknown key '{key}'; allowed: recipe, "
                              + ", ".join(OPTION_FIELDS) + " (or tables " + ", ".join(CONFIG_CLASSES) + ")")
    values = upgrade_legacy(CONFIG_CLASSES["train"], values)  # a flat file in old spellings
    if "recipe" in values and values["recipe"] not in RECIPES:
        raise ConfigError(f"--config {path}: recipe '{values['recipe']}' is not one of {', '.join(RECIPES)}")
    return values


def merge_sources(defaults: dict[str, Any], recipe: dict[str, Any], from_file: dict[str, Any],
                  explicit: dict[str, Any]) -> dict[str, Any]:
    """The precedence, lowest first: defaults, recipe, config file, explicit flags."""
    return {**defaults, **recipe, **from_file, **explicit}
