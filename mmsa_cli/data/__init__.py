"""Data layer: tweet text decoding, robust image loading/preprocessing, datasets and splits."""
from .dataset import (
    Example,
    load_examples,
    read_mvsa,
    read_split,
    read_table,
    stratified_kfold,
    stratified_split,
    write_split,
)
from .images import (
    IMAGE_ERROR_KINDS,
    MAX_IMAGE_PIXELS,
    ImageLoadError,
    load_image,
    preprocess_image,
    resolve_image_path,
    train_augment,
)
from ..contract.text import FALLBACK_ERRORS, clean_text, decode_text, guess_legacy_encoding, read_text_file

__all__ = [
    "Example", "load_examples", "read_mvsa", "read_split", "read_table", "stratified_kfold",
    "stratified_split", "write_split",
    "IMAGE_ERROR_KINDS", "MAX_IMAGE_PIXELS", "ImageLoadError", "load_image", "preprocess_image",
    "resolve_image_path", "train_augment",
    "FALLBACK_ERRORS", "clean_text", "decode_text", "guess_legacy_encoding", "read_text_file",
]
