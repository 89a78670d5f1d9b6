"""The input side of scoring (the output side is mmsa_cli/io/, shared with the other commands).

    columns  the input columns a model needs, checked against the files' schemas
    files    which Parquet files (local or on an object store), their footers and fingerprint
    chunks   reading them in fixed-size chunks, the same cut on every --resume
"""
from ..options import BAD_INPUT_CHOICES, Columns  # noqa: F401  (re-exported: the names scoring.inputs had)
from .chunks import READ_BUFFER_BYTES, Chunk, iter_chunks  # noqa: F401
from .columns import ResolvedColumns, resolve_columns  # noqa: F401
from .files import (PARQUET_SUFFIXES, InputFile, InputSet, check_image_root, check_output_not_an_input,  # noqa: F401
                    default_id_column, find_inputs, list_inputs, open_inputs)
