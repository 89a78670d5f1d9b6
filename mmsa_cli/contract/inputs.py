"""What a model expects of its inputs, whichever backend runs it (the exported ONNX graph or
the PyTorch model of a run folder): the one geometry object. Models and runs produce it
(MultimodalModel.inputs, Run.inputs), a model folder's manifest records it (from_manifest),
and training, export parity, the scorer and the Ray engine prepare rows by it: resolved
once, then handed everywhere (timm's resolve_data_config)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInputs:
    image_size: int                                  # S: pixel_values are [B,3,S,S] (geometry.py)
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    max_length: int                                  # tokens per text, [CLS] and [SEP] included
    text_normalization: str = "none"                 # rewrite before tokenizing (tweet_text.py)
    uses_text: bool = True                           # False: the text column is never read
    uses_image: bool = True                          # False: images are never opened

    @classmethod
    def from_manifest(cls, m) -> "ModelInputs":
        return cls(m.image_size, tuple(m.image_mean), tuple(m.image_std), m.max_length, m.text_normalization,
                   m.uses_text, m.uses_image)
