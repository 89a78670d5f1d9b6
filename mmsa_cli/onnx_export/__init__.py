"""ONNX export: one optimized, validated model folder per trained run (see export.py and
export/README.md)."""
from __future__ import annotations

import importlib

# Names are imported lazily (as in mmsa_cli.scoring): `mmsa export --help` loads
# onnx_export.cli without torch; the first name used imports its module.
_EXPORTS = {
    "PRECISIONS": "options", "TARGETS": "options", "ExportOptions": "options", "ExportReport": "export",
    "export_model": "export",
    "export_run": "export", "verify_model_folder": "folder", "FusionCheckError": "fusions",
    "ExportError": "graph", "ParityError": "parity", "ParityRows": "parity", "find_parity_rows": "parity",
    "OPSET": "spec", "ExportSpec": "spec", "spec_for": "spec",
}
__all__ = ["PRECISIONS", "TARGETS", "ExportOptions", "ExportReport", "export_model", "export_run", "verify_model_folder",
           "FusionCheckError", "ExportError", "ParityError", "ParityRows", "find_parity_rows", "OPSET",
           "ExportSpec", "spec_for"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
