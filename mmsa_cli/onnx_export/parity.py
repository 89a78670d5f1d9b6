"""Parity of an exported graph with the PyTorch model it came from, on real rows.

Rows: the run's own validation rows (split.csv + the data path in its config), or
--parity-data; with neither reachable the export stops and asks for --parity-data (an
export is never shipped unchecked). They are prepared by the scoring pipeline's own steps
(contract/images.py + contract/geometry.py for images, contract/tokenizer.py for tokens), so
the PyTorch model and ONNX Runtime, the two backends, are compared on the very inputs
`mmsa score` feeds the graph.

Batches: 1 row, then 7 (odd), then 16s, each padded to its longest text, so batch 1, an
odd batch, several sequence lengths and padded rows are all exercised.

The PyTorch reference is computed BEFORE export: tracing can leave a module in a different
state (e.g. it switches to eval mode for the trace and restores training mode after), so
a model used after export is not a trustworthy reference.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..contract.geometry import normalise
from ..data import Example, load_examples, read_split
from ..contract.decision import decide_labels
from ..errors import DataError, MmsaError
from ..contract.model_folder import INPUT_NAMES, OUTPUT_NAMES
from ..contract.images import ImageSpec, prepare_image
from ..contract.inputs import ModelInputs
from ..contract.tokenizer import BatchTokenizer
from ..models import ExportableModel
from .graph import ExportError
from .spec import ExportSpec

log = logging.getLogger(__name__)
BATCH_PLAN = (1, 7)     # then batches of FULL_BATCH
FULL_BATCH = 16


class ParityError(ExportError):
    """The exported graph does not reproduce the PyTorch model within tolerance."""


@dataclass
class ParityRows:
    examples: list[Example]
    source: str              # where the rows came from, for the report
    skipped: int = 0         # rows whose image could not be read


@dataclass
class ParityBatch:
    input_ids: np.ndarray        # [B, L] int64
    attention_mask: np.ndarray   # [B, L] int64
    pixel_values: np.ndarray     # [B, 3, S, S] float32

    def feeds(self) -> dict[str, np.ndarray]:
        return dict(zip(INPUT_NAMES, (self.input_ids, self.attention_mask, self.pixel_values)))


def _validation_rows(run_folder: Path, data: str) -> list[Example]:
    """The run's validation rows, if its data is reachable from here."""
    split = read_split(run_folder / "split.csv")
    val = {guid for guid, part in split.items() if part == "val"}
    return [e for e in load_examples(data) if e.guid in val] if Path(data).exists() else []


def find_parity_rows(run_folder: Path | None, data: str | None, *, parity_data: str | Path | None = None,
                     max_rows: int = 512) -> ParityRows:
    if parity_data is not None:
        rows = load_examples(parity_data)
        return ParityRows(rows[:max_rows], f"{parity_data} (first {min(len(rows), max_rows)} rows)")
    rows = []
    if run_folder is not None and data and (run_folder / "split.csv").is_file():
        try:
            rows = _validation_rows(run_folder, data)
        except (MmsaError, OSError) as exc:
            raise DataError(f"the validation rows of {run_folder} cannot be read ({exc}); pass --parity-data PATH") from exc
    if not rows:
        raise DataError(f"no rows to check the export on: the run's data {data!r} is not reachable from here; pass "
                        f"--parity-data PATH (an MVSA folder or a table with text and image columns, e.g. the "
                        f"project's samples/mvsa)")
    return ParityRows(rows[:max_rows], f"{data} validation split ({min(len(rows), max_rows)} rows)")


def make_batches(rows: ParityRows, tokenizer, inputs: ModelInputs) -> list[ParityBatch]:
    """Rows prepared as `mmsa score` prepares them, cut into the batch plan; rows whose image
    cannot be used are skipped (parity is about the rows both backends predict from)."""
    spec = ImageSpec.of(inputs, allow_outside_root=True)
    pixels, usable = [], []
    for e in rows.examples:
        image = prepare_image(str(Path(e.image_path).absolute()), "/", spec)
        if image.status == "pixels":
            pixels.append(image.payload)
            usable.append(e)
        else:
            rows.skipped += 1
    if not usable:
        raise DataError(f"no usable parity rows in {rows.source}: every image failed to load")
    ids, mask = BatchTokenizer(tokenizer, inputs.max_length, inputs.text_normalization)([e.text for e in usable])
    batches, start, plan = [], 0, list(BATCH_PLAN)
    while start < len(usable):
        size = plan.pop(0) if plan else FULL_BATCH
        width = int(mask[start:start + size].sum(1).max())   # padded to the batch's longest text
        batches.append(ParityBatch(ids[start:start + size, :width], mask[start:start + size, :width],
                                   normalise(np.stack(pixels[start:start + size]), inputs.image_mean,
                                             inputs.image_std)))
        start += size
    return batches


