"""The names of the model registry: fusions, their paper names, text and image encoder presets.

Torch-free on purpose: the command line's `Choice` lists come from here, so `mmsa --help`
and `mmsa score` never import torch. This module owns the names; the torch modules
(models/fusion.py, text_encoders.py, image_encoders.py) implement them through `bind()`,
which fails at import when an implementation is missing or unnamed here.
"""
from __future__ import annotations

from typing import Mapping, TypeVar

# The paper's seven models (Table 4) and the ensemble of several of them, in report order.
FUSION_NAMES: tuple[str, ...] = ("text-only", "image-only", "naive-cat", "naive-combine", "ote", "hstec", "cmac",
                                 "ensemble")
# The paper's Table 4 names, for reports; `--fusion all` trains exactly these (so not the
# ensemble, whose report name is its registry name: see models.fusion.report_name).
PAPER_NAMES: dict[str, str] = {"text-only": "BERT", "image-only": "ResNet", "naive-cat": "NaiveCat",
                               "naive-combine": "NaiveCombine", "ote": "OTE", "hstec": "HSTEC", "cmac": "CMAC"}
# `--text-encoder` presets (a local Hugging Face model folder is accepted too); tiny-* are for tests.
TEXT_PRESET_NAMES: tuple[str, ...] = ("minilm-l6", "bert-base-uncased", "tiny-bert")
# `--image-encoder` presets.
IMAGE_PRESET_NAMES: tuple[str, ...] = ("efficientnet-lite2", "efficientnet-lite1", "efficientnet-lite0", "resnet50",
                                       "tiny-cnn")

T = TypeVar("T")


def bind(names: tuple[str, ...], implementations: Mapping[str, T], what: str) -> dict[str, T]:
    """{name: implementation} in the order of `names`; every name implemented, nothing else.
    A mismatch is a programming error, raised when the implementing module is imported."""
    missing = [n for n in names if n not in implementations]
    extra = [n for n in implementations if n not in names]
    if missing or extra:
        raise RuntimeError(f"{what} registry out of step with mmsa_cli/registry.py: "
                           f"not implemented {missing}, not named there {extra}")
    return {n: implementations[n] for n in names}


assert set(PAPER_NAMES) <= set(FUSION_NAMES), "every paper model is a fusion"
