"""Encoders, fusion stages and the model registry."""
from .bag import ModelBag
from .fusion import FUSIONS, PAPER_NAMES, Features, fusion_class, report_name
from .image_encoders import IMAGE_PRESETS, ImageEncoder, create_image_encoder
from .model import MultimodalModel, create_model
from .text_encoders import TEXT_PRESETS, TextEncoder, create_text_encoder

ExportableModel = MultimodalModel | ModelBag  # what `mmsa export` takes

__all__ = ["FUSIONS", "PAPER_NAMES", "Features", "fusion_class", "report_name", "IMAGE_PRESETS", "ImageEncoder",
           "create_image_encoder", "ExportableModel", "ModelBag", "MultimodalModel", "create_model", "TEXT_PRESETS",
           "TextEncoder", "create_text_encoder"]
