"""Operator fusion: ONNX Runtime's BERT optimizer on the whole multimodal graph, counting
what fused in each part, and the checks that fail an export when fusions go missing.

Strategy: the optimizer runs once on the complete graph (text encoder, image encoder,
fusion stage, softmax) rather than on separately exported parts stitched together later.
Its fusions are local pattern matches, so the BERT subgraph fuses exactly as it would
alone, and there is a single export, a single graph and a single parity check. Fused
nodes are attributed to a part by the tensor names the TorchScript exporter gives
(`/model/text_encoder/...`, `/model/image_encoder/...`, `/model/fusion/...`): a fused
node keeps the output name of the pattern it replaced. EmbedLayerNormalization gets a
fresh name but can only come from the text encoder.

The shipped graph is the optimizer's portable output (`opt_level=0`: its Python fusions
only). Execution-provider-specific rewrites (Conv+activation -> FusedConv, NCHWc layouts
on CPU, ...) are what ONNX Runtime applies itself when a session loads the model; they are
counted separately from a session's `optimized_model_filepath` for the target provider.

Expected BERT fusions, from the encoder's config (L = num_hidden_layers; MPNet differs, see
expected_text_fusions):
    EmbedLayerNormalization  1    word + position + token-type embeddings and their LayerNorm
    Attention                L    (or MultiHeadAttention) self-attention incl. QKV projections
    SkipLayerNormalization   2L   residual add + LayerNorm after attention and after the FFN
    Gelu family              L    the FFN's bias + erf GELU -> BiasGelu (or Gelu/FastGelu)
"""
from __future__ import annotations

import gc
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import onnx

from .graph import ExportError

GELU_OPS = ("BiasGelu", "FastGelu", "Gelu", "GemmFastGelu")
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
BERT_FUSED_OPS = ("EmbedLayerNormalization", *ATTENTION_OPS, "SkipLayerNormalization", *GELU_OPS)
PARTS = ("text_encoder", "image_encoder", "fusion")
# Activations ORT can fold into a preceding Conv (CPU FusedConv / NCHWc Conv; CUDA: Relu).
CONV_ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh")
OPTIMIZER = "onnxruntime.transformers.optimizer.optimize_model(model_type='bert', opt_level=0)"


class FusionCheckError(ExportError):
    """Expected fused operators are missing: the exported model would run slower."""


def part_of(node: onnx.NodeProto) -> str:
    """Which model part a node belongs to, from the exporter's scoped tensor names."""
    for name in (*node.output, node.name):
        for part in PARTS:
            if f"/{part}/" in name:
                return part
    return "text_encoder" if node.op_type == "EmbedLayerNormalization" else "other"