@torch.inference_mode()
def torch_reference(model: ExportableModel, batches: list[ParityBatch], device: str = "cpu") -> list[tuple[np.ndarray, np.ndarray]]:
    """(probs, logits) of the fp32 PyTorch model for every batch."""
    model = model.eval().to(device)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        out = []
        for b in batches:
            logits = model(*(torch.from_numpy(x).to(device) for x in (b.input_ids, b.attention_mask, b.pixel_values)))
            logits = logits.float()
            out.append((logits.softmax(-1).cpu().numpy(), logits.cpu().numpy()))
        return out
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        model.to("cpu")


@dataclass
class ParityReport:
    provider: str
    precision: str
    data: str
    rows: int
    skipped_rows: int
    batch_sizes: list[int]
    sequence_lengths: list[int]
    padded_batches: int                 # batches with mixed text lengths
    max_abs_diff_probs: float
    max_abs_diff_logits: float
    label_agreement: float
    tolerance: dict
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


def check_parity(session, batches: list[ParityBatch], references: list[tuple[np.ndarray, np.ndarray]],
                 spec: ExportSpec, precision: str, *, data: str = "", skipped: int = 0,
                 offsets: list[float] | None = None) -> ParityReport:
    """Run every batch and compare; every failure is collected, none stops the check. Labels
    are compared as scoring chooses them: by the decision rule's offsets, if any."""
    failures: list[str] = []
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if inputs != INPUT_NAMES:
        failures.append(f"input names {inputs}, expected {INPUT_NAMES}")
    if outputs != OUTPUT_NAMES:
        failures.append(f"output names {outputs}, expected {OUTPUT_NAMES}")
    fp16 = precision == "fp16"
    tolerance = ({"probs_atol": spec.fp16_prob_atol, "min_label_agreement": spec.fp16_min_label_agreement}
                 if fp16 else {"probs_atol": spec.fp32_atol, "logits_atol": spec.fp32_atol, "logits_rtol": spec.fp32_atol})
    d_probs = d_logits = 0.0
    agree = total = 0
    for i, (batch, (ref_p, ref_l)) in enumerate(zip(batches, references)):
        n = len(batch.input_ids)
        try:
            probs, logits = session.run(list(OUTPUT_NAMES), batch.feeds())
        except Exception as exc:
            failures.append(f"batch {i} (size {n}, length {batch.input_ids.shape[1]}) failed to run: {exc}")
            continue
        for name, got, want in (("probs", probs, ref_p), ("logits", logits, ref_l)):
            if got.shape != want.shape or got.dtype != np.float32:
                failures.append(f"batch {i}: {name} is {got.dtype}{list(got.shape)}, expected float32{list(want.shape)}")
        if probs.shape != ref_p.shape or logits.shape != ref_l.shape:
            continue
        if not (np.isfinite(probs).all() and np.isfinite(logits).all()):
            failures.append(f"batch {i} (size {n}): non-finite outputs")
            continue
        dp, dl = float(np.abs(probs - ref_p).max()), float(np.abs(logits - ref_l).max())
        d_probs, d_logits = max(d_probs, dp), max(d_logits, dl)
        agree += int((decide_labels(probs, offsets) == decide_labels(ref_p, offsets)).sum())
        total += n
        if dp > tolerance["probs_atol"]:
            failures.append(f"batch {i} (size {n}): max |delta prob| {dp:.2e} > {tolerance['probs_atol']:.0e}")
        if not fp16 and not np.allclose(logits, ref_l, atol=spec.fp32_atol, rtol=spec.fp32_atol):
            failures.append(f"batch {i} (size {n}): max |delta logit| {dl:.2e} exceeds atol=rtol={spec.fp32_atol:.0e}")
    agreement = agree / total if total else 0.0
    if fp16 and agreement < spec.fp16_min_label_agreement:
        failures.append(f"predicted labels agree on {100 * agreement:.2f}% of rows, "
                        f"expected >= {100 * spec.fp16_min_label_agreement:.1f}%")
    lengths = [int(b.attention_mask.sum(1).min()) != int(b.attention_mask.sum(1).max()) for b in batches]
    return ParityReport(
        provider=session.get_providers()[0], precision=precision, data=data, rows=total, skipped_rows=skipped,
        batch_sizes=[len(b.input_ids) for b in batches], sequence_lengths=sorted({b.input_ids.shape[1] for b in batches}),
        padded_batches=sum(lengths), max_abs_diff_probs=d_probs, max_abs_diff_logits=d_logits,
        label_agreement=agreement, tolerance=tolerance, failures=failures)
