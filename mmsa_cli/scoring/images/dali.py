"""The DALI image path of `mmsa score` on CUDA: a batch's JPEG bytes decoded by NVIDIA DALI on
the GPU's hardware JPEG engines (and CUDA), resized, cropped and normalised into the model's
input on the GPU, and handed to ONNX Runtime through IO binding, never copied to the host.

    JPEG bytes --fn.external_source--> fn.decoders.image(device="mixed", hw_decoder_load)
      --> fn.resize(crop window -> S x S, linear, antialiased) --> fn.crop_mirror_normalize
      (mean/std of the manifest, float32, CHW) --> copied into the batch's CUDA tensor

The crop window of every image is computed on the host from its JPEG header with the CPU
path's own geometry (contract/geometry.plan_resize): the S x S output samples exactly the
pixels the CPU path's resize-then-centre-crop samples. What differs from the CPU path:
  * the decoder (the hardware engine / nvJPEG vs libjpeg): about 1 grey level;
  * no DCT draft: the CPU path decodes a JPEG at 1/2, 1/4 or 1/8 scale when it is at least
    twice S and resizes from there; DALI decodes at full size and its antialiased linear
    filter spans the whole downscale. Both average the same area; pixels differ by a few
    grey levels, labels almost never (benchmarks/results, tests/test_dali_images.py).
Rows keep their order and their errors: a JPEG DALI cannot decode is prepared by the CPU path
(prepare_image), which decodes it or names its error; the batch never stops.

The same pipeline runs on the CPU (DALI's CPU operators, device_id None), which is how CI
tests it without a GPU. DALI is optional (`pip install mmsa-tweets[gpu]`); without it the scorer uses
the nvJPEG path of gpu.py.
"""
from __future__ import annotations

import struct
import time
from typing import Sequence

import numpy as np
import torch

from ...contract.geometry import plan_resize
from .gpu import GpuImages
from .prepare import DECODERS, ImageResult, ImageSpec, check_decoder, decode_on_cpu  # noqa: F401 (re-exported)

# Share of the JPEGs DALI sends to the hardware JPEG engines (the rest: CUDA decode). On the
# H200, bytes in through external_source: 0.65 gave 23,490 images/s, 1.0 24,230 vs 27,178 with
# its file reader (GPU.md); both engines and the SMs work at once below 1.
HW_DECODER_LOAD = 0.65
# DALI's own CPU threads per pipeline (JPEG parsing, Huffman decoding of the CUDA share); two
# prep threads own a pipeline each, the image workers only read files on the DALI path.
DALI_THREADS = 4
def dali_missing() -> str | None:
    """None when DALI imports, else why not (one line)."""
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.fn  # noqa: F401
    except Exception as exc:  # ImportError, or a library it cannot load
        return f"NVIDIA DALI is not usable here ({type(exc).__name__}: {exc}); install mmsa-tweets[gpu]"
    return None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None. A few bytes read, nothing decoded."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                     # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h) if w and h else None
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def crop_window(w: int, h: int, size: int) -> tuple[float, float, float, float]:
    """(y0, x0, y1, x1) in the full-size image: the region the CPU path's resize + centre crop
    turns into the S x S input (plan_resize, with the JPEG draft: its reduced image is this
    image at 1/k scale, so the window is the same area)."""
    _, _, _, new_w, new_h, left, top = plan_resize(w, h, size, draft=True)
    sx, sy = w / new_w, h / new_h
    return top * sy, left * sx, (top + size) * sy, (left + size) * sx


