"""Which input columns scoring reads: the names asked for, checked against a schema (present,
of a usable type, not colliding with an output column)."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ...contract.rows import RESULT_COLUMNS, ROW_COLUMN
from ..errors import InputError
from ..options import Columns


@dataclass(frozen=True)
class ResolvedColumns:
    text: str | None        # None when the model does not use text
    image: str | None       # None when the model does not use images
    id: str | None          # None: row positions
    keep: tuple[str, ...]

    @property
    def id_name(self) -> str:
        return self.id or ROW_COLUMN

    @property
    def read(self) -> list[str]:
        names = [c for c in (self.id, self.text, self.image, *self.keep) if c]
        return list(dict.fromkeys(names))


def _text_like(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_null(t))


def resolve_columns(schema: pa.Schema, columns: Columns, *, uses_text: bool, uses_image: bool,
                    where: str) -> ResolvedColumns:
    names = schema.names
    available = ", ".join(names)

    def require(col: str, what: str) -> None:
        if col not in names:
            raise InputError(f"{what} column {col!r} not found in {where}; available columns: {available}")

    if uses_text:
        require(columns.text, "text")
        if not _text_like(schema.field(columns.text).type):
            raise InputError(f"text column {columns.text!r} in {where} has type {schema.field(columns.text).type}; "
                             f"expected strings (or bytes)")
    if uses_image:
        require(columns.image, "image")
        if not _text_like(schema.field(columns.image).type):
            raise InputError(f"image column {columns.image!r} in {where} has type {schema.field(columns.image).type}; "
                             f"expected image paths (strings) or encoded image bytes")
    if columns.id is not None:
        require(columns.id, "id")
        if columns.id in RESULT_COLUMNS:
            raise InputError(f"--id-col {columns.id!r} is the name of an output column ({', '.join(RESULT_COLUMNS)}): "
                             f"rename that input column")
    id_col = columns.id if columns.id is not None else ("guid" if "guid" in names else None)
    for col in columns.keep:
        require(col, "--keep-columns")
    taken = {id_col or ROW_COLUMN, *RESULT_COLUMNS}
    clash = [c for c in columns.keep if c in taken]
    if clash:
        raise InputError(f"--keep-columns {', '.join(clash)} would collide with output columns "
                         f"({', '.join(sorted(taken))})")
    return ResolvedColumns(columns.text if uses_text else None, columns.image if uses_image else None,
                           id_col, tuple(dict.fromkeys(columns.keep)))
