"""The tokenizer every stage shares: text columns -> cleaned strings -> normalized strings ->
token ids (the fast tokenizer's batch call). Training, export parity and scoring all call it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from .text import clean_text, decode_text
from .tweet_text import normalize_texts, normalizer


def decode_texts(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """Arrow text column -> cleaned strings ("" for null). Read as bytes so invalid UTF-8
    in a string column cannot raise; such bytes get the cp1252 fallback of decode_text."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    t = column.type
    if pa.types.is_null(t):
        return [""] * len(column)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        column = column.view(pa.binary() if pa.types.is_string(t) else pa.large_binary())
    elif not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return ["" if v is None else clean_text(str(v)) for v in column.to_pylist()]
    return ["" if v is None else decode_text(v) for v in column.to_pylist()]


def fast_tokenizer(tokenizer):
    """A `tokenizers.Tokenizer` copy (the caller's stays untouched) that knows its pad token,
    from either kind the code base holds: a `tokenizers.Tokenizer` with padding enabled
    (ModelFolder.load_tokenizer: scoring, no transformers) or a Hugging Face fast tokenizer
    (training, evaluate, export: its Rust backend and pad token). None for anything else
    (a slow tokenizer, or one without a pad token)."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        padding = tokenizer.padding
        if not padding or padding.get("pad_token") is None:
            return None
        copy = Tokenizer.from_str(tokenizer.to_str())
        copy.enable_padding(pad_id=padding["pad_id"], pad_token=padding["pad_token"])
        return copy
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "pad_token_id", None) is None:
        return None
    copy = Tokenizer.from_str(backend.to_str())
    copy.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    return copy


class BatchTokenizer:
    """texts -> int64 ids, mask [N, max_length], truncated and padded like
    `tokenizer(texts, truncation=True, max_length=L, padding="max_length")`, but through the
    Rust backend directly (its batch call runs without the GIL, and no per-row Python dicts:
    the other pipeline threads keep running). `tokenizer` is a `tokenizers.Tokenizer` with
    its pad token set (what ModelFolder.load_tokenizer gives scoring, without transformers)
    or a Hugging Face tokenizer (training); slow tokenizers take their ordinary call.
    Texts are first rewritten by `normalization` (the manifest's text_normalization, so as
    the model was trained; an unknown name is a ConfigError here, before any row is read)."""

    # Texts per Rust batch call. Its Encoding objects are large (about 4 KB a text) and freed
    # at once: 2,048 left 17 MB of freed heap per 4,096-row group until the row group's
    # malloc_trim; 256 is as fast (about 9,000 texts/s on the 2-core dev CPU) and reuses less.
    BLOCK = 256

    def __init__(self, tokenizer, max_length: int, normalization: str = "none", dtype=np.int64):
        self.tokenizer, self.max_length, self.dtype = tokenizer, max_length, dtype
        normalizer(normalization)  # check the name now
        self.normalization = normalization
        self.backend = fast_tokenizer(tokenizer)
        if self.backend is not None:
            pad = self.backend.padding
            self.backend.enable_truncation(max_length)
            self.backend.enable_padding(length=max_length, pad_id=pad["pad_id"], pad_token=pad["pad_token"])
        elif not callable(tokenizer):
            raise TypeError(f"BatchTokenizer needs a tokenizers.Tokenizer with a pad token or a Hugging Face "
                            f"tokenizer, not {type(tokenizer).__name__}")

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            empty = np.zeros((0, self.max_length), self.dtype)
            return empty, empty.copy()
        texts = normalize_texts(texts, self.normalization)
        if self.backend is not None:
            ids = np.empty((len(texts), self.max_length), self.dtype)
            mask = np.empty_like(ids)
            for start in range(0, len(texts), self.BLOCK):
                encodings = self.backend.encode_batch(list(texts[start:start + self.BLOCK]), add_special_tokens=True)
                ids[start:start + len(encodings)] = [e.ids for e in encodings]
                mask[start:start + len(encodings)] = [e.attention_mask for e in encodings]
            return ids, mask
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding="max_length",
                             return_attention_mask=True, return_token_type_ids=False, return_tensors="np")
        return enc["input_ids"].astype(self.dtype, copy=False), enc["attention_mask"].astype(self.dtype, copy=False)


def tokenize(tokenizer, texts: Sequence[str], max_length: int,
             normalization: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """One-off BatchTokenizer call."""
    return BatchTokenizer(tokenizer, max_length, normalization)(texts)
