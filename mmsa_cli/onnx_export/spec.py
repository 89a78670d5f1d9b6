"""What an exported model declares, in the manner of Optimum's OnnxConfig: its inputs and
outputs (names, dtypes, dynamic axes), the opset, the example inputs used for tracing and
the tolerances every export is validated against."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract.model_folder import INPUT_NAMES, OUTPUT_NAMES
from ..models import ExportableModel

OPSET = 17  # first opset with LayerNormalization, which ORT's SkipLayerNormalization fusion matches


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str                       # numpy dtype name
    shape: tuple[str | int, ...]     # str = dynamic axis name, int = fixed size


@dataclass(frozen=True)
class ExportSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    vocab_size: int
    opset: int = OPSET
    # The tracer records the example's shapes; a batch of 1 can freeze the batch axis, and a
    # size equal to another dimension (3 channels, 3 classes, 2 modality tokens) can be
    # confused with it. 5 x 13 is >= 2 and equal to nothing else in these graphs.
    example_batch: int = 5
    example_length: int = 13
    fp32_atol: float = 1e-4          # probabilities and logits, fp32 graph vs PyTorch fp32
    fp16_prob_atol: float = 1e-2     # probabilities, fp16 graph vs PyTorch fp32
    fp16_min_label_agreement: float = 0.995

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
                for t in (*self.inputs, *self.outputs)}

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ids with ragged padding, so the traced mask path is the general one."""
        g = torch.Generator().manual_seed(seed)
        b, n = self.example_batch, self.example_length
        ids = torch.randint(1000, self.vocab_size, (b, n), generator=g)
        mask = torch.ones(b, n, dtype=torch.long)
        for row in range(1, b):
            mask[row, n - row:] = 0
        ids = ids * mask
        size = self.inputs[2].shape[2]
        pixels = torch.randn(b, 3, size, size, generator=g)
        return ids, mask, pixels


def spec_for(model: ExportableModel) -> ExportSpec:
    size = model.image_encoder.image_size
    classes = model.cfg.num_classes
    ids, mask, pixels = INPUT_NAMES
    probs, logits = OUTPUT_NAMES
    return ExportSpec(
        inputs=(TensorSpec(ids, "int64", ("batch", "sequence")),
                TensorSpec(mask, "int64", ("batch", "sequence")),
                TensorSpec(pixels, "float32", ("batch", 3, size, size))),
        outputs=(TensorSpec(probs, "float32", ("batch", classes)),
                 TensorSpec(logits, "float32", ("batch", classes))),
        vocab_size=int(model.text_encoder.bert.config.vocab_size),
    )
