"""Batch scoring with an exported model folder: `mmsa score` and its Python API.

    from mmsa_cli.scoring import Scorer, Columns, score_files, ScoreOptions
    scorer = Scorer("models/ote", device="auto")          # loads the model once
    table = scorer.score_batch(df_or_arrow_table)         # in memory -> pyarrow.Table
    summary = score_files("tweets.parquet", "models/ote", "scored.parquet")

Names are imported lazily: worker processes import mmsa_cli.scoring.preprocess without
paying for torch and onnxruntime.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Scorer": "scorer", "score_table": "scorer", "ChunkPlan": "scorer",
    "score_files": "pipeline", "ScoreOptions": "pipeline",
    "Columns": "inputs", "ScoreSummary": "report",
    "ScoreError": "errors", "InputError": "errors", "OutputExistsError": "errors",
    "ResumeMismatchError": "errors", "PipelineError": "errors", "ModelLoadError": "errors",
    "exit_code_for": "errors",
    "PROB_COLUMNS": "results", "RESULT_COLUMNS": "results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
