"""Batch scoring with an exported model folder: `mmsa score` and its Python API.

    from mmsa_cli.scoring import Scorer, Columns, score_files, ScoreOptions
    scorer = Scorer("models/ote", device="auto")                  # loads the model once
    table = scorer.score_batch(df_or_arrow_table, image_root="/data/images")  # -> pyarrow.Table
    summary = score_files("tweets.parquet", "models/ote", "scored.parquet")

    Scorer        raw rows -> output table, around a backend (OnnxModel, or TorchModel for a
                  run folder's PyTorch model); its stage methods are what score_files streams
    OnnxModel     the exported graph in ONNX Runtime: model inputs -> probabilities
    score_files   Parquet files -> one Parquet file, pipelined, resumable (ScoreOptions)
    score_table   load a model and score one table
    Columns       input column names; PROB_COLUMNS / RESULT_COLUMNS: the output's
    score_dataset a ray.data.Dataset in, the Dataset with the result columns out (ScoreActor:
                  its callable class); `mmsa score --engine ray` is engines/ray_files.py

Its rooms: options.py (Columns, ScoreOptions, RayOptions: every flag of `mmsa score`),
scorer.py with its backends (onnx_model.py, torch_model.py), engines/ (local, ray_dataset,
ray_files), images/ (prepare, workers, remote, gpu, dali), inputs/ (columns, files, chunks),
report.py (the summary), evaluate.py (`mmsa evaluate` and `predict`), cli.py. What it writes
goes through mmsa_cli/io/, shared with the other commands.

Names are imported lazily: worker processes import mmsa_cli.scoring.images.prepare without
paying for onnxruntime or pyarrow.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Scorer": ".scorer", "score_table": ".scorer", "ChunkPlan": ".scorer",
    "OnnxModel": ".onnx_model", "TorchModel": ".torch_model",
    "score_files": ".engines.local", "ScoreOptions": ".options", "RayOptions": ".options",
    "Columns": ".options", "ScoreSummary": ".report",
    "ScoreError": ".errors", "InputError": ".errors", "OutputExistsError": ".errors",
    "ResumeMismatchError": ".errors", "PipelineError": ".errors", "ModelLoadError": ".errors",
    "exit_code_for": ".errors",
    "PROB_COLUMNS": "..contract.rows", "RESULT_COLUMNS": "..contract.rows",
    "score_dataset": ".engines.ray_dataset", "ScoreActor": ".engines.ray_dataset",   # Ray Data (the [ray] extra)
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
