"""`mmsa export`: a trained run -> one optimized, validated ONNX model folder.

    reference  PyTorch fp32 outputs on real rows (before export: see parity.py)
    export     torch.onnx.export, legacy TorchScript exporter, eager attention (graph.py)
    optimize   ORT's BERT fusions on the whole graph, counted and checked (fusions.py)
    fp16       optional, fp32 islands for fragile ops (precision.py)
    checks     provider-level fusion counts; parity with the reference
    write      model.onnx (+ manifest in its metadata), manifest.json, tokenizer/,
               fused_operators.json; the folder appears only when every check passed
               (a failed export is left in OUT.failed for inspection)
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import onnx
import torch

from .. import LABELS, __version__
from ..contract.decision import load_decision_rule
from ..contract.device import once, resolve_device
from ..errors import ConfigError
from ..io.outputs import current_umask, refuse_existing
from ..contract.model_folder import ONNX_DATA, Manifest, write_checksums
from ..models import ExportableModel, ModelBag
from ..runs import load_run, select_folds
from . import fusions as fz
from .folder import replace_folder, save_onnx, write_manifest
from .graph import EXPORTER, add_unused_inputs, export_onnx
from .options import PRECISIONS, TARGETS
from .parity import ParityError, ParityReport, ParityRows, check_parity, find_parity_rows, make_batches, torch_reference
from .precision import to_fp16
from .runtime import PROVIDERS, export_cuda_check, make_session, parity_provider_options
from .spec import ExportSpec, spec_for



@dataclass
class ExportReport:
    folder: Path
    manifest: Manifest
    fusions: fz.FusionReport
    parity: ParityReport
    sizes: dict[str, int] = field(default_factory=dict)      # bytes
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, and "total"


def library_versions() -> dict[str, str]:
    import onnxruntime
    import transformers

    return {"mmsa": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "exporter": EXPORTER, "optimizer": fz.OPTIMIZER}


def _check_choices(precision: str, target: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if target not in TARGETS:
        raise ConfigError(f"target '{target}' is not one of {', '.join(TARGETS)}")


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Laps:
    """Seconds per export stage, and the total."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.start = self.tick = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self.tick = round(now - self.tick, 2), now

    def total(self) -> dict[str, float]:
        self.seconds["total"] = round(time.perf_counter() - self.start, 2)
        return self.seconds


def export_model(model: ExportableModel, tokenizer, out: str | Path, rows: ParityRows, *, precision: str = "fp32",
                 target: str = "cpu", device: str = "auto", source_run: dict | None = None,
                 spec: ExportSpec | None = None, overwrite: bool = False,
                 decision_rule: dict | None = None) -> ExportReport:
    """Export `model` to the model folder `out` and validate it; raises ExportError (an
    MmsaError) listing every failed check. `device` is where the PyTorch reference and the
    ORT parity session run ('auto': CUDA when usable). An existing `out` is refused unless
    `overwrite`, and then replaced only by an export that passed every check. `decision_rule`
    (a CV run's decision_rule.json) goes into the manifest: scoring labels by its offsets."""
    _check_choices(precision, target)
    out = Path(out)
    refuse_existing(out, overwrite)
    spec = spec or spec_for(model)
    lap = _Laps()
    cuda_check = once(export_cuda_check)  # one decision: the reference's device and the fusions' provider
    provider = PROVIDERS[resolve_device(device, cuda_check).name]
    batches = make_batches(rows, tokenizer, model.inputs)
    references = torch_reference(model, batches, "cuda" if provider == PROVIDERS["cuda"] else "cpu")
    lap("reference")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700: readable by other users like any output
    try:
        graph, report, raw_bytes = _optimized_graph(model, spec, precision, tmp, lap)
        save_onnx(graph, tmp / "model.onnx")  # a first copy for the sessions below (over 2 GB, weights and all)
        ep_provider = PROVIDERS["cuda"] if target == "cuda" and cuda_check() is None else PROVIDERS["cpu"]
        report.ep = fz.ep_fusion_counts(tmp / "model.onnx", ep_provider)
        if ep_provider != PROVIDERS[target]:
            report.ep["note"] = f"{PROVIDERS[target]} is not usable here; counted for {ep_provider}"
        session = make_session(tmp / "model.onnx", provider, provider_options=parity_provider_options(provider))
        offsets = list(decision_rule["offsets"]) if decision_rule else []
        parity = check_parity(session, batches, references, spec, precision, data=rows.source, skipped=rows.skipped,
                              offsets=offsets)
        del session
        lap("checks")

        manifest = _manifest(model, precision, target, spec, decision_rule, source_run, parity)
        write_manifest(tmp, graph, manifest)
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "fused_operators.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        write_checksums(tmp, known={"model.onnx": manifest.model_sha256})  # last: covers every file above
        lap("write")
        _refuse_failed(model, out, tmp, report, parity)
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sizes = {"model.onnx": sum(f.stat().st_size for f in (out / "model.onnx", out / ONNX_DATA) if f.is_file()),
             "raw_export": raw_bytes,
             "tokenizer": _folder_bytes(out / "tokenizer")}
    return ExportReport(out, manifest, report, parity, sizes, lap.total())