def op_counts(graph: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """{part: {op_type: count}} plus an "all" entry."""
    counts: dict[str, Counter] = {part: Counter() for part in (*PARTS, "other", "all")}
    for node in graph.graph.node:
        counts[part_of(node)][node.op_type] += 1
        counts["all"][node.op_type] += 1
    return {part: dict(sorted(c.items())) for part, c in counts.items()}


def bert_fusion_counts(counts: dict[str, int]) -> dict[str, int]:
    """Group one part's op counts into the four BERT fusion kinds."""
    return {
        "EmbedLayerNormalization": counts.get("EmbedLayerNormalization", 0),
        "Attention": sum(counts.get(op, 0) for op in ATTENTION_OPS),
        "SkipLayerNormalization": counts.get("SkipLayerNormalization", 0),
        "Gelu": sum(counts.get(op, 0) for op in GELU_OPS),
    }


def expected_text_fusions(slices: Sequence, uses_text: bool, remapped: Sequence[bool] = ()) -> dict[str, int]:
    """The fusions the graph's text encoders must get, by model_type (a ModelBag may run
    several, of several types, and share their bottom layers): slices are TextSlices
    (models/text_encoders.py). remapped[i]: encoder i reads token ids looked up from the
    graph's (models/bag.py), not the graph input itself.

    BERT (and types not listed): all four kinds, every layer it runs, but for the layer where a
    shared bottom's hidden states come in: they feed several encoders' layers, and ORT fuses an
    attention only when its input feeds the 3 MatMuls of one layer. MPNet adds a relative-position
    bias inside attention, which ORT's Attention patterns do not match: its attention stays
    MatMul + Softmax (slower on a GPU), and its embedding LayerNorm, after a plain Add, becomes
    one more SkipLayerNormalization instead of an EmbedLayerNormalization, unless its ids are
    looked up (ORT fuses an embedding's Add only when the Gather reads a graph input). With
    several encoders the embeddings stay unfused (see text_fusion_options)."""
    total = Counter({"EmbedLayerNormalization": 0, "Attention": 0, "SkipLayerNormalization": 0, "Gelu": 0})
    remapped = list(remapped) or [False] * len(slices)
    for s, looked_up in zip(slices, remapped):
        config = s.encoder.bert.config
        layers = config.num_hidden_layers - s.first_layer if uses_text else 0
        embeddings = uses_text and not s.first_layer
        fed_by_shared_bottom = int(uses_text and 0 < s.split_at < config.num_hidden_layers)
        if config.model_type == "mpnet":
            total.update({"SkipLayerNormalization": 2 * layers + int(embeddings and not looked_up), "Gelu": layers})
        else:
            total.update({"EmbedLayerNormalization": int(embeddings and len(slices) == 1),
                          "Attention": layers - fed_by_shared_bottom,
                          "SkipLayerNormalization": 2 * layers, "Gelu": layers})
    return dict(total)


def text_fusion_options(encoders: int) -> dict | None:
    """ORT's EmbedLayerNormalization fusion assumes one BERT per graph: with several it gives
    each fused embedding the same name and fails. So a graph of several text encoders keeps
    their embeddings' LayerNormalization (a small part of an encoder's time) and fuses the rest."""
    return {"enable_embed_layer_norm": False} if encoders > 1 else None


def optimize_bert(raw: onnx.ModelProto, num_heads: int, hidden_size: int, *, options: dict | None = None,
                  use_gpu: bool = False) -> onnx.ModelProto:
    """Apply ORT's BERT fusions (Python pattern matching, no EP-specific rewrites); `raw`
    is modified in place. `options` sets FusionOptions attributes (benchmarks compare them;
    the export uses the defaults)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusion_options = FusionOptions("bert")
    for key, value in (options or {}).items():
        setattr(fusion_options, key, value)
    try:
        with _shape_inference_copies_freed():
            optimized = optimize_model(raw, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                       optimization_options=fusion_options, opt_level=0, use_gpu=use_gpu)
    except Exception as exc:
        raise ExportError(f"ONNX Runtime's transformer optimizer failed: {exc}") from exc
    graph = optimized.model
    del optimized
    gc.collect()  # its last shape-inference copy
    raw_masks_outside_text_encoder(graph)
    return graph


@contextmanager
def _shape_inference_copies_freed():
    """ORT's BERT optimizer runs symbolic shape inference between fusions; each run copies the
    whole model, weights included, into an object that sits in a reference cycle, so the copies
    pile up until Python's cyclic GC happens to run (a BERT-base graph of 0.41 GB: +2.95 GB while
    optimizing). Collect them before each run, and drop the helper that holds the previous copy
    when the optimizer asks for a new one: +0.90 GB (benchmarks/optimizer_memory.py). A version
    of ORT without this method runs unchanged."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    owner = next((k for k in MODEL_TYPES["bert"][0].__mro__ if "infer_runtime_shape" in vars(k)), None)
    if owner is None:
        yield
        return
    original = owner.infer_runtime_shape

    def infer_runtime_shape(self, dynamic_axis_mapping={}, update=False):  # noqa: B006 (ORT's signature)
        if update:
            self.shape_infer_helper = None
        gc.collect()
        return original(self, dynamic_axis_mapping, update)

    owner.infer_runtime_shape = infer_runtime_shape
    try:
        yield
    finally:
        owner.infer_runtime_shape = original


