"""Text columns -> cleaned strings -> token ids (the fast tokenizer's batch call)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from ..data.text import clean_text, decode_text


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


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Fast-tokenizer batch call, truncated and padded to max_length: int64 ids, mask [N, max_length]."""
    if not texts:
        empty = np.zeros((0, max_length), np.int64)
        return empty, empty.copy()
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length",
                    return_attention_mask=True, return_token_type_ids=False, return_tensors="np")
    return enc["input_ids"].astype(np.int64, copy=False), enc["attention_mask"].astype(np.int64, copy=False)
