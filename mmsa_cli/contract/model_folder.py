"""The exported model folder: the contract between `mmsa export` and `mmsa score`
(and anyone running the model with plain ONNX Runtime).

    models/NAME/
      model.onnx       inputs : input_ids [B,L] int64, attention_mask [B,L] int64,
                                pixel_values [B,3,S,S] float32 (normalised, see manifest)
                       outputs: probs [B,C] float32 (softmax, LABELS order), logits [B,C] float32
      model.onnx.data  only for a graph over protobuf's 2 GB limit (a bag of large encoders):
                       its weights as ONNX external data, which ONNX Runtime finds beside
                       model.onnx by this name
      tokenizer/       Hugging Face tokenizer files
      manifest.json    see Manifest below; also mirrored in model.onnx metadata_props; its
                       decision_offsets choose the label from probs (contract/decision.py)
      fused_operators.json   operator counts before/after optimisation
      checksums.sha256 sha256 of every file that decides a prediction (`sha256sum -c` format):
                       model.onnx (and model.onnx.data), manifest.json, every file under
                       tokenizer/ (and fused_operators.json). Loading refuses a folder where
                       one differs, is missing, or where tokenizer/ holds a file it does not
                       list. Its own sha256 is the folder's digest (ModelFolder.digest),
                       recorded by `mmsa score` in the job fingerprint and the output's
                       metadata.

The checksums catch corruption and edits (a changed mean/std, a swapped token, a truncated
copy); they do not stop a forger who rewrites checksums.sha256 too (signing: a later issue).
Folders exported before checksums.sha256 existed are refused with a message to re-export.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import LABELS
from ..errors import FolderError

FORMAT = "mmsa-onnx-model"
FORMAT_VERSION = 1
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values")
OUTPUT_NAMES = ("probs", "logits")


CHECKSUMS = "checksums.sha256"
# What the checksums cover, besides every file under tokenizer/ (what decides a prediction;
# fused_operators.json is informative, covered so the folder travels as one unit).
ONNX_DATA = "model.onnx.data"
CHECKED_FILES = ("model.onnx", ONNX_DATA, "manifest.json", "fused_operators.json")


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
    # Applied to every text before tokenizing (contract/tweet_text.py: normalize_text); the
    # default keeps folders exported before the field existed loading as they were trained.
    text_normalization: str = "none"
    ensemble_members: list[str] = field(default_factory=list)  # fusion "ensemble": the averaged fusions
    # The decision rule (mmsa_cli/contract/decision.py): label = argmax(log probs + offsets); [] = the
    # arg-max. Applied to the label only: the graph's probs stay the model's. decision_metric: what
    # the offsets were fitted to maximise on the training run's out-of-fold predictions.
    decision_offsets: list[float] = field(default_factory=list)
    decision_metric: str = ""
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


def checked_files(folder: Path) -> list[str]:
    """The folder's files the checksums cover, as relative POSIX paths, sorted."""
    names = [n for n in CHECKED_FILES if (folder / n).is_file()]
    tokenizer = folder / "tokenizer"
    if tokenizer.is_dir():
        names += [p.relative_to(folder).as_posix() for p in tokenizer.rglob("*") if not p.is_dir()]
    return sorted(names)


def write_checksums(folder: str | Path, known: dict[str, str] | None = None) -> str:
    """Write checksums.sha256 for the folder as it is now; returns the folder digest. `known`:
    sha256 of files just written and hashed (model.onnx is hundreds of MB), not read again."""
    folder = Path(folder)
    known = known or {}
    lines = "".join(f"{known.get(name) or sha256_file(folder / name)}  {name}\n" for name in checked_files(folder))
    (folder / CHECKSUMS).write_text(lines)
    return hashlib.sha256(lines.encode()).hexdigest()


def verify_checksums(folder: Path) -> tuple[str, dict[str, str]]:
    """Every listed file matches, nothing that decides a prediction is unlisted; returns the
    folder digest (sha256 of checksums.sha256) and the sha256 per file, else a
    ModelFolderError naming the file."""
    try:
        raw = (folder / CHECKSUMS).read_bytes()
    except FileNotFoundError:
        raise ModelFolderError(f"'{folder}' has no {CHECKSUMS}: it was exported by an older mmsa that checked "
                               f"model.onnx only; re-export it with `mmsa export`") from None
    except OSError as exc:
        raise ModelFolderError(f"cannot read '{folder / CHECKSUMS}': {exc.strerror or exc}") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or ".." in Path(name).parts or Path(name).is_absolute():
            raise ModelFolderError(f"'{folder / CHECKSUMS}' line {number} is not '<sha256>  <file>': {line[:80]!r}")
        listed[name] = digest
    for name in checked_files(folder):
        if name not in listed:
            raise ModelFolderError(f"'{folder / name}' is not listed in {CHECKSUMS}: a file was added to the "
                                   f"model folder; re-export it")
    for name in ("model.onnx", "manifest.json"):
        if name not in listed:
            raise ModelFolderError(f"'{folder / CHECKSUMS}' does not list {name}: the folder was not written "
                                   f"by `mmsa export`")
    for name, expected in listed.items():
        path = folder / name
        if not path.is_file():
            raise ModelFolderError(f"'{path}' is listed in {CHECKSUMS} but missing: the folder is incomplete")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFolderError(f"'{path}' does not match its checksum (sha256 {actual[:12]}… != "
                                   f"{expected[:12]}… in {CHECKSUMS}): the file was modified or is incomplete")
    return hashlib.sha256(raw).hexdigest(), listed


@dataclass
class ModelFolder:
    path: Path
    manifest: Manifest
    digest: str = ""     # sha256 of checksums.sha256: identifies every file that decides a prediction

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
        is what a Hugging Face fast tokenizer's plain call does. contract/tokenizer.py's
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
    """Open and check a model folder; any mismatch is a ModelFolderError naming the problem.
    The checksums are verified first, so an edited file is reported as such."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"model folder '{path}' does not exist")
    for name in ("manifest.json", "model.onnx", "tokenizer"):
        if not (path / name).exists():
            raise ModelFolderError(f"'{path}' is not an mmsa model folder: {name} is missing (make one with `mmsa export`)")
    digest, listed = verify_checksums(path) if verify_checksum else (_digest_unchecked(path), {})
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
        actual = listed["model.onnx"]  # verified above
        if actual != manifest.model_sha256:  # checksums.sha256 rewritten, the manifest not
            raise ModelFolderError(f"'{path / 'model.onnx'}' does not match its manifest (sha256 {actual[:12]}… "
                                   f"!= {manifest.model_sha256[:12]}…): the file was modified or is incomplete")
    return ModelFolder(path, manifest, digest)


def _digest_unchecked(path: Path) -> str:
    try:
        return hashlib.sha256((path / CHECKSUMS).read_bytes()).hexdigest()
    except OSError:
        return ""