def raw_masks_outside_text_encoder(graph: onnx.ModelProto) -> int:
    """Give every fused Attention outside the text encoder its raw 2D mask.

    For model_type 'bert' the optimizer turns a padding mask into a 1D "mask index"
    (ReduceSum = number of valid tokens), which means "the first n keys are real". That
    holds in BERT, whose mask is the right-padded tokenizer mask, but not in hstec's fusion
    encoder, whose keys are [text tokens + padding, image tokens]: there it would attend to
    padding and skip image tokens. Attention also accepts the raw int32 [B, T] mask, which
    is correct for any padding, so those nodes are rewired to it. Returns the count."""
    producers = {out: n for n in graph.graph.node for out in n.output}
    rewired = 0
    for node in graph.graph.node:
        if node.op_type != "Attention" or part_of(node) == "text_encoder" or len(node.input) < 4:
            continue
        source = producers.get(node.input[3])
        if source is not None and source.op_type == "ReduceSum":
            node.input[3] = source.input[0]
            rewired += 1
    used = {name for n in graph.graph.node for name in n.input} | {o.name for o in graph.graph.output}
    unused = [n for n in graph.graph.node if n.op_type == "ReduceSum" and not set(n.output) & used]
    for n in unused:
        graph.graph.node.remove(n)
    return rewired


@dataclass
class FusionReport:
    text: dict[str, int]                      # BERT fusion kinds found in the text encoder
    expected_text: dict[str, int]
    parts: dict[str, dict[str, int]]          # op counts per part of the shipped graph
    raw: dict[str, int]                       # op counts straight out of the exporter
    ep: dict = field(default_factory=dict)    # provider-level counts (see ep_fusion_counts)

    @property
    def batch_norms(self) -> int:
        return self.parts["all"].get("BatchNormalization", 0)

    def failures(self) -> list[str]:
        problems = [f"text encoder: {kind} fused {self.text[kind]}, expected {want}"
                    for kind, want in self.expected_text.items() if self.text[kind] != want]
        if problems:
            problems[-1] += (" (was the text encoder exported with eager attention? a changed "
                             "transformers/onnxruntime version can change the patterns)")
        if self.batch_norms:
            problems.append(f"image encoder: {self.batch_norms} BatchNormalization nodes left, expected 0 "
                            f"(BatchNorm must be folded into the convolutions)")
        return problems

    def to_dict(self) -> dict:
        return {"text_encoder_fusions": self.text, "expected_text_encoder_fusions": self.expected_text,
                "batch_normalization_left": self.batch_norms, "execution_provider": self.ep,
                "shipped_graph_ops": self.parts, "raw_export_ops": self.raw}


def ep_fusion_counts(model_path: Path, provider: str) -> dict:
    """Let ONNX Runtime optimise the graph for `provider` (level ALL) and count what it made
    of the convolutions: fused Conv+activation, plain Conv, and Conv->activation pairs it
    left unfused."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "ep.onnx")
        # Weights in a file beside it, as a graph over 2 GB needs: only the nodes are counted.
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "ep.onnx.data")
        options.log_severity_level = 3
        ort.InferenceSession(str(model_path), options, providers=[provider])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False)
    counts = Counter(f"{n.domain}:{n.op_type}" if n.domain.endswith("nchwc") else n.op_type for n in graph.graph.node)
    producers = {out: n for n in graph.graph.node for out in n.output}

    def is_conv(node) -> bool:
        while node is not None and node.op_type == "Cast":  # fp16 graphs on an EP without fp16 Conv
            node = producers.get(node.input[0])
        return node is not None and node.op_type in ("Conv", "FusedConv")

    fused = sum(1 for n in graph.graph.node if n.op_type == "FusedConv"
                or (n.op_type == "Conv" and any(a.name == "activation" for a in n.attribute)))
    unfused = sum(1 for n in graph.graph.node if n.op_type in CONV_ACTIVATIONS
                  and n.input and is_conv(producers.get(n.input[0])))
    convs = sum(v for k, v in counts.items() if k.split(":")[-1] in ("Conv", "FusedConv"))
    return {"provider": provider, "conv": convs, "conv_with_fused_activation": fused,
            "conv_activation_left_unfused": unfused,
            "batch_normalization": counts.get("BatchNormalization", 0),
            "ops": dict(sorted(counts.items()))}
