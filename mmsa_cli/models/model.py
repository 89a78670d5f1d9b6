"""MultimodalModel = text encoder + image encoder + fusion stage, and create_model()."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig
from ..contract.inputs import ModelInputs
from .fusion import Features, check_fusion_config, fusion_class
from .image_encoders import ImageEncoder, create_image_encoder
from .text_encoders import TextEncoder, TextSlice, create_text_encoder


class MultimodalModel(nn.Module):
    def __init__(self, cfg: ModelConfig, text_encoder: TextEncoder, image_encoder: ImageEncoder):
        super().__init__()
        self.cfg = cfg
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.fusion = fusion_class(cfg.fusion)(text_encoder.hidden_size, image_encoder.hidden_size, cfg)

    @property
    def uses_text(self) -> bool:
        return self.fusion.uses_text

    @property
    def uses_image(self) -> bool:
        return self.fusion.uses_image

    @property
    def text_encoder_name(self) -> str:
        return self.cfg.text_encoder

    @property
    def inputs(self) -> ModelInputs:
        return inputs_of(self)

    @property
    def text_encoders(self) -> list[TextEncoder]:
        return [self.text_encoder]  # a ModelBag has one per member

    @property
    def text_encoder_slices(self) -> list[TextSlice]:
        return [TextSlice(self.text_encoder, owner=self.text_encoder, split_at=0)]  # a ModelBag's may share layers

    @property
    def remapped_text_encoders(self) -> list[TextEncoder]:
        return []  # a ModelBag's members may read looked-up token ids

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, bottom=None):
        """bottom = (depth, hidden states [B,L,Ht] after the bottom depth layers, cached while
        those stay fixed): run only the layers above."""
        if bottom is not None:
            depth, hidden = bottom
            return self.text_encoder.top(hidden, attention_mask, depth)
        return self.text_encoder(input_ids, attention_mask)        # [B,L,Ht], [B,Ht]

    def encode_image(self, pixel_values: torch.Tensor):
        return self.image_encoder(pixel_values)                    # [B,N,Hi], [B,Hi]

    def forward_features(self, input_ids, attention_mask, pixel_values=None, image_features=None,
                         text_features=None, text_bottom=None) -> Features:
        """Run the encoders a fusion needs. image_features / text_features = (tokens, pooled)
        skip that encoder (cached outputs of a frozen encoder); text_bottom skips the text
        encoder's fixed bottom (encode_text)."""
        text_tokens = text_pooled = image_tokens = image_pooled = None
        if self.uses_text:
            text_tokens, text_pooled = (text_features if text_features is not None
                                        else self.encode_text(input_ids, attention_mask, text_bottom))
        if self.uses_image:
            image_tokens, image_pooled = image_features if image_features is not None else self.encode_image(pixel_values)
        return Features(text_tokens, attention_mask, text_pooled, image_tokens, image_pooled)

    def forward_head(self, features: Features):
        return self.fusion(features)                               # logits [B,C], aux

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        logits, _ = self.forward_head(self.forward_features(input_ids, attention_mask, pixel_values))
        return logits                                              # [B, C]


def inputs_of(model) -> ModelInputs:
    """What a model (a MultimodalModel or a ModelBag) expects: its image encoder's geometry,
    its config's text settings, the modalities its fusion reads."""
    enc, cfg = model.image_encoder, model.cfg
    return ModelInputs(enc.image_size, tuple(enc.mean), tuple(enc.std), cfg.max_length, cfg.text_normalization,
                       model.uses_text, model.uses_image)


def create_model(cfg: ModelConfig, *, pretrained: bool = True, text_weights: str | Path | None = None,
                 image_weights: str | Path | None = None) -> MultimodalModel:
    """Build a model from its config. pretrained=False gives random encoder weights (tests,
    export and speed checks, or before loading a run's own weights)."""
    check_fusion_config(cfg)  # fail on a bad name (fusion or ensemble member) before loading any weights
    text = create_text_encoder(cfg.text_encoder, pretrained=pretrained, weights=text_weights, pooling=cfg.text_pooling)
    image = create_image_encoder(cfg.image_encoder, pretrained=pretrained, weights=image_weights,
                                 image_size=cfg.image_size)
    return MultimodalModel(cfg, text, image)
