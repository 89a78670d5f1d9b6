"""PyTorch -> ONNX: one graph from raw model inputs to (probs, logits).

The legacy TorchScript exporter (`dynamo=False`) is used on purpose: ONNX Runtime's BERT
fusions (onnxruntime.transformers.optimizer) pattern-match the graphs it produces; the
dynamo exporter's graphs are decomposed differently and fuse less. The text encoder is
switched to eager attention first, since transformers' SDPA path exports to a pattern the
optimizer does not recognise (no Attention would fuse).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import MmsaError
from ..models import ExportableModel
from .spec import ExportSpec

EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"
_ONNX_DTYPES = {"int64": onnx.TensorProto.INT64, "float32": onnx.TensorProto.FLOAT}


class ExportError(MmsaError):
    """The model could not be exported or the export did not pass its checks."""


class ProbabilitiesAndLogits(nn.Module):
    """Adds the softmax to the graph, so plain ONNX Runtime users get probabilities."""

    def __init__(self, model: ExportableModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor):
        logits = self.model(input_ids, attention_mask, pixel_values).float()   # [B, C]
        return logits.softmax(-1), logits


def export_onnx(model: ExportableModel, spec: ExportSpec, path: Path) -> onnx.ModelProto:
    """Trace `model` (eval mode, eager attention) to `path` and return the loaded graph."""
    model.eval()
    attention = [encoder.bert.config._attn_implementation for encoder in model.text_encoders]  # each put back after
    for encoder in model.text_encoders:
        encoder.set_attention("eager")
    wrapper = ProbabilitiesAndLogits(model).eval()
    example = spec.example_inputs()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # TracerWarnings about shape-derived Python values are expected: none depends on data.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper, example, str(path), dynamo=False, opset_version=spec.opset,
                input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                dynamic_axes=spec.dynamic_axes(), do_constant_folding=True)
        except Exception as exc:  # the exporter raises many types; the message is what matters
            raise ExportError(f"torch.onnx.export failed for fusion '{model.cfg.fusion}': {exc}") from exc
        finally:
            for encoder, implementation in zip(model.text_encoders, attention):
                encoder.set_attention(implementation or "sdpa")
    graph = onnx.load(str(path))
    add_unused_inputs(graph, spec)
    return graph


def add_unused_inputs(graph: onnx.ModelProto, spec: ExportSpec) -> None:
    """The exporter drops inputs a model never reads (pixel_values of text-only, token ids of
    image-only). Declare them anyway so every model folder has the same three inputs."""
    present = {i.name for i in graph.graph.input}
    for position, t in enumerate(spec.inputs):
        if t.name in present:
            continue
        value = onnx.helper.make_tensor_value_info(t.name, _ONNX_DTYPES[t.dtype], list(t.shape))
        graph.graph.input.insert(position, value)
