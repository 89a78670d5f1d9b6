"""`mmsa export`: options in, one library call, a short report out."""
from __future__ import annotations

import click

from ..cli_options import device_option, library_errors
from ..registry import FUSION_NAMES


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def describe(report) -> list[str]:
    """The lines `mmsa export` prints: what fused, sizes, parity, time."""
    m, f, p = report.manifest, report.fusions, report.parity
    ep = f.ep
    text = ", ".join(f"{k} {f.text[k]}/{f.expected_text[k]}" for k in f.text)
    lines = [
        f"exported {m.fusion} ({m.text_encoder} + {m.image_encoder}), {m.precision} for {m.target}, opset {m.opset} -> {report.folder}",
        *([f"  mean of {len(m.source_run['members'])} models: "
           + ", ".join(member["path"] for member in m.source_run["members"])] if "members" in m.source_run else []),
        f"  text encoder fusions (found/expected): {text}",
        f"  image encoder: BatchNormalization left {f.batch_norms}; {ep['provider']}: {ep['conv']} Conv, "
        f"{ep['conv_with_fused_activation']} with fused activation, {ep['conv_activation_left_unfused']} "
        f"Conv->activation left unfused" + (f" ({ep['note']})" if ep.get("note") else ""),
        f"  parity vs PyTorch fp32 on {p.provider}, {p.rows} rows of {p.data}: max |d prob| {p.max_abs_diff_probs:.2e}, "
        f"max |d logit| {p.max_abs_diff_logits:.2e}, labels agree {100 * p.label_agreement:.2f}% "
        f"(batches {','.join(map(str, sorted(set(p.batch_sizes))))}; lengths {min(p.sequence_lengths)}-{max(p.sequence_lengths)}; "
        f"{p.padded_batches} padded) tolerance {p.tolerance}",
        f"  files: model.onnx {_mb(report.sizes['model.onnx'])} (raw export {_mb(report.sizes['raw_export'])}), "
        f"tokenizer {_mb(report.sizes['tokenizer'])}",
        *([f"  decision rule: label = argmax(log p + b), b = {m.decision_offsets} (fitted for {m.decision_metric})"]
          if m.decision_offsets else []),
        "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items()),
    ]
    return lines


@click.command()
@click.option("--run", "run_dirs", required=True, multiple=True, type=click.Path(file_okay=False),
              help="A run folder written by `mmsa train` (of a `--folds` run: with --fold). Repeat it to "
                   "bag the models of several runs (their text encoders may differ if their tokenizers "
                   "cut text alike, as MiniLM-L6's and all-mpnet-base-v2's do).")
@click.option("--fusion", type=click.Choice(FUSION_NAMES), default=None,
              help="Which model of a `--fusion all` run folder.")
@click.option("--fold", default=None, metavar="K|all",
              help="Which model of a `--folds` run: fold K, or all: one graph averaging every fold's "
                   "probabilities (bagging; each fold's text encoder runs, the frozen image encoder once).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "fp16"]),
              help="fp16 keeps float32 inputs/outputs and fp32 islands for fragile ops.")
@click.option("--target", default="cpu", show_default=True, type=click.Choice(["cuda", "cpu"]),
              help="Execution provider the model is meant for (recorded; provider-level fusions counted for it).")
@click.option("--parity-data", type=click.Path(exists=True), default=None,
              help="Rows to check parity on [default: the run's validation rows; required when its data "
                   "is not reachable from here].")
@click.option("--parity-rows", default=512, show_default=True, type=click.IntRange(1), help="Cap on parity rows.")
@click.option("--no-decision-rule", is_flag=True,
              help="Leave out the CV run's decision rule (decision_rule.json from `mmsa train --decision-rule "
                   "offsets`): the model's labels are then the arg-max of its probabilities.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (only by an export that passed its checks).")
@device_option
@library_errors
def export(run_dirs, fusion, fold, out, precision, target, parity_data, parity_rows, no_decision_rule, overwrite,
           device):
    """Export a trained model to one optimized ONNX graph (fused, validated against PyTorch)."""
    from .export import export_run

    report = export_run(run_dirs, out, fusion=fusion, fold=fold, precision=precision, target=target, device=device,
                        parity_data=parity_data, max_parity_rows=parity_rows, overwrite=overwrite,
                        decision_rule=not no_decision_rule)
    for line in describe(report):
        click.echo(line)
