"""The options of `mmsa export`, each declared once (mmsa_cli/flags.py: option): the command's
flags are generated from ExportOptions, and export_run() takes the same names. Torch-free, so
`mmsa export --help` stays light."""
from __future__ import annotations

from dataclasses import dataclass

from ..flags import DEVICE, FUSION, NO_DECISION_RULE, OVERWRITE, option

PRECISIONS = ("fp32", "fp16")
TARGETS = ("cuda", "cpu")


@dataclass
class ExportOptions:
    fusion: str | None = FUSION()
    fold: str | None = option(None, "Which model of a `--folds` run: fold K, or all: one graph averaging every "
                                    "fold's probabilities (bagging; each fold's text encoder runs, the frozen image "
                                    "encoder once).", metavar="K|all")
    precision: str = option("fp32", "fp16 keeps float32 inputs/outputs and fp32 islands for fragile ops.",
                            choices=PRECISIONS)
    target: str = option("cpu", "Execution provider the model is meant for (recorded; provider-level fusions counted "
                                "for it).", choices=TARGETS)
    parity_data: str | None = option(None, "Rows to check parity on [default: the run's validation rows; required "
                                           "when its data is not reachable from here].", path="any")
    max_parity_rows: int = option(512, "Cap on parity rows.", min=1, flag="--parity-rows")
    decision_rule: bool = NO_DECISION_RULE(detail="the CV run's decision rule (decision_rule.json from `mmsa train "
                                                  "--decision-rule offsets`), which export then leaves out")
    overwrite: bool = OVERWRITE(detail="only by an export that passed its checks")
    device: str = DEVICE()
