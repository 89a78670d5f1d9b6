"""Scorer: an exported model folder loaded once, mapping batches to predictions.

Like a Ray Data batch predictor: `Scorer(model_dir)` loads the ONNX Runtime session and the
tokenizer once; `scorer({"input_ids", "attention_mask", "pixel_values"}) -> {"probs"}` runs
one batch of model inputs; `scorer.score_batch(table)` does a whole table of raw rows
(text, image path or bytes) -> the output table. score_files() streams files through the
same methods, with the image work in worker processes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..model_folder import ModelFolder, load_model_folder
from ..errors import DeviceUnavailableError
from .errors import ModelLoadError
from .inputs import Columns, ResolvedColumns, resolve_columns
from .preprocess import ImageResult, ImageSpec, ImageTask, normalise, prepare_image, prepare_images
from .texts import BatchTokenizer, decode_texts
from .results import decide, result_table

log = logging.getLogger(__name__)

DEFAULT_BATCH = {"cpu": 32, "cuda": 256}
# prefer_nhwc: channels-last convolutions (ResNet/EfficientNet) on tensor cores; HEURISTIC
# avoids an exhaustive cuDNN search. fuse_conv_bias: cuDNN's runtime conv+bias(+ReLU) fusion,
# ResNet-50 alone 10,400 -> 14,700 img/s on the H100 (benchmarks/results/export_gpu_session2.md).
# It compiles kernels for each new input shape (seconds), which is why CUDA batches are
# padded to one fixed shape (Scorer.fixed_batch) and the scorer warms up once when it loads.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1", "cudnn_conv_use_max_workspace": "1",
                "fuse_conv_bias": "1"}


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
    def __init__(self, model_dir: str | Path, device: str = "auto", *, batch_size: int | None = None,
                 verify_checksum: bool = True, threads: int | None = None):
        self.folder: ModelFolder = load_model_folder(model_dir, verify_checksum=verify_checksum)
        self.manifest = self.folder.manifest
        self.tokenizer = load_tokenizer(self.folder)
        # int32 while a chunk waits: half the memory of a row group's tokens (__call__ makes
        # each batch int64, the graph's input type).
        self._tokenize = BatchTokenizer(self.tokenizer, self.manifest.max_length, self.manifest.text_normalization,
                                        dtype=np.int32)
        self.warnings: list[str] = []
        self.session = self._open_session(device, threads)
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.batch_size = batch_size or DEFAULT_BATCH[self.device]
        # Smaller batches are padded to this many rows (None: run as they are). On CUDA every
        # batch then has the image shape the convolution kernels were built for.
        self.fixed_batch: int | None = self.batch_size if self.device == "cuda" else None
        self.input_names = {i.name for i in self.session.get_inputs()}
        empty = self.tokenizer.encode("").ids  # [CLS] [SEP]
        self._empty_ids = np.asarray(empty, np.int64)
        self._zeros: dict[int, Any] = {}
        self._gpu = None
        if self.device == "cuda":
            import torch

            self._gpu = GpuImages(self.manifest, torch.device("cuda", torch.cuda.current_device()))
            self.warm_up()

    def warm_up(self) -> float:
        """One blank batch of the fixed shape: cuDNN picks and compiles its kernels now, once,
        rather than inside the first batches of a job. Returns the seconds it took."""
        start = time.perf_counter()
        self({"pixel_values": self._blank(self.fixed_batch or self.batch_size)})
        return time.perf_counter() - start

    # ------------------------------------------------------------------ model & session

    @property
    def uses_text(self) -> bool:
        return self.manifest.uses_text

    @property
    def uses_image(self) -> bool:
        return self.manifest.uses_image

    def image_spec(self, allow_outside_root: bool = False) -> ImageSpec:
        m = self.manifest
        return ImageSpec(m.image_size, tuple(m.image_mean), tuple(m.image_std),
                         allow_outside_root=allow_outside_root, gpu_jpeg=self._gpu is not None)

    def _open_session(self, device: str, threads: int | None):
        from ..contract.device import onnxruntime_cuda_check, resolve_device

        chosen = resolve_device(device, onnxruntime_cuda_check)  # cuda unusable: DeviceUnavailableError
        if chosen.note:
            self._warn(chosen.note)
        want_cuda = chosen.name == "cuda"
        if want_cuda:
            import torch  # noqa: F401  (before onnxruntime: the CUDA EP finds the libraries torch loaded)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        elif want_cuda:  # the CPU pool only runs shape ops; spinning threads would starve nvJPEG and the workers
            opts.intra_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = str(self.folder.onnx_path)
        cpu = ["CPUExecutionProvider"]
        try:
            if want_cuda:
                try:
                    session = ort.InferenceSession(path, opts, providers=[("CUDAExecutionProvider", CUDA_OPTIONS), *cpu])
                except Exception as exc:  # an option this ORT build does not know: plain CUDA EP
                    log.debug("CUDA EP with tuned options failed (%s); retrying with defaults", exc)
                    session = ort.InferenceSession(path, opts, providers=["CUDAExecutionProvider", *cpu])
            else:
                session = ort.InferenceSession(path, opts, providers=cpu)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from None
        active = session.get_providers()
        if want_cuda and active[0] != "CUDAExecutionProvider":
            reason = (f"ONNX Runtime's CUDA provider failed to load and it fell back to {active[0]}: check the "
                      f"CUDA/cuDNN libraries")
            if device == "cuda":
                raise DeviceUnavailableError(f"--device cuda: {reason}")
            self._warn(f"device auto: {reason}; scoring is much slower")
        if active[0] == "CPUExecutionProvider" and self.manifest.target == "cuda":
            self._warn(f"model {self.folder.path} was optimised for CUDA (precision {self.manifest.precision}) "
                       f"and runs on the CPU: export one for the CPU for best speed")
        return session

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def describe(self) -> dict:
        m = self.manifest
        return {"path": str(self.folder.path), "fusion": m.fusion, "text_encoder": m.text_encoder,
                "image_encoder": m.image_encoder, "precision": m.precision, "target": m.target,
                "model_sha256": m.model_sha256, "format_version": m.format_version,
                "provider": self.provider, "device": self.device}

    # ------------------------------------------------------------------ one batch of model inputs

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """{"input_ids" [B,L] int64, "attention_mask" [B,L] int64, "pixel_values" [B,3,S,S] float32}
        -> {"probs": [B,3] float32}. Inputs the model does not use may be left out; on CUDA,
        pixel_values may be a CUDA torch tensor (bound in place, no host copy)."""
        pixels = batch.get("pixel_values")
        n = len(pixels) if pixels is not None else len(batch["input_ids"])
        ids = batch.get("input_ids")
        if ids is None:
            ids = np.broadcast_to(self._empty_ids, (n, len(self._empty_ids)))
            mask = np.ones_like(ids)
        else:
            ids, mask = _numpy(ids, np.int64), _numpy(batch["attention_mask"], np.int64)
        rows = max(n, self.fixed_batch or 0)
        if pixels is None:
            pixels = self._blank(rows)
        if rows > n:
            ids, mask, pixels = pad_rows(ids, mask, pixels, rows)
        if self.device == "cuda":
            return {"probs": self._run_cuda(ids, mask, pixels)[:n]}
        feed = {"input_ids": ids, "attention_mask": mask, "pixel_values": _numpy(pixels, np.float32)}
        feed = {k: np.ascontiguousarray(v) for k, v in feed.items() if k in self.input_names}
        return {"probs": self.session.run(["probs"], feed)[0][:n]}

    def _run_cuda(self, ids: np.ndarray, mask: np.ndarray, pixels) -> np.ndarray:
        binding = self.session.io_binding()
        if "input_ids" in self.input_names:
            binding.bind_cpu_input("input_ids", np.ascontiguousarray(ids))
        if "attention_mask" in self.input_names:
            binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask))
        if "pixel_values" in self.input_names:
            if _is_torch(pixels) and pixels.is_cuda:
                pixels = pixels.contiguous()
                binding.bind_input("pixel_values", "cuda", pixels.device.index or 0, np.float32,
                                   list(pixels.shape), pixels.data_ptr())
            else:
                binding.bind_cpu_input("pixel_values", np.ascontiguousarray(_numpy(pixels, np.float32)))
        binding.bind_output("probs", "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _blank(self, n: int):
        """Pixel input of a model that ignores images (the graph still declares it)."""
        if n not in self._zeros:
            s = self.manifest.image_size
            if self.device == "cuda":
                import torch

                self._zeros[n] = torch.zeros((n, 3, s, s), device="cuda")
            else:
                self._zeros[n] = np.zeros((n, 3, s, s), np.float32)
        return self._zeros[n]

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
        s = self.manifest.image_size
        errors: list[str | None] = []
        raw = np.zeros((len(results), s, s, 3), np.uint8)
        for i, r in enumerate(results):
            if r.status == "jpeg":  # from a GPU-minded worker: decode here
                r = prepare_image(r.payload, "", _cpu_spec(spec))
            if r.status == "pixels":
                raw[i] = r.payload
            errors.append(r.error)
        pixels = normalise(raw, self.manifest.image_mean, self.manifest.image_std)
        pixels[[i for i, e in enumerate(errors) if e]] = 0.0
        return pixels, errors

    def infer(self, plan: ChunkPlan, rows: np.ndarray, pixels, image_errors: Sequence[str | None] | None):
        """Run one batch and apply the bad-row policy: probs [b,3] (NaN = no prediction), errors."""
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
            batch["pixel_values"] = self._blank(len(rows))
        probs = self(batch)["probs"].astype(np.float32, copy=True)
        errors = image_errors if image_errors is not None else [None] * len(rows)
        keep, messages = decide(plan.text_empty[rows], errors, uses_text=self.uses_text, uses_image=self.uses_image)
        probs[~keep] = np.nan
        return probs, messages

    # ------------------------------------------------------------------ a whole table

    def score_batch(self, data, columns: Columns = Columns(), *, image_root: str | Path = ".",
                    allow_outside_root: bool = False, row_offset: int = 0) -> pa.Table:
        """Score a pyarrow Table/RecordBatch or pandas DataFrame in this process. Returns the
        output table (id or 'row', label, prob_*, error, kept columns) in input order."""
        table = _to_table(data)
        cols = resolve_columns(table.schema, columns, uses_text=self.uses_text, uses_image=self.uses_image,
                               where="the table")
        spec = self.image_spec(allow_outside_root)
        roots = [str(Path(image_root).resolve())] * table.num_rows
        plan = self.plan(table, cols, roots)
        probs = np.full((table.num_rows, 3), np.nan, np.float32)
        errors: list[str | None] = [None] * table.num_rows
        for rows in plan.batches:
            pixels = image_errors = None
            if cols.image:
                results, _ = prepare_images(self.image_tasks(plan, rows), spec)
                pixels, image_errors = self.pixel_batch(results, spec)
            p, e = self.infer(plan, rows, pixels, image_errors)
            probs[rows] = p
            for i, msg in zip(rows, e):
                errors[i] = msg
        ids = table.column(cols.id) if cols.id else pa.array(np.arange(row_offset, row_offset + table.num_rows))
        return result_table(ids, cols.id_name, probs, errors, {c: table.column(c) for c in cols.keep})


def load_tokenizer(folder: ModelFolder):
    """The folder's tokenizer as a `tokenizers.Tokenizer` (ModelFolder.load_tokenizer): neither
    transformers nor torch is imported, and the scoring install has neither. Same ids as
    the Hugging Face tokenizer (a test checks)."""
    return folder.load_tokenizer()


def score_table(data, model_dir: str | Path, columns: Columns = Columns(), *, device: str = "auto",
                image_root: str | Path = ".", allow_outside_root: bool = False) -> pa.Table:
    """One-shot convenience: load the model and score a table (notebooks, Airflow tasks)."""
    return Scorer(model_dir, device).score_batch(data, columns, image_root=image_root,
                                                 allow_outside_root=allow_outside_root)


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


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def pad_rows(ids: np.ndarray, mask: np.ndarray, pixels, rows: int):
    """Model inputs of n < rows rows -> `rows` rows, the extra ones copies of the first (any
    valid input; their outputs are dropped). Pixels may be numpy or a torch tensor."""
    def pad(x):
        extra = rows - len(x)
        if extra <= 0:
            return x
        if _is_torch(x):
            import torch

            return torch.cat([x, x[:1].expand(extra, *x.shape[1:])])
        return np.concatenate([x, np.repeat(np.asarray(x[:1]), extra, 0)])

    return pad(ids), pad(mask), pad(pixels)


def _numpy(x, dtype) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _cpu_spec(spec: ImageSpec) -> ImageSpec:
    from dataclasses import replace

    return replace(spec, gpu_jpeg=False)


class GpuImages:
    """JPEG bytes -> nvJPEG -> batched resize; CPU-prepared pixels uploaded; one normalised
    tensor per batch, made on the calling thread's own CUDA stream so that several prep
    threads and the model overlap. A batch may mix both kinds in any order (the pipeline's
    gpu_decode_share): each row lands at its own index. Any torch device works (tests run it
    on the CPU, where torchvision decodes with libjpeg). `seconds` splits host time into
    decode and the rest; `counts` says how many images took each way."""

    def __init__(self, manifest, device):
        import threading

        from .gpu_images import GpuJpegDecoder, Normaliser

        self.m, self.dev = manifest, device
        self.decode = GpuJpegDecoder(device)
        self.normalise = Normaliser(manifest.image_mean, manifest.image_std, device)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.seconds = {"nvjpeg": 0.0, "resize": 0.0}
        # nvjpeg: decoded on the device; cpu: pixels prepared on the CPU and uploaded;
        # nvjpeg_rejected: handed to nvJPEG, refused, sent through the CPU path instead.
        self.counts = {"nvjpeg": 0, "cpu": 0, "nvjpeg_rejected": 0}

    def _stream(self):
        import torch

        if self.dev.type != "cuda":
            return None
        if not hasattr(self._local, "stream"):
            self._local.stream = torch.cuda.Stream(self.dev)
        return self._local.stream

    def _host_pixels(self, n: int, capacity: int):
        """This thread's uint8 [n,S,S,3] staging area for CPU-prepared pixels: pinned on CUDA
        (one host copy, asynchronous upload), allocated once for a whole batch (`capacity`)
        and reused batch after batch: safe because __call__ waits for its stream."""
        import torch

        buf = getattr(self._local, "pixels", None)
        if buf is None or len(buf) < n:
            s = self.m.image_size
            buf = torch.empty((max(n, capacity), s, s, 3), dtype=torch.uint8, pin_memory=self.dev.type == "cuda")
            self._local.pixels = buf
        return buf[:n]

    def __call__(self, results: Sequence[ImageResult], spec: ImageSpec):
        import contextlib

        import torch

        from .gpu_images import resize_crop_batch, to_device

        s, n = self.m.image_size, len(results)
        results = list(results)
        errors: list[str | None] = [r.error for r in results]
        stream = self._stream()
        t0 = time.perf_counter()
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            out = torch.zeros((n, 3, s, s), dtype=torch.float32, device=self.dev)  # mean image
            jpeg = [i for i, r in enumerate(results) if r.status == "jpeg"]
            decoded, failed = self.decode([results[i].payload for i in jpeg]) if jpeg else ([], [])
            t1 = time.perf_counter()
            for j in failed:  # nvJPEG said no: the CPU path decodes it or names the error
                i = jpeg[j]
                results[i] = prepare_image(results[i].payload, "", _cpu_spec(spec))
                errors[i] = results[i].error
            good = [(jpeg[j], img) for j, img in enumerate(decoded) if img is not None]
            if good:
                resized = resize_crop_batch([img for _, img in good], s)
                out[to_device([i for i, _ in good], self.dev)] = self.normalise(resized)
            cpu = [i for i, r in enumerate(results) if r.status == "pixels"]
            if cpu:
                host = self._host_pixels(len(cpu), n)
                view = host.numpy()
                for j, i in enumerate(cpu):
                    view[j] = results[i].payload
                raw = host.to(self.dev, non_blocking=True) if self.dev.type == "cuda" else host
                out[to_device(cpu, self.dev)] = self.normalise(raw.permute(0, 3, 1, 2))
        if stream is not None:
            stream.synchronize()  # ORT reads `out` on its own stream; the staging buffer is free again
        with self._lock:
            self.seconds["nvjpeg"] += t1 - t0
            self.seconds["resize"] += time.perf_counter() - t1
            self.counts["nvjpeg"] += len(good)
            self.counts["cpu"] += len(cpu)
            self.counts["nvjpeg_rejected"] += len(failed)
        return out, errors
