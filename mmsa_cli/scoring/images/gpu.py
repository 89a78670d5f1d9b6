"""Batched JPEG decode (nvJPEG) and resize + centre crop on the GPU.

Resize is one separable linear map per image, out = Wy @ X @ Wx^T, where the weight matrices
reproduce the CPU path exactly up to the JPEG decoder: PIL's `draft` (a power-of-2 DCT
downscale, emulated by a box average), then PIL's BILINEAR resize (a triangle filter whose
support grows with the downscale factor, i.e. antialiased at any factor), then the centre
crop (rows of the matrices). Images of a batch are padded into one tensor (in groups of
similar size, bounded in memory) so each group is two batched matmuls: no per-image
interpolate loop. Works on any torch device; tests run it on the CPU.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Sequence

import numpy as np
import torch

from ...contract.geometry import plan_resize
from .prepare import ImageResult, ImageSpec, decode_on_cpu

_GROUP_ELEMENTS = 1 << 26  # padded pixels x channels per group: 256 MiB of float32


def axis_weights(length: torch.Tensor, k: torch.Tensor, reduced: torch.Tensor, new: torch.Tensor,
                 offset: torch.Tensor, size: int, padded: int, r_max: int) -> torch.Tensor:
    """[n, size, padded] weights for one axis of n images (tensors [n] int64; r_max = max(reduced)
    as a Python int, so nothing here waits for the GPU).

    Row j gives output pixel j of the crop as a weighted sum of input pixels: PIL's bilinear
    coefficients from the reduced image, spread evenly over each k-pixel draft block.
    """
    dev = length.device
    scale = reduced.double() / new.double()                                     # input px per output px
    fscale = scale.clamp(min=1.0)                                               # PIL's filterscale
    j = torch.arange(size, device=dev, dtype=torch.float64)
    center = (j[None, :] + offset[:, None].double() + 0.5) * scale[:, None]    # [n,S] in reduced px
    y = torch.arange(r_max, device=dev, dtype=torch.float64)
    t = (y[None, None, :] + 0.5 - center[:, :, None]) / fscale[:, None, None]
    w = (1.0 - t.abs()).clamp(min=0.0) * (y[None, None, :] < reduced[:, None, None])
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)                           # [n,S,R]
    x = torch.arange(padded, device=dev)
    block = x[None, :] // k[:, None]                                            # [n,P]
    count = (length[:, None] - block * k[:, None]).clamp(max=k[:, None]).clamp(min=1)
    valid = x[None, :] < length[:, None]
    spread = valid.double() / count.double()                                    # [n,P]
    full = w.gather(2, block.clamp(max=r_max - 1)[:, None, :].expand(-1, size, -1))
    return (full * spread[:, None, :]).float()                                  # [n,S,P]


def to_device(values, device: torch.device, dtype=torch.int64) -> torch.Tensor:
    """Small host data -> device without a stream sync (pinned, non-blocking copy)."""
    t = torch.tensor(values, dtype=dtype)
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def resize_crop_batch(images: Sequence[torch.Tensor], size: int, *, draft: bool = True) -> torch.Tensor:
    """uint8 [3,h_i,w_i] images (one device) -> float32 [n,3,S,S], values rounded to 0..255
    like the uint8 output of the CPU path. No host-device sync: sizes are planned on the host."""
    n = len(images)
    if n == 0:
        return torch.zeros((0, 3, size, size))
    dev = images[0].device
    out = torch.empty((n, 3, size, size), dtype=torch.float32, device=dev)
    shapes = [(int(im.shape[1]), int(im.shape[2])) for im in images]
    plans = [plan_resize(w, h, size, draft) for h, w in shapes]
    # Similar sizes together, then groups bounded in padded memory.
    order = sorted(range(n), key=lambda i: shapes[i])
    group: list[int] = []
    max_h = max_w = 0
    for i in order + [-1]:
        if i >= 0:
            h, w = shapes[i]
            if not group or (len(group) + 1) * 3 * max(max_h, h) * max(max_w, w) <= _GROUP_ELEMENTS:
                group.append(i)
                max_h, max_w = max(max_h, h), max(max_w, w)
                continue
        _resize_group(images, shapes, plans, group, max_h, max_w, size, out)
        if i >= 0:
            group, (max_h, max_w) = [i], shapes[i]
    return out


def _resize_group(images, shapes, plans, group: list[int], max_h: int, max_w: int, size: int,
                  out: torch.Tensor) -> None:
    dev = out.device
    padded = torch.zeros((len(group), 3, max_h, max_w), dtype=torch.uint8, device=dev)
    for slot, i in enumerate(group):  # copies only; the arithmetic below is batched
        h, w = shapes[i]
        padded[slot, :, :h, :w] = images[i]
    host = [[*plans[i], *shapes[i], i] for i in group]                          # k rw rh nw nh left top h w index
    cols = to_device(host, dev).unbind(1)
    k, rw, rh, nw, nh, left, top, h, w, index = cols
    wx = axis_weights(w, k, rw, nw, left, size, max_w, max(r[1] for r in host))  # [g,S,W]
    wy = axis_weights(h, k, rh, nh, top, size, max_h, max(r[2] for r in host))   # [g,S,H]
    x = padded.float()                                                          # [g,3,H,W]
    with _tf32(dev):
        tmp = torch.matmul(x, wx.transpose(1, 2)[:, None])                      # [g,3,H,S]
        res = torch.matmul(wy[:, None], tmp)                                    # [g,3,S,S]
    out[index] = res.round_().clamp_(0, 255)


@contextlib.contextmanager
def _tf32(device: torch.device):
    """TF32 tensor cores for the resize products on CUDA: 8x the fp32 rate; pixel values are
    integers (exact in TF32) and the weights' 1e-3 relative rounding moves results by well under
    one grey level before the final rounding. Restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class Normaliser:
    """(x / 255 - mean) / std with the constants made once per device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1).to(device)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return ((pixels.float() / 255.0) - self.mean) / self.std


def normalise_batch(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """float 0..255 [n,3,S,S] -> normalised float32, the same arithmetic as the CPU path."""
    return Normaliser(mean, std, pixels.device)(pixels)


class GpuJpegDecoder:
    """Batched nvJPEG decode through torchvision; a file nvJPEG rejects is reported by index
    so the caller can send it to the CPU path (which names the error or decodes it)."""

    def __init__(self, device: torch.device):
        from torchvision.io import ImageReadMode, decode_jpeg

        self.device, self._decode, self._mode = device, decode_jpeg, ImageReadMode.RGB

    def __call__(self, blobs: Sequence[bytes]) -> tuple[list[torch.Tensor | None], list[int]]:
        data = [torch.from_numpy(np.frombuffer(b, np.uint8).copy()) for b in blobs]
        try:
            return list(self._decode(data, mode=self._mode, device=self.device)), []
        except RuntimeError:  # one bad file fails the batch call: isolate it
            decoded: list[torch.Tensor | None] = []
            failed: list[int] = []
            for i, d in enumerate(data):
                try:
                    decoded.append(self._decode(d, mode=self._mode, device=self.device))
                except RuntimeError:
                    decoded.append(None)
                    failed.append(i)
            return decoded, failed


class GpuImages:
    """JPEG bytes -> nvJPEG -> batched resize; CPU-prepared pixels uploaded; one normalised
    tensor per batch, made on the calling thread's own CUDA stream so that several prep
    threads and the model overlap. A batch may mix both kinds in any order (the pipeline's
    gpu_decode_share): each row lands at its own index. Any torch device works (tests run it
    on the CPU, where torchvision decodes with libjpeg). `seconds` splits host time into
    decode and the rest; `counts` says how many images took each way."""

    name = "nvjpeg"
    seconds_keys = ("nvjpeg", "resize")

    def __init__(self, manifest, device):
        self.m, self.dev = manifest, device
        self.decode = GpuJpegDecoder(device)
        self.normalise = Normaliser(manifest.image_mean, manifest.image_std, device)
        self._local = threading.local()
        self._lock = threading.Lock()
        # host time in the decoder call, then in the rest (resize, CPU fallback, upload)
        self.seconds = dict.fromkeys(self.seconds_keys, 0.0)
        # <name>: decoded on the device; cpu: pixels prepared on the CPU and uploaded;
        # <name>_rejected: handed to the GPU decoder, refused, sent through the CPU path instead.
        self.counts = {self.name: 0, "cpu": 0, f"{self.name}_rejected": 0}

    def _stream(self):
        if self.dev.type != "cuda":
            return None
        if not hasattr(self._local, "stream"):
            self._local.stream = torch.cuda.Stream(self.dev)
        return self._local.stream

    def _host_pixels(self, n: int, capacity: int):
        """This thread's uint8 [n,S,S,3] staging area for CPU-prepared pixels: pinned on CUDA
        (one host copy, asynchronous upload), allocated once for a whole batch (`capacity`)
        and reused batch after batch: safe because __call__ waits for its stream."""
        buf = getattr(self._local, "pixels", None)
        if buf is None or len(buf) < n:
            s = self.m.image_size
            buf = torch.empty((max(n, capacity), s, s, 3), dtype=torch.uint8, pin_memory=self.dev.type == "cuda")
            self._local.pixels = buf
        return buf[:n]

    def _upload(self, results: list[ImageResult], cpu: list[int], out: torch.Tensor, n: int) -> None:
        """CPU-prepared pixels of rows `cpu` -> normalised into `out` (on the current stream)."""
        host = self._host_pixels(len(cpu), n)
        view = host.numpy()
        for j, i in enumerate(cpu):
            view[j] = results[i].payload
        raw = host.to(self.dev, non_blocking=True) if self.dev.type == "cuda" else host
        out[to_device(cpu, self.dev)] = self.normalise(raw.permute(0, 3, 1, 2))

    def __call__(self, results: Sequence[ImageResult], spec: ImageSpec):
        s, n = self.m.image_size, len(results)
        results = list(results)
        errors: list[str | None] = [r.error for r in results]
        stream = self._stream()
        t0 = time.perf_counter()
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            out = torch.zeros((n, 3, s, s), dtype=torch.float32, device=self.dev)  # mean image
            jpeg = [i for i, r in enumerate(results) if r.status == "jpeg"]
            good, pixels, rejected, t1 = self._decode_rows(results, jpeg) if jpeg else ([], None, [], time.perf_counter())
            for i in rejected:  # the GPU decoder said no: the CPU path decodes it or names the error
                results[i] = decode_on_cpu(results[i].payload, spec)
                errors[i] = results[i].error
            if good:
                out[to_device(good, self.dev)] = pixels
            cpu = [i for i, r in enumerate(results) if r.status == "pixels"]
            if cpu:
                self._upload(results, cpu, out, n)
        if stream is not None:
            stream.synchronize()  # ORT reads `out` on its own stream; the staging buffer is free again
        decode_key, rest_key = self.seconds_keys
        with self._lock:
            self.seconds[decode_key] += t1 - t0
            self.seconds[rest_key] += time.perf_counter() - t1
            self.counts[self.name] += len(good)
            self.counts["cpu"] += len(cpu)
            self.counts[f"{self.name}_rejected"] += len(rejected)
        return out, errors

    def _decode_rows(self, results: list[ImageResult], jpeg: list[int]):
        """The JPEG rows on the GPU: (rows decoded, their normalised pixels [k,3,S,S], rows
        refused, the time the decoder call ended)."""
        decoded, failed = self.decode([results[i].payload for i in jpeg])
        t1 = time.perf_counter()
        good = [(jpeg[j], img) for j, img in enumerate(decoded) if img is not None]
        pixels = self.normalise(resize_crop_batch([img for _, img in good], self.m.image_size)) if good else None
        return [i for i, _ in good], pixels, [jpeg[j] for j in failed], t1