def _optimized_graph(model: ExportableModel, spec: ExportSpec, precision: str, tmp: Path, lap: _Laps):
    """The traced graph, fused (and in fp16 if asked): (graph, its FusionReport without the
    provider counts, the raw export's bytes)."""
    raw_dir = tmp / "raw"  # its own folder: over 2 GB the exporter writes a file per weight beside it
    raw_dir.mkdir()
    raw = export_onnx(model, spec, raw_dir / "raw.onnx")
    raw_bytes, raw_counts = _folder_bytes(raw_dir), fz.op_counts(raw)["all"]
    shutil.rmtree(raw_dir)
    lap("export")

    bert = model.text_encoder.bert.config
    graph = fz.optimize_bert(raw, bert.num_attention_heads, bert.hidden_size,
                             options=fz.text_fusion_options(len(model.text_encoders)))
    optimized = fz.op_counts(graph)
    lap("optimize")
    if precision == "fp16":
        graph = to_fp16(graph)
        lap("fp16")
    add_unused_inputs(graph, spec)  # the optimizer prunes inputs the graph does not read
    report = fz.FusionReport(
        text=fz.bert_fusion_counts(optimized["text_encoder"]),
        expected_text=fz.expected_text_fusions(model.text_encoder_slices, model.uses_text,
                                               [s.encoder in model.remapped_text_encoders
                                                for s in model.text_encoder_slices]),
        parts=fz.op_counts(graph), raw=raw_counts)
    return graph, report, raw_bytes


def _manifest(model: ExportableModel, precision: str, target: str, spec: ExportSpec, decision_rule: dict | None,
              source_run: dict | None, parity: ParityReport) -> Manifest:
    inputs = model.inputs
    return Manifest(
        labels=list(LABELS), max_length=inputs.max_length, image_size=inputs.image_size,
        image_mean=list(inputs.image_mean), image_std=list(inputs.image_std), text_encoder=model.text_encoder_name,
        image_encoder=model.cfg.image_encoder, fusion=model.cfg.fusion, precision=precision, target=target,
        opset=spec.opset, model_sha256="", uses_text=inputs.uses_text, uses_image=inputs.uses_image,
        text_normalization=inputs.text_normalization,
        ensemble_members=list(model.cfg.ensemble_members) if model.cfg.fusion == "ensemble" else [],
        decision_offsets=list(decision_rule["offsets"]) if decision_rule else [],
        decision_metric=decision_rule["metric"] if decision_rule else "",
        versions=library_versions(), source_run=source_run or {}, parity=parity.to_dict())


def _refuse_failed(model: ExportableModel, out: Path, tmp: Path, report: fz.FusionReport, parity: ParityReport) -> None:
    """A failed check keeps the files in OUT.failed and raises, listing every failure."""
    failures = report.failures() + parity.failures
    if not failures:
        return
    failed = out.with_name(out.name + ".failed")
    shutil.rmtree(failed, ignore_errors=True)
    tmp.replace(failed)
    error = fz.FusionCheckError if report.failures() else ParityError
    raise error(f"export of '{model.cfg.fusion}' to {out} failed {len(failures)} check(s): "
                + "; ".join(failures) + f" (files kept in {failed})")


def _source(folder: Path, meta: dict) -> dict:
    """What the manifest records of a trained run: where it is, and how it validated."""
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    validation = metrics.get("validation", {})
    return {"path": str(folder), "created": meta.get("created", ""), "data": meta.get("data", ""),
            "best_epoch": metrics.get("best_epoch"),
            "validation": {k: validation[k] for k in ("n", "accuracy", "weighted_f1", "macro_f1") if k in validation}}


def export_run(run_dir: str | Path | Sequence[str | Path], out: str | Path, *, fusion: str | None = None,
               fold: str | None = None, precision: str = "fp32", target: str = "cpu", device: str = "auto",
               parity_data: str | Path | None = None, max_parity_rows: int = 512,
               overwrite: bool = False, decision_rule: bool = True) -> ExportReport:
    """Export one trained model of a run folder (`fusion` picks one of a `--fusion all` run;
    `fold` one fold of a cross-validation run, or "all": the mean of every fold's model).
    Several run folders: one bag of the models `fusion` and `fold` pick in each (models/bag.py).
    A CV run's decision rule (decision_rule.json, `mmsa train --decision-rule offsets`) goes
    into the manifest unless `decision_rule` is False; a bag of several runs has none, since each
    rule was fitted on its own run's probabilities."""
    _check_choices(precision, target)
    refuse_existing(Path(out), overwrite)
    run_dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    runs = []
    for folder in run_dirs:
        picked = [load_run(f, fusion) for f in select_folds(folder, fold)]
        if fold == "all" and len(picked) != picked[0].train_cfg.folds:
            raise ConfigError(f"'{folder}' holds {len(picked)} of its {picked[0].train_cfg.folds} folds: train the "
                              f"others (mmsa train --fold K) or export one with --fold K")
        runs += picked
    run = runs[0]
    rows = find_parity_rows(run.folder, run.meta.get("data"), parity_data=parity_data, max_rows=max_parity_rows)
    rules = [load_decision_rule(Path(folder)) for folder in run_dirs] if decision_rule else [None]
    if len(rules) > 1 and any(rules):
        fitted = ", ".join(str(f) for f, r in zip(run_dirs, rules) if r)
        raise ConfigError(f"{fitted}: a decision rule fitted on one run's probabilities, not on the mean of "
                          f"the {len(run_dirs)} runs; export the bag with --no-decision-rule")
    if len(runs) == 1:
        return export_model(run.model, run.model.text_encoder.tokenizer, out, rows, precision=precision,
                            target=target, device=device, source_run=_source(run.folder, run.meta), overwrite=overwrite,
                            decision_rule=rules[0])
    model = ModelBag([r.model for r in runs])
    source = {"path": ", ".join(map(str, run_dirs)), "bag": "mean of the probabilities of these models",
              "members": [_source(r.folder, r.meta) for r in runs]}
    return export_model(model, model.text_encoder.tokenizer, out, rows, precision=precision, target=target,
                        device=device, source_run=source, overwrite=overwrite, decision_rule=rules[0])
