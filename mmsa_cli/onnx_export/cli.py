"""`mmsa export`: options in, one library call, a short report out."""
from __future__ import annotations

import dataclasses

import click

from ..cli_options import dataclass_options, library_errors
from ..flags import values_of
from .options import ExportOptions


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
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@dataclass_options([ExportOptions])
@library_errors
def export(run_dirs, out, **options):
    """Export a trained model to one optimized ONNX graph (fused, validated against PyTorch)."""
    from .export import export_run

    report = export_run(run_dirs, out, **dataclasses.asdict(values_of(ExportOptions, options)))
    for line in describe(report):
        click.echo(line)
