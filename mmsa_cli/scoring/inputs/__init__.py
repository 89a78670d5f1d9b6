"""The input side of scoring: which files, which columns, and reading them in chunks.
(The output side is mmsa_cli/io/, shared with the other commands.)"""
from .files import (BAD_INPUT_CHOICES, Chunk, Columns, InputFile, InputSet, ResolvedColumns,  # noqa: F401
                    check_output_not_an_input, default_id_column, find_inputs, iter_chunks, list_inputs,
                    open_inputs, resolve_columns)
