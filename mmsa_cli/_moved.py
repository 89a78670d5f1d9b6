"""Deprecation shims for modules that moved (issue 28): the old module name keeps working,
forwarding each name to its new home on first use with a DeprecationWarning.

    # mmsa_cli/model_folder.py
    from ._moved import moved
    __getattr__ = moved(__name__, "mmsa_cli.contract.model_folder")
"""
from __future__ import annotations

import importlib
import warnings


def moved(old: str, new: str):
    """A module __getattr__ (PEP 562) for `old` that hands out `new`'s names."""
    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = getattr(importlib.import_module(new), name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r} (it moved to {new})") from None
        warnings.warn(f"{old} moved to {new}: import {name} from there", DeprecationWarning, stacklevel=2)
        return value
    __getattr__.target = new  # where the names live now
    return __getattr__

