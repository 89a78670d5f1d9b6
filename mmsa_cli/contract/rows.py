"""What each row gets (the bad-row policy) and the output columns, for `mmsa score`,
`mmsa predict` and `mmsa evaluate` alike.

Policy (README, "Bad rows"):
  image unusable, model uses text, text present -> predicted from the text with the blank
      (mean) image; error "<kind>: ... (predicted from text only)", predicted_from "text"
  image unusable, image-only model              -> no prediction; error "<kind>: ... (no prediction: ...)"
  image unusable and text empty                 -> no prediction; error "<kind>: ...; text is empty ..."
  text null/empty, model uses the image         -> predicted from the image with the empty text
      ([CLS] [SEP], like a tweet that is only a picture); error null, predicted_from "image"
  text null/empty, text-only model              -> no prediction; error "empty_text: ..."
  columns a model does not use are never read (a text-only model never opens images).
Every row comes back: "no prediction" is null label and probabilities, never a dropped row.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from .. import LABELS
from .decision import decide_labels

PROB_COLUMNS = tuple(f"prob_{name}" for name in LABELS)
# error_kind: the part of `error` before ":" (IMAGE_ERROR_KINDS or "empty_text"), for SQL users;
# predicted_from: "text+image", "text" or "image" (what the prediction used), null without one.
RESULT_COLUMNS = ("label", *PROB_COLUMNS, "error", "error_kind", "predicted_from")
ROW_COLUMN = "row"          # the id column when the input has none: 0-based position over all inputs
EMPTY_TEXT = "empty_text"   # error kind of a text-only model's empty text (the others: IMAGE_ERROR_KINDS)


@dataclass
class RowOutcomes:
    """The policy's verdict for a batch of rows."""
    keep: np.ndarray                    # [N] bool: the prediction is kept
    errors: list[str | None]            # "<kind>: <message>" or None
    predicted_from: list[str | None]    # "text+image" | "text" | "image" | None (no prediction)


def decide(text_empty: np.ndarray, image_errors: Sequence[str | None], *, uses_text: bool,
           uses_image: bool) -> RowOutcomes:
    """Per row: whether its prediction is kept, its error message and what it was predicted from."""
    n = len(text_empty)
    keep = np.ones(n, bool)
    errors: list[str | None] = [None] * n
    sources: list[str | None] = [None] * n
    for i, (empty, img_err) in enumerate(zip(text_empty, image_errors)):
        has_text = uses_text and not empty
        has_image = uses_image and not img_err
        if uses_image and img_err:
            if not uses_text:
                errors[i] = f"{img_err} (no prediction: the model is image-only)"
            elif empty:
                errors[i] = f"{img_err}; text is empty too (no prediction)"
            else:
                errors[i] = f"{img_err} (predicted from text only)"
        elif uses_text and empty and not uses_image:
            errors[i] = f"{EMPTY_TEXT}: text is null or empty (no prediction: the model is text-only)"
        keep[i] = has_text or has_image
        sources[i] = "+".join(m for m, used in (("text", has_text), ("image", has_image)) if used) or None
    return RowOutcomes(keep, errors, sources)


def error_kind(error: str) -> str:
    return error.split(":", 1)[0]


def count_kinds(errors: Sequence[str | None]) -> Counter:
    return Counter(error_kind(e) for e in errors if e)


def output_schema(id_field: pa.Field, keep_fields: Sequence[pa.Field]) -> pa.Schema:
    fields = [id_field, pa.field("label", pa.string())]
    fields += [pa.field(c, pa.float32()) for c in PROB_COLUMNS]
    fields += [pa.field(c, pa.string()) for c in ("error", "error_kind", "predicted_from")]
    return pa.schema([*fields, *keep_fields])


def result_table(ids: pa.Array, id_name: str, probs: np.ndarray, errors: Sequence[str | None],
                 predicted_from: Sequence[str | None], keep: dict[str, pa.Array] | None = None,
                 schema: pa.Schema | None = None, decision_offsets: Sequence[float] = ()) -> pa.Table:
    """probs [N,3] float32 with NaN rows for 'no prediction' -> the output columns (RESULT_COLUMNS
    after the id), then the kept input columns. The label is the model's decision rule
    (contract/decision.py: the arg-max unless decision_offsets); the probabilities are as given."""
    missing = np.isnan(probs).any(axis=1)
    chosen = decide_labels(probs, decision_offsets) if len(probs) else np.zeros(0, np.int64)
    label_idx = np.where(missing, 0, chosen)
    labels = pa.DictionaryArray.from_arrays(pa.array(label_idx, pa.int32(), mask=missing),
                                            pa.array(LABELS, pa.string())).cast(pa.string())
    columns = {id_name: ids, "label": labels}
    for j, name in enumerate(PROB_COLUMNS):
        columns[name] = pa.array(probs[:, j].astype(np.float32), pa.float32(), mask=missing)
    columns["error"] = pa.array(list(errors), pa.string())
    columns["error_kind"] = pa.array([error_kind(e) if e else None for e in errors], pa.string())
    columns["predicted_from"] = pa.array([None if m else s for s, m in zip(predicted_from, missing)], pa.string())
    columns.update(keep or {})
    table = pa.table(columns)
    return table.cast(schema) if schema is not None else table
