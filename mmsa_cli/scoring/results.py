"""What each row gets (the bad-row policy) and the output table's schema.

Policy (also in README.md):
  image unusable, model uses text, text present -> predicted from the text with a blank
      (mean) image; error "<kind>: ... (predicted from text only)"
  image unusable, image-only model              -> no prediction; error "<kind>: ... (no prediction: ...)"
  image unusable and text empty                 -> no prediction; error "<kind>: ...; text is empty ..."
  text null/empty, model uses the image         -> predicted (empty text is [CLS][SEP], like an
      image-only tweet); error stays null
  text null/empty, text-only model              -> no prediction; error "empty_text: ..."
  columns a model does not use are never read (a text-only model never opens images).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pyarrow as pa

from .. import LABELS

PROB_COLUMNS = tuple(f"prob_{name}" for name in LABELS)
RESULT_COLUMNS = ("label", *PROB_COLUMNS, "error")
ROW_COLUMN = "row"          # the id column when the input has none: 0-based position over all inputs
EMPTY_TEXT = "empty_text"   # error kind of a text-only model's empty text (the others: IMAGE_ERROR_KINDS)


def decide(text_empty: np.ndarray, image_errors: Sequence[str | None], *, uses_text: bool,
           uses_image: bool) -> tuple[np.ndarray, list[str | None]]:
    """Per row: whether its prediction is kept, and its error message (None when fine)."""
    keep = np.ones(len(text_empty), bool)
    errors: list[str | None] = [None] * len(text_empty)
    for i, (empty, img_err) in enumerate(zip(text_empty, image_errors)):
        if uses_image and img_err:
            if not uses_text:
                keep[i], errors[i] = False, f"{img_err} (no prediction: the model is image-only)"
            elif empty:
                keep[i], errors[i] = False, f"{img_err}; text is empty too (no prediction)"
            else:
                errors[i] = f"{img_err} (predicted from text only)"
        elif uses_text and empty and not uses_image:
            keep[i], errors[i] = False, f"{EMPTY_TEXT}: text is null or empty (no prediction: the model is text-only)"
    return keep, errors


def error_kind(error: str) -> str:
    return error.split(":", 1)[0]


def count_kinds(errors: Sequence[str | None]) -> Counter:
    return Counter(error_kind(e) for e in errors if e)


def output_schema(id_field: pa.Field, keep_fields: Sequence[pa.Field]) -> pa.Schema:
    fields = [id_field, pa.field("label", pa.string())]
    fields += [pa.field(c, pa.float32()) for c in PROB_COLUMNS]
    fields += [pa.field("error", pa.string()), *keep_fields]
    return pa.schema(fields)


def result_table(ids: pa.Array, id_name: str, probs: np.ndarray, errors: Sequence[str | None],
                 keep: dict[str, pa.Array] | None = None, schema: pa.Schema | None = None) -> pa.Table:
    """probs [N,3] float32 with NaN rows for 'no prediction' -> id, label, prob_*, error, kept columns."""
    missing = np.isnan(probs).any(axis=1)
    label_idx = np.where(missing, 0, probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64))
    labels = pa.DictionaryArray.from_arrays(pa.array(label_idx, pa.int32(), mask=missing),
                                            pa.array(LABELS, pa.string())).cast(pa.string())
    columns = {id_name: ids, "label": labels}
    for j, name in enumerate(PROB_COLUMNS):
        columns[name] = pa.array(probs[:, j].astype(np.float32), pa.float32(), mask=missing)
    columns["error"] = pa.array(list(errors), pa.string())
    columns.update(keep or {})
    table = pa.table(columns)
    return table.cast(schema) if schema is not None else table
