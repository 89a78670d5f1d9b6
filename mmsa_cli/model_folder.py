"""The exported model folder: the contract between `mmsa export` and `mmsa score`
(and anyone running the model with plain ONNX Runtime).

    models/NAME/
      model.onnx       inputs : input_ids [B,L] int64, attention_mask [B,L] int64,
                                pixel_values [B,3,S,S] float32 (normalised, see manifest)
                       outputs: probs [B,C] float32 (softmax, LABELS order), logits [B,C] float32
      tokenizer/       Hugging Face tokenizer files
      manifest.json    see Manifest below; also mirrored in model.onnx metadata_props
      fused_operators.json   operator counts before/after optimisation
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import LABELS
from .errors import FolderError

FORMAT = "mmsa-onnx-model"
FORMAT_VERSION = 1
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values")
OUTPUT_NAMES = ("probs", "logits")


class ModelFolderError(FolderError):
    """The folder is not a complete, unmodified mmsa model folder."""


@dataclass
class Manifest:
    labels: list[str]
    max_length: int              # tokens; longer texts are truncated
    image_size: int              # S: shorter side resized to S, centre crop S x S
    image_mean: list[float]
    image_std: list[float]
    text_encoder: str
    image_encoder: str
    fusion: str
    precision: str               # "fp32" or "fp16" (inputs/outputs stay float32 either way)
    target: str                  # "cuda" or "cpu": what the graph was optimised for
    opset: int
    model_sha256: str
    uses_text: bool = True
    uses_image: bool = True
    # Applied to every text before tokenizing (mmsa_cli.data.tweet_text.normalize_text); the
    # default keeps folders exported before the field existed loading as they were trained.
    text_normalization: str = "none"
    ensemble_members: list[str] = field(default_factory=list)  # fusion "ensemble": the averaged fusions
    versions: dict = field(default_factory=dict)     # mmsa, torch, transformers, onnx, onnxruntime
    source_run: dict = field(default_factory=dict)   # path, validation metrics
    parity: dict = field(default_factory=dict)       # max |delta prob| etc. measured at export
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelFolder:
    path: Path
    manifest: Manifest

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer"

    def load_tokenizer(self):
        """The folder's tokenizer with the `tokenizers` library alone (no transformers, no torch:
        the scoring install has neither): a `tokenizers.Tokenizer` from tokenizer/tokenizer.json,
        truncation off and padding set to the folder's pad token without a fixed length, which
        is what a Hugging Face fast tokenizer's plain call does. mmsa_cli.scoring.texts.
        BatchTokenizer truncates and pads it to max_length; the ids are the Hugging Face
        tokenizer's (tests/test_score.py checks)."""
        from tokenizers import Tokenizer

        path = self.tokenizer_path / "tokenizer.json"
        if not path.is_file():
            raise ModelFolderError(f"'{self.tokenizer_path}' has no tokenizer.json (a fast tokenizer, which "
                                   f"`mmsa export` writes): export the model folder again")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelFolderError(f"cannot read '{path}': {exc}") from None
        pad_token = self._pad_token(tokenizer)
        pad_id = tokenizer.token_to_id(pad_token) if pad_token is not None else None
        if pad_id is None:
            raise ModelFolderError(f"the tokenizer in '{self.tokenizer_path}' has no padding token"
                                   + (f" ({pad_token!r} is not in its vocabulary)" if pad_token else ""))
        tokenizer.no_truncation()
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        return tokenizer

    def _pad_token(self, tokenizer) -> str | None:
        """The pad token as transformers reads it: special_tokens_map.json, then
        tokenizer_config.json, then tokenizer.json's own padding settings."""
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            try:
                token = json.loads((self.tokenizer_path / name).read_text()).get("pad_token")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(token, dict):  # an AddedToken: {"content": "[PAD]", ...}
                token = token.get("content")
            if isinstance(token, str) and token:
                return token
        return (tokenizer.padding or {}).get("pad_token")

    def load_hf_tokenizer(self):
        """The folder's tokenizer through transformers (installed with mmsa-tweets[train]):
        the reference the scoring tokenizer is checked against."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.tokenizer_path)


def load_model_folder(path: str | Path, *, verify_checksum: bool = True) -> ModelFolder:
    """Open and check a model folder; any mismatch is a ModelFolderError naming the problem."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"model folder '{path}' does not exist")
    for name in ("manifest.json", "model.onnx", "tokenizer"):
        if not (path / name).exists():
            raise ModelFolderError(f"'{path}' is not an mmsa model folder: {name} is missing (make one with `mmsa export`)")
    try:
        raw = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot read '{path / 'manifest.json'}': {exc}") from exc
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"'{path}' has format {raw.get('format')!r} v{raw.get('format_version')!r}; "
                               f"this mmsa reads {FORMAT!r} v{FORMAT_VERSION}")
    try:
        manifest = Manifest(**raw)
    except TypeError as exc:
        raise ModelFolderError(f"manifest of '{path}' does not match this mmsa version: {exc}") from exc
    if manifest.labels != list(LABELS):
        raise ModelFolderError(f"'{path}' predicts labels {manifest.labels}, expected {list(LABELS)}")
    if verify_checksum:
        actual = sha256_file(path / "model.onnx")
        if actual != manifest.model_sha256:
            raise ModelFolderError(f"'{path / 'model.onnx'}' does not match its manifest (sha256 {actual[:12]}… "
                                   f"!= {manifest.model_sha256[:12]}…): the file was modified or is incomplete")
    return ModelFolder(path, manifest)
