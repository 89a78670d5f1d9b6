"""Image preparation for scoring: the contract's (mmsa_cli/contract/images.py), plus images
on object storage and the hand-over of JPEGs to a GPU decoder.

Image preparation runs in worker processes (workers.py: this module imports neither torch,
onnxruntime nor pyarrow, so workers start fast and small). Each image becomes exactly one of:
  pixels  uint8 [S,S,3], resized and centre-cropped (mmsa_cli/contract/geometry.py)
  jpeg    the file's bytes, for the GPU decoder (only plain baseline RGB JPEGs, see _gpu_ready,
          and of those only the batch's `gpu_share`, see GpuSplit: the others become pixels
          here, so CPU workers and nvJPEG decode in parallel)
  error   "<kind>: <message>" with kind from IMAGE_ERROR_KINDS
Normalisation happens in the consumer on whole batches (4x less data between processes).
"""
from __future__ import annotations

import functools
import io
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Sequence

from PIL import Image

from ...contract import images as contract
from ...contract.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageResult, ImageSpec, ImageTask  # noqa: F401
from ..options import DECODERS, check_decoder  # noqa: F401  (their old home: this module)
from .remote import read_remote_image
from ...io.storage import is_uri

_EXIF_ORIENTATION = 0x0112


def _read(value: object, root: str, spec: ImageSpec) -> bytes:
    """The image's bytes, from object storage (a URI root or value) or the local disk."""
    if isinstance(value, str) and (is_uri(root) or is_uri(value)):
        return read_remote_image(value, root, spec.allow_outside_root, spec.max_bytes)
    return contract.read_local_image(value, root, spec)


def _gpu_ready(data: bytes, spec: ImageSpec) -> bool:
    """Plain baseline 3-channel JPEGs go to nvJPEG; everything else (grey, CMYK, progressive,
    EXIF-rotated, truncated, huge) takes the CPU path, which also names the error kinds."""
    if not data.startswith(b"\xff\xd8") or not data.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
        return False
    try:
        img = Image.open(io.BytesIO(data))  # header only
        w, h = img.size
        if (img.format != "JPEG" or img.mode != "RGB" or img.info.get("progressive") or img.info.get("progression")
                or w * h > spec.max_pixels or min(w, h) < 1 or min(w, h) // spec.size >= 16):
            return False
        return img.getexif().get(_EXIF_ORIENTATION, 1) == 1
    except Exception:
        return False


class GpuSplit:
    """Which of a batch's nvJPEG-ready JPEGs go to the GPU, the rest being decoded on the CPU.

    take() is asked once per ready JPEG, in row order. The k-th one (k counted from `start`)
    goes to the GPU iff floor((k+1)*share + 1/2) > floor(k*share + 1/2): round-half-up
    (share * n) of n, spread evenly (share 0.5: every other one). A batch cut into worker
    chunks gives each chunk start = its first row's position in the batch, so when every
    image is ready the chunks together pick exactly what one call over the batch would.
    """

    def __init__(self, share: float = 1.0, start: int = 0):
        self.share, self.next = float(share), int(start)

    def take(self) -> bool:
        k, s = self.next, self.share
        self.next += 1
        return math.floor((k + 1) * s + 0.5) > math.floor(k * s + 0.5)


# Objects read at once per process: a GET costs tens of milliseconds of waiting on a real
# store, so images on object storage are fetched ahead of decoding, this many in flight.
REMOTE_READS_IN_FLIGHT = 16


@functools.cache
def _remote_reader() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(REMOTE_READS_IN_FLIGHT, thread_name_prefix="mmsa-object-read")


def fetch_remote(tasks: Sequence[ImageTask], spec: ImageSpec) -> dict[int, Future]:
    """Start reading the tasks' images that live on object storage (a URI root or value):
    {task index: Future of the bytes (or of the ImageLoadError)}; local images are not in it."""
    return {i: _remote_reader().submit(_read, value, root, spec) for i, (value, root) in enumerate(tasks)
            if isinstance(value, str) and value.strip() and (is_uri(root or "") or is_uri(value))}


def prepare_image(value: object, root: str, spec: ImageSpec, split: GpuSplit | None = None,
                  fetched: Future | None = None) -> ImageResult:
    """One image -> pixels, JPEG bytes for the GPU (spec.gpu_jpeg, a ready JPEG, and `split`,
    if given, takes it) or an error. `fetched`: its bytes already being read (fetch_remote)."""
    read = (lambda *_: fetched.result()) if fetched is not None else _read
    keep = ((lambda data: _gpu_ready(data, spec) and (split is None or split.take())) if spec.gpu_jpeg else None)
    return contract.prepare_image(value, root, spec, read=read, keep_jpeg=keep)


def decode_on_cpu(data: bytes, spec: ImageSpec) -> ImageResult:
    """JPEG bytes a worker meant for a GPU decoder, prepared on the CPU instead (a CPU run, or
    a file nvJPEG/DALI refused): pixels, or the error that names why not."""
    return contract.prepare_image(data, "", replace(spec, gpu_jpeg=False))


def prepare_images(tasks: Sequence[ImageTask], spec: ImageSpec, gpu_share: float = 1.0,
                   start: int = 0) -> tuple[list[ImageResult], float]:
    """Worker entry point: one result per task, and the seconds spent (for stage timing).
    With spec.gpu_jpeg, `gpu_share` of the ready JPEGs come back as bytes for nvJPEG and the
    rest as pixels (GpuSplit; `start`: the tasks' first position in their batch)."""
    t0 = time.perf_counter()
    split = GpuSplit(gpu_share, start) if spec.gpu_jpeg else None
    fetched = fetch_remote(tasks, spec)
    results = [prepare_image(value, root, spec, split, fetched.get(i)) for i, (value, root) in enumerate(tasks)]
    return results, time.perf_counter() - t0
