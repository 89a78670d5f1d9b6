"""Training: `mmsa train` and its library API, one file per role, read top to bottom.

    train.py             train(): options checked, data split, folds x fusions, run folders
    prepared.py          data prepared once (tokens, checked images, frozen features), batches
    batches.py           tensors: image datasets, padding, frozen-feature caches
    modality_dropout.py  training rows made to look like rows with a missing image or text
    loop.py              fit(): epochs, validation, early stopping, one run folder
    objectives.py        losses, R-Drop, EMA, optimizer groups (layer-wise learning rates)
    metrics.py           the PNG plots (the metrics themselves: contract/metrics.py)
    reports.py           comparison.md and cv.md over several models
    decision_rule.py     --decision-rule offsets: fitted on out-of-fold predictions, nested CV
                         (the rule itself and its file: contract/decision.py)
    config_file.py       --config FILE (TOML/YAML, or a run's config.json) and the precedence
    cli.py               the `mmsa train` command, generated from the config dataclasses

This module imports nothing heavy (the CLI imports it); `train` and `TrainSource` load torch
when first used.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("train", "TrainSource"):
        from . import train as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["train", "TrainSource"]
