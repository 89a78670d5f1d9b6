"""Scorer: raw rows (text, image path or bytes) -> the output table, around any backend.

    Scorer("models/ote")                        an exported folder in ONNX Runtime (OnnxModel)
    Scorer(TorchModel.from_run(load_run(...)))  a run folder's PyTorch model (evaluate, predict)

Both get their rows prepared by the same code: texts decoded and tokenized (contract/tokenizer.py), images
read, resized, cropped and normalised (contract/images.py, images/prepare.py), and the bad-row
policy applied (contract/rows.py). `score_batch(table)` does a whole table in this process;
score_files() (engines/local.py) streams files through the same stage methods (plan, image_tasks,
pixel_batch, infer), with the image work in worker processes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ..contract.geometry import normalise
from ..contract.rows import RowOutcomes, decide, result_table
from .errors import InputError
from .inputs import Columns, ResolvedColumns, resolve_columns
from .onnx_model import OnnxModel
from .images.prepare import (MAX_IMAGE_BYTES, ImageResult, ImageSpec, ImageTask, check_decoder, decode_on_cpu,
                         prepare_images)
from ..io.storage import is_relative_path, root_string
from ..contract.tokenizer import BatchTokenizer, decode_texts


@dataclass
class ChunkPlan:
    """Rows of one chunk made ready for inference: tokens, image sources, batch order."""
    text_empty: np.ndarray                  # [N] bool
    ids: np.ndarray | None                  # [N, max_length] int32; None when the model reads no text
    mask: np.ndarray | None
    images: list | None                     # per row: path string, bytes or None; None when no images
    roots: Sequence[str]
    batches: list[np.ndarray] = field(default_factory=list)  # row positions of each batch
    seconds: float = 0.0                    # text decoding + tokenization


class Scorer:
    """The table scorer. `model` is a model folder path (loaded as OnnxModel(model, device, ...))
    or a loaded backend (OnnxModel, TorchModel): anything with `inputs`, `tokenizer`, `device`,
    `batch_size`, `fixed_batch`, `blank_pixels(n)` and `__call__(batch) -> {"probs"}`.
    Labels follow the model's decision rule (its `decision_offsets`, from the manifest or the
    run folder) unless decision_rule=False, which restores the arg-max."""

    def __init__(self, model, device: str = "auto", *, batch_size: int | None = None,
                 verify_checksum: bool = True, threads: int | None = None, image_decoder: str = "auto",
                 decision_rule: bool = True):
        if isinstance(model, (str, Path)):
            model = OnnxModel(model, device, batch_size=batch_size, verify_checksum=verify_checksum, threads=threads)
        self.model = model
        self.decision_offsets = list(getattr(model, "decision_offsets", ()) or ()) if decision_rule else []
        self.inputs = model.inputs
        self.tokenizer = model.tokenizer
        # int32 while a chunk waits: half the memory of a row group's tokens (__call__ makes
        # each batch int64, the graph's input type).
        self._tokenize = BatchTokenizer(self.tokenizer, self.inputs.max_length, self.inputs.text_normalization,
                                        dtype=np.int32)
        ids, mask = self._tokenize([""])                       # the empty text: [CLS] [SEP]
        self._empty_ids = ids[0, : int(mask[0].sum())].astype(np.int64)
        self._rows_scored = 0
        self._gpu = None
        # Who prepares the images on CUDA: "dali", "nvjpeg" or "cpu" (images/dali.py: gpu_image_path);
        # None on a CPU run, which prepares every image on the CPU whatever was asked.
        self.image_decoder: str | None = None
        self.use_image_decoder(image_decoder)  # a typo fails on any device
        if self.device == "cuda":
            self.warm_up()

    # ------------------------------------------------------------------ the backend's facts

    device = property(lambda self: self.model.device, doc='"cpu" or "cuda": where the model runs')
    provider = property(lambda self: self.model.provider, doc="the execution provider, for reports")
    batch_size = property(lambda self: self.model.batch_size, doc="rows per model call")
    warnings = property(lambda self: self.model.warnings, doc="what the backend said when it loaded")
    uses_text = property(lambda self: self.inputs.uses_text)
    uses_image = property(lambda self: self.inputs.uses_image)
    folder = property(lambda self: getattr(self.model, "folder", None), doc="the model folder (ONNX backend)")
    manifest = property(lambda self: getattr(self.model, "manifest", None), doc="its manifest (ONNX backend)")

    def describe(self) -> dict:
        return self.model.describe()

    def image_spec(self, allow_outside_root: bool = False, max_bytes: int = MAX_IMAGE_BYTES) -> ImageSpec:
        return ImageSpec.of(self.inputs, allow_outside_root=allow_outside_root,
                         max_bytes=max_bytes, gpu_jpeg=self._gpu is not None and self.image_decoder != "cpu")

    def result_table(self, ids: pa.Array, id_name: str, probs: np.ndarray, errors: Sequence[str | None],
                     predicted_from: Sequence[str | None], keep: dict[str, pa.Array] | None = None,
                     schema: pa.Schema | None = None) -> pa.Table:
        """The output rows (contract/rows.py), labelled by this model's decision rule: every
        engine writes its rows through here."""
        return result_table(ids, id_name, probs, errors, predicted_from, keep, schema,
                            decision_offsets=self.decision_offsets)

    def use_image_decoder(self, requested: str) -> str | None:
        """Choose the CUDA image path (auto, dali, nvjpeg, cpu; benchmarks switch it on one loaded
        model); returns the one in use, None on a CPU run."""
        check_decoder(requested)
        if self.device == "cuda":
            import torch

            from .images.dali import gpu_image_path

            self.image_decoder, self._gpu = gpu_image_path(
                requested, self.inputs, torch.device("cuda", torch.cuda.current_device()), self.batch_size,
                self.model.warnings.append)
        return self.image_decoder

    def warm_up(self) -> float:
        """One blank batch of the fixed shape: cuDNN picks and compiles its kernels now, once,
        rather than inside the first batches of a job. Returns the seconds it took."""
        start = time.perf_counter()
        self({"pixel_values": self.model.blank_pixels(self.model.fixed_batch or self.batch_size)})
        return time.perf_counter() - start

    # ------------------------------------------------------------------ one batch of model inputs

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """{"input_ids" [B,L] int64, "attention_mask" [B,L] int64, "pixel_values" [B,3,S,S] float32}
        -> {"probs": [B,3] float32}. Inputs the model does not use may be left out (the empty
        text and the blank image stand in)."""
        pixels = batch.get("pixel_values")
        n = len(pixels) if pixels is not None else len(batch["input_ids"])
        ids = batch.get("input_ids")
        if ids is None:
            ids = np.broadcast_to(self._empty_ids, (n, len(self._empty_ids)))
            mask = np.ones_like(ids)
        else:
            ids, mask = np.asarray(ids, np.int64), np.asarray(batch["attention_mask"], np.int64)
        if pixels is None:
            pixels = self.model.blank_pixels(n)
        return self.model({"input_ids": ids, "attention_mask": mask, "pixel_values": pixels})

    # ------------------------------------------------------------------ raw rows -> model inputs

    def plan(self, table: pa.Table, cols: ResolvedColumns, roots: Sequence[str], batch_size: int | None = None) -> ChunkPlan:
        """Decode and tokenize a chunk's texts and cut it into batches of similar text length
        (less padding); deterministic, so a resumed run makes the same batches."""
        start = time.perf_counter()
        n, bs = table.num_rows, batch_size or self.batch_size
        ids = mask = None
        text_empty = np.zeros(n, bool)
        if cols.text:
            texts = decode_texts(table.column(cols.text))
            text_empty = np.fromiter((not t for t in texts), bool, n)
            ids, mask = self._tokenize(texts)
            order = np.argsort(mask.sum(1), kind="stable")
        else:
            order = np.arange(n)
        images = None
        if cols.image:
            col = table.column(cols.image)
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            images = col.to_pylist()
        batches = [order[i:i + bs] for i in range(0, n, bs)]
        return ChunkPlan(text_empty, ids, mask, images, roots, batches, time.perf_counter() - start)

    def image_tasks(self, plan: ChunkPlan, rows: np.ndarray) -> list[ImageTask]:
        return [(plan.images[i], plan.roots[i]) for i in rows] if plan.images is not None else []

    def pixel_batch(self, results: Sequence[ImageResult], spec: ImageSpec):
        """Prepared images -> normalised pixel batch (numpy on the CPU, a CUDA tensor on the
        GPU) and each row's image error (blank = mean image for those rows)."""
        if self._gpu is not None:
            return self._gpu(results, spec)
        s = self.inputs.image_size
        errors: list[str | None] = []
        raw = np.zeros((len(results), s, s, 3), np.uint8)
        for i, r in enumerate(results):
            if r.status == "jpeg":  # from a GPU-minded worker: decode here
                r = decode_on_cpu(r.payload, spec)
            if r.status == "pixels":
                raw[i] = r.payload
            errors.append(r.error)
        pixels = normalise(raw, self.inputs.image_mean, self.inputs.image_std)
        pixels[[i for i, e in enumerate(errors) if e]] = 0.0
        return pixels, errors

    def infer(self, plan: ChunkPlan, rows: np.ndarray, pixels,
              image_errors: Sequence[str | None] | None) -> tuple[np.ndarray, RowOutcomes]:
        """Run one batch and apply the bad-row policy: probs [b,3] (NaN = no prediction) and the
        rows' outcomes (errors, what each was predicted from)."""
        batch: dict[str, Any] = {}
        if plan.ids is not None:
            mask = plan.mask[rows]
            width = max(int(mask.sum(1).max()), 1) if len(rows) else 1
            if self.device == "cuda":  # fewer distinct shapes, tensor-core friendly widths
                width = min(-(-width // 8) * 8, mask.shape[1])
            batch["input_ids"], batch["attention_mask"] = plan.ids[rows, :width], mask[:, :width]
        if pixels is not None:
            batch["pixel_values"] = pixels
        elif plan.ids is None:
            batch["pixel_values"] = self.model.blank_pixels(len(rows))
        probs = self(batch)["probs"].astype(np.float32, copy=True)
        errors = image_errors if image_errors is not None else [None] * len(rows)
        outcomes = decide(plan.text_empty[rows], errors, uses_text=self.uses_text, uses_image=self.uses_image)
        probs[~outcomes.keep] = np.nan
        return probs, outcomes

    def score_plan(self, plan: ChunkPlan, images: Callable[[np.ndarray], tuple] | None = None):
        """Every batch of a plan through the model: probs [N,3] (NaN: no prediction), and each
        row's error and what it was predicted from. images(rows) -> (pixels, image errors) for
        a batch's rows, prepared however the engine prepares them; None: the model reads none."""
        n = len(plan.text_empty)
        probs = np.full((n, 3), np.nan, np.float32)
        errors: list[str | None] = [None] * n
        sources: list[str | None] = [None] * n
        for rows in plan.batches:
            pixels, image_errors = images(rows) if images is not None else (None, None)
            p, outcomes = self.infer(plan, rows, pixels, image_errors)
            probs[rows] = p
            for i, message, source in zip(rows, outcomes.errors, outcomes.predicted_from):
                errors[i], sources[i] = message, source
        return probs, errors, sources

    # ------------------------------------------------------------------ a whole table

    def score_batch(self, data, columns: Columns = Columns(), *, image_root: str | Path | None = None,
                    allow_outside_root: bool = False, row_offset: int | None = None) -> pa.Table:
        """Score a pyarrow Table/RecordBatch or pandas DataFrame in this process; returns the
        output table (the id column, label, prob_*, error, error_kind, predicted_from, kept
        columns) in input order.

        image_root: the folder relative image paths are read from (and that paths may not
        escape unless allow_outside_root). None accepts only absolute paths and image bytes: a
        relative path is an InputError, never a silently missing image (the CLI's rule, each
        input file's folder, is score_files()'). Without an id column, rows are numbered in a
        `row` column from row_offset, by default continuing after this Scorer's previous call.
        """
        table = _to_table(data)
        cols = resolve_columns(table.schema, columns, uses_text=self.uses_text, uses_image=self.uses_image,
                               where="the table")
        spec = self.image_spec(allow_outside_root)
        plan = self.plan(table, cols, [""] * table.num_rows)
        if image_root is None:
            _refuse_relative_paths(plan.images)
            plan.roots = ["/"] * table.num_rows
            spec = self.image_spec(True)
        else:
            plan.roots = [root_string(image_root)] * table.num_rows
        images = ((lambda rows: self.pixel_batch(prepare_images(self.image_tasks(plan, rows), spec)[0], spec))
                  if cols.image else None)
        probs, errors, sources = self.score_plan(plan, images)
        start = self._rows_scored if row_offset is None else row_offset
        self._rows_scored = start + table.num_rows
        ids = table.column(cols.id) if cols.id else pa.array(np.arange(start, start + table.num_rows))
        return self.result_table(ids, cols.id_name, probs, errors, sources, {c: table.column(c) for c in cols.keep})


def score_table(data, model_dir: str | Path, columns: Columns = Columns(), *, device: str = "auto",
                image_root: str | Path | None = None, allow_outside_root: bool = False) -> pa.Table:
    """One-shot convenience: load the model and score a table (notebooks, Airflow tasks)."""
    return Scorer(model_dir, device).score_batch(data, columns, image_root=image_root,
                                                 allow_outside_root=allow_outside_root)


def _refuse_relative_paths(images: list | None) -> None:
    relative = [v for v in images or () if is_relative_path(v)]
    if relative:
        raise InputError(f"{len(relative)} image paths are relative (e.g. {relative[0]!r}) and no image_root was "
                         f"given: pass image_root= (the folder they are relative to)")


def _to_table(data) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pyarrow Table/RecordBatch or a pandas DataFrame, got {type(data).__name__}")
