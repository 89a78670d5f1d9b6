"""fp16 conversion with fp32 islands where half precision is fragile.

Policy:
  * inputs and outputs stay float32 (keep_io_types): callers never see the difference;
  * the encoders (the FLOPs) run in fp16, including the fused Attention/SkipLayerNorm/
    BiasGelu/Conv kernels, which accumulate in fp32 internally;
  * ops whose reductions or ranges are fragile stay fp32 wherever they appear
    (FP32_OPS: LayerNorm, Softmax, Reduce*, Log/Exp/Pow/Sqrt, plus ORT's default list);
  * the whole fusion stage stays fp32: it is tiny (a few 64-wide layers) so fp16 gains
    nothing there, and it holds the fragile parts: the additive -1e4 padding mask, its
    softmax, the probability averaging and the clamp(1e-12).log() of the combine models
    (1e-12 is 0 in fp16, and log(0) = -inf).
"""
from __future__ import annotations

import onnx

from .fusions import part_of

FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "Log", "Exp", "Pow",
            "Sqrt", "Reciprocal")


def fp32_op_types() -> list[str]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    return sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))


def fp32_nodes(graph: onnx.ModelProto) -> list[str]:
    """Nodes kept in fp32 by name: the fusion stage and anything outside the encoders."""
    return [n.name for n in graph.graph.node if part_of(n) in ("fusion", "other")]


def to_fp16(graph: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(graph)
    model.convert_float_to_float16(keep_io_types=True, op_block_list=fp32_op_types(),
                                   node_block_list=fp32_nodes(graph))
    drop_duplicate_nodes(model.model)
    return model.model


def drop_duplicate_nodes(graph: onnx.ModelProto) -> int:
    """The converter can insert the same Cast twice (same name, input and output) when an fp16
    tensor feeds blocked nodes; ORT rejects the repeated name. Identical nodes compute the
    same value, so one copy is kept."""
    seen: set[bytes] = set()
    keep = []
    for node in graph.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            keep.append(node)
    dropped = len(graph.graph.node) - len(keep)
    if dropped:
        del graph.graph.node[:]
        graph.graph.node.extend(keep)
    return dropped
