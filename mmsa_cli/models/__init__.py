"""Encoders, fusion stages and the model registry."""
from .fusion import FUSIONS, PAPER_NAMES, Features, fusion_class, report_name
from .image_encoders import IMAGE_PRESETS, ImageEncoder, create_image_encoder
from .model import MultimodalModel, create_model
from .text_encoders import TEXT_PRESETS, TextEncoder, create_text_encoder

__all__ = ["FUSIONS", "PAPER_NAMES", "Features", "fusion_class", "report_name", "IMAGE_PRESETS", "ImageEncoder",
           "create_image_encoder", "MultimodalModel", "create_model", "TEXT_PRESETS", "TextEncoder",
           "create_text_encoder"]