class DaliPipeline:
    """One DALI pipeline (not thread-safe: one per thread): encoded JPEGs and their crop
    windows in, normalised float32 [n,3,S,S] out (a TensorList on the pipeline's device).
    device_id None runs DALI's CPU operators (tests); otherwise the mixed decoder on that GPU."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], max_batch: int,
                 device_id: int | None, hw_decoder_load: float = HW_DECODER_LOAD, threads: int = DALI_THREADS):
        from nvidia.dali import fn, pipeline_def, types

        self.max_batch = max_batch
        decode_args = ({"device": "cpu"} if device_id is None
                       else {"device": "mixed", "hw_decoder_load": hw_decoder_load})

        def graph():
            jpegs = fn.external_source(name="jpegs", dtype=types.UINT8, ndim=1)
            roi_start = fn.external_source(name="roi_start", dtype=types.FLOAT, ndim=1)
            roi_end = fn.external_source(name="roi_end", dtype=types.FLOAT, ndim=1)
            images = fn.decoders.image(jpegs, output_type=types.RGB, adjust_orientation=False, **decode_args)
            # size and roi are (height, width): the layout's spatial order (HWC)
            images = fn.resize(images, size=(size, size), roi_start=roi_start, roi_end=roi_end, roi_relative=False,
                               interp_type=types.INTERP_LINEAR, antialias=True)
            return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                            mean=[255.0 * m for m in mean], std=[255.0 * s for s in std])

        # Synchronous execution: each call feeds one batch and takes its result (no prefetch
        # across calls); overlap comes from the two prep threads and the model's own stream.
        # Should a DALI build refuse the synchronous executor, its default one with a queue of
        # one batch does the same here.
        common = dict(batch_size=max_batch, num_threads=threads, device_id=device_id, prefetch_queue_depth=1)
        try:
            self.pipe = pipeline_def(graph, exec_async=False, exec_pipelined=False, **common)()
            self.pipe.build()
        except Exception:  # noqa: BLE001
            self.pipe = pipeline_def(graph, **common)()
            self.pipe.build()

    def __call__(self, blobs: Sequence[np.ndarray], windows: np.ndarray):
        self.pipe.feed_input("jpegs", list(blobs))
        self.pipe.feed_input("roi_start", [w[:2].copy() for w in windows])
        self.pipe.feed_input("roi_end", [w[2:].copy() for w in windows])
        (out,) = self.pipe.run()
        return out


class DaliImages(GpuImages):
    """GpuImages' interface and CPU-pixel upload, with DALI decoding the JPEG rows:
    __call__(results, spec) -> (normalised [n,3,S,S] tensor on `device`, per-row errors).
    `seconds`: host time in DALI vs the rest; `counts`: images DALI decoded, images prepared on
    the CPU, and JPEGs DALI refused (then CPU-prepared, so also in cpu). On a CPU device it runs
    DALI's CPU operators."""

    name = "dali"
    seconds_keys = ("dali", "rest")

    def __init__(self, manifest, device: torch.device, max_batch: int = 256,
                 hw_decoder_load: float | None = None, threads: int = DALI_THREADS):
        super().__init__(manifest, device)
        self.max_batch, self.threads = max_batch, threads
        # None: the module's HW_DECODER_LOAD when built (benchmarks set it to compare values)
        self.hw_decoder_load = HW_DECODER_LOAD if hw_decoder_load is None else hw_decoder_load
        self._pool: list[DaliPipeline] = []

    def _take(self) -> DaliPipeline:
        """A built pipeline for this call (pipelines are reused across calls and runs, never
        shared by two threads at once)."""
        with self._lock:
            if self._pool:
                return self._pool.pop()
        device_id = None if self.dev.type != "cuda" else (self.dev.index or 0)
        return DaliPipeline(self.m.image_size, self.m.image_mean, self.m.image_std, self.max_batch, device_id,
                            self.hw_decoder_load, self.threads)

    def _give(self, pipe: DaliPipeline) -> None:
        with self._lock:
            self._pool.append(pipe)

    def warm_up(self, pipelines: int = 2) -> None:
        """Build `pipelines` pipelines (one per prep thread) and decode one small JPEG with each,
        so the decoders' start-up cost is paid when the scorer loads; raises if DALI cannot run."""
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (120, 60, 30)).save(buf, "JPEG")
        built = [self._take() for _ in range(pipelines)]
        for pipe in built:
            self._into_torch(pipe([np.frombuffer(buf.getvalue(), np.uint8)],
                                  np.asarray([crop_window(64, 48, self.m.image_size)], np.float32)))
        for pipe in built:
            self._give(pipe)

    def _into_torch(self, out) -> torch.Tensor:
        """DALI's output -> a torch tensor of our own (DALI reuses its buffers on the next run),
        copied on this thread's stream, after DALI's work."""
        if self.dev.type != "cuda":
            return torch.from_numpy(out.as_array())
        from nvidia.dali.plugin.pytorch import feed_ndarray

        dense = out.as_tensor()
        target = torch.empty(dense.shape(), dtype=torch.float32, device=self.dev)
        feed_ndarray(dense, target, cuda_stream=torch.cuda.current_stream(self.dev))
        return target

    def decode_jpegs(self, blobs: Sequence[bytes], windows: np.ndarray) -> tuple[torch.Tensor | None, list[int]]:
        """Decode + resize + normalise; returns the pixels of the images that worked (in order)
        and the indexes of those DALI refused. One bad file fails DALI's whole batch: that
        pipeline is dropped and the batch retried one image at a time to isolate it."""
        arrays = [np.frombuffer(b, np.uint8) for b in blobs]
        pipe = self._take()
        try:
            step = self.max_batch
            parts = [self._into_torch(pipe(arrays[i:i + step], windows[i:i + step])) for i in range(0, len(arrays), step)]
            self._give(pipe)
            return (torch.cat(parts) if len(parts) > 1 else parts[0]), []
        except Exception:  # noqa: BLE001  (DALI raises RuntimeError subclasses; isolate the bad file)
            pass
        good, failed = [], []
        for i, a in enumerate(arrays):
            pipe = self._take()
            try:
                good.append(self._into_torch(pipe([a], windows[i:i + 1])))
                self._give(pipe)
            except Exception:  # noqa: BLE001  (a failed pipeline is not reused)
                failed.append(i)
        return (torch.cat(good) if good else None), failed

    def _decode_rows(self, results: list[ImageResult], jpeg: list[int]):
        """GpuImages' hook: the JPEG rows through DALI (decode, crop window, resize, normalise);
        files without a readable JPEG header are refused before DALI sees them."""
        s = self.m.image_size
        sizes = [jpeg_size(results[i].payload) for i in jpeg]
        rows = [i for i, size in zip(jpeg, sizes) if size]
        rejected = [i for i, size in zip(jpeg, sizes) if not size]
        windows = np.asarray([crop_window(*size, s) for size in sizes if size], np.float32)
        pixels, failed = self.decode_jpegs([results[i].payload for i in rows], windows) if rows else (None, [])
        t1 = time.perf_counter()
        refused = {rows[j] for j in failed}
        return [i for i in rows if i not in refused], pixels, rejected + sorted(refused), t1


def gpu_image_path(requested: str, manifest, device: torch.device, batch_size: int,
                   warn) -> tuple[str, GpuImages]:
    """The image path of a CUDA scorer: ("dali" | "nvjpeg" | "cpu", its GpuImages).
    auto: DALI when it imports and starts here, else nvJPEG (a start-up failure is warned
    about through `warn`, a missing DALI is not: it is an optional extra). cpu: every image is
    prepared by the CPU workers and only uploaded. dali when DALI cannot run: ConfigError."""
    from ...errors import ConfigError

    choice = check_decoder(requested)
    if choice in ("auto", "dali"):
        missing = dali_missing()
        if missing is None:
            try:
                images = DaliImages(manifest, device, max_batch=batch_size)
                images.warm_up()
                return "dali", images
            except Exception as exc:  # noqa: BLE001  (a driver or library DALI cannot use)
                missing = f"NVIDIA DALI failed to start ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                if choice == "auto":
                    warn(f"image decoder auto: {missing}; using nvJPEG (torchvision) instead")
        if choice == "dali":
            raise ConfigError(f"image_decoder 'dali': {missing}")
    return ("cpu" if choice == "cpu" else "nvjpeg"), GpuImages(manifest, device)
