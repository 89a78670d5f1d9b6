"""ONNX export: one optimized, validated model folder per trained run (see export.py and
export/README.md)."""
from .export import PRECISIONS, TARGETS, ExportReport, export_model, export_run
from .folder import verify_model_folder
from .fusions import FusionCheckError
from .graph import ExportError
from .parity import ParityError, ParityRows, find_parity_rows
from .spec import OPSET, ExportSpec, spec_for

__all__ = ["PRECISIONS", "TARGETS", "ExportReport", "export_model", "export_run", "verify_model_folder",
           "FusionCheckError", "ExportError", "ParityError", "ParityRows", "find_parity_rows", "OPSET",
           "ExportSpec", "spec_for"]
