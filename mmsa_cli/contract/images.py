"""Images as every stage reads them: bytes read safely (limits, never a hang), decoded to RGB,
and prepared on the CPU into the model's pixels, or an error row naming its kind.

    read      a local path under a root, or encoded bytes -> bytes (ImageLoadError: missing,
              empty, not_image, too_large, outside_root), regular files only, non-blocking
    decode    bytes -> RGB (EXIF orientation, every mode, decompression bombs refused)
    prepare   -> ImageResult: uint8 [S,S,3] pixels (geometry.py), JPEG bytes left for a GPU
              decoder (when the caller's hook keeps them), or "<kind>: <message>"

Training, export parity and both scoring engines prepare images through here; scoring adds
remote reads and the GPU paths (mmsa_cli/scoring/images/) around prepare_image's hooks.
"""
from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MmsaError
from .geometry import resize_crop
from .inputs import ModelInputs

IMAGE_ERROR_KINDS = ("missing", "empty", "not_image", "corrupt", "too_large", "unsupported", "outside_root")
MAX_IMAGE_PIXELS = 40_000_000
# Image files larger than this are refused before a byte is read (`too_large`): a 1 GiB file
# named .jpg must not be read whole into a worker. 50 MB is far above any tweet photo
# (Twitter caps uploads at 5 MB); `mmsa score --max-image-bytes` changes it.
MAX_IMAGE_BYTES = 50_000_000
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255)


class ImageLoadError(MmsaError):
    """One image cannot be used; `kind` (see IMAGE_ERROR_KINDS) lets callers count failures per cause."""

    def __init__(self, kind: str, message: str):
        if kind not in IMAGE_ERROR_KINDS:
            raise ValueError(f"unknown image error kind {kind!r}; expected one of {', '.join(IMAGE_ERROR_KINDS)}")
        super().__init__(message)
        self.kind = kind


def read_image_bytes(source: str | Path | bytes, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[bytes, str]:
    """The raw bytes and a name for messages, or ImageLoadError (missing, empty, not a
    regular file, over max_bytes). Only regular files are read, and the read never blocks:
    the file is opened non-blocking and checked (type, size) on the open descriptor before
    any byte is read, so a FIFO, socket, device or folder named like an image is an error
    row, never a hang."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<image bytes>"
        if len(data) > max_bytes:
            raise ImageLoadError("too_large", f"image bytes are {len(data)} bytes; limit is {max_bytes} bytes")
    else:
        name = str(Path(source))
        data = _read_regular_file(name, max_bytes)
    if not data:
        raise ImageLoadError("empty", f"image {name} is empty (0 bytes)")
    return data, name


def _read_regular_file(name: str, max_bytes: int) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageLoadError("missing", f"image {name} does not exist") from None
    except OSError as e:  # permissions, broken links, I/O errors
        raise ImageLoadError("missing", f"image {name} cannot be read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageLoadError("not_image", f"image {name} is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError("not_image", f"image {name} is a {_file_type(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise ImageLoadError("too_large", f"image {name} is {st.st_size} bytes; limit is {max_bytes} bytes")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since fstat
    except OSError as e:
        raise ImageLoadError("missing", f"image {name} cannot be read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageLoadError("too_large", f"image {name} is over {max_bytes} bytes; limit is {max_bytes} bytes")
    return data


def _file_type(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return what
    return "special file"


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; alpha is composited over white, 16/32-bit grey scaled to 8 bit."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit containers use the full 0..65535 range; float images are assumed to be 0..255.
        scale = 1.0 if mode == "F" else 255.0 / 65535.0
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def load_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    draft_size: int | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Image.Image:
    """Fully decoded RGB image (first frame, EXIF orientation applied) or ImageLoadError."""
    data, name = read_image_bytes(source, max_bytes)
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise ImageLoadError("not_image", f"{name} is not a recognised image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError("too_large", f"image {name} is too large: {e}; limit is {max_pixels} pixels") from None
    except Exception as e:  # broken headers raise all sorts (SyntaxError, struct.error, ...)
        raise ImageLoadError("corrupt", f"image {name} has a corrupt header: {e}") from None

    # Check the claimed size before decoding so a decompression bomb never allocates.
    width, height = img.size
    if width * height > max_pixels:
        raise ImageLoadError(
            "too_large", f"image {name} is {width}x{height} = {width * height} pixels; limit is {max_pixels} pixels"
        )
    if width <= 0 or height <= 0:
        raise ImageLoadError("corrupt", f"image {name} claims an invalid size {width}x{height}")

    try:
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))  # DCT-domain downscale, keeps >= draft_size
        img.load()  # animated files: frame 0 is the current frame after open
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError("too_large", f"image {name} is too large: {e}; limit is {max_pixels} pixels") from None
    except Exception as e:  # truncated/corrupt data: OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageLoadError("corrupt", f"image {name} is truncated or corrupt: {e}") from None

    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in range(2, 9):
            img = ImageOps.exif_transpose(img)
    except Exception:
        pass  # malformed EXIF: keep the pixels as stored rather than drop the image

    try:
        return to_rgb(img)
    except Exception as e:
        raise ImageLoadError("unsupported", f"image {name} has unsupported mode {img.mode!r}: {e}") from None


def resolve_image_path(value: str, root: Path, *, allow_outside: bool = False) -> Path:
    """Join a table/manifest image path onto root; refuse paths that escape root (.., absolute, symlinks)."""
    if not str(value).strip():
        raise ImageLoadError("missing", f"empty image path (relative to {root})")
    root = Path(root).resolve()
    path = (root / Path(value)).resolve()  # an absolute value replaces root
    if not allow_outside and not path.is_relative_to(root):
        raise ImageLoadError(
            "outside_root", f"image path {value!r} resolves to {path}, outside the image root {root}"
        )
    return path


# ---------------------------------------------------------------------------- CPU preparation

@dataclass(frozen=True)
class ImageSpec:
    size: int                                   # S (manifest image_size)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_pixels: int = MAX_IMAGE_PIXELS          # decompression-bomb limit
    max_bytes: int = MAX_IMAGE_BYTES            # larger files are refused before reading (too_large)
    allow_outside_root: bool = False
    gpu_jpeg: bool = False                      # hand plain JPEGs to the GPU decoder as bytes


    @classmethod
    def of(cls, inputs: ModelInputs, **limits) -> "ImageSpec":
        """The spec for a model's inputs (its geometry), with the caller's limits and switches."""
        return cls(inputs.image_size, inputs.image_mean, inputs.image_std, **limits)


class ImageResult(NamedTuple):
    status: str                                 # "pixels", "jpeg" or "error"
    payload: object                             # uint8 [S,S,3], bytes, or None
    error: str | None                           # "<kind>: <message>" when status == "error"


# An image task is (value, root): value is a path string (joined onto root, a local folder or
# a URI prefix such as s3://bucket/images), raw bytes, or None.
ImageTask = tuple[object, str]
Reader = Callable[[object, str, ImageSpec], bytes]


def read_local_image(value: object, root: str, spec: ImageSpec) -> bytes:
    """The image's bytes, or ImageLoadError (missing, empty, outside_root...)."""
    if value is None:
        raise ImageLoadError("missing", "no image (the image cell is null)")
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not len(value):
            raise ImageLoadError("empty", "image bytes are empty")
        return read_image_bytes(value, spec.max_bytes)[0]
    path = resolve_image_path(str(value).strip(), Path(root), allow_outside=spec.allow_outside_root)
    return read_image_bytes(path, spec.max_bytes)[0]


def prepare_image(value: object, root: str, spec: ImageSpec, *, read: Reader = read_local_image,
                  keep_jpeg: Callable[[bytes], bool] | None = None) -> ImageResult:
    """One image -> pixels, its JPEG bytes (when keep_jpeg says so: a GPU decoder takes them) or
    an error row, never an exception. `read` fetches the bytes (scoring's reads object storage too)."""
    try:
        data = read(value, root, spec)
        if keep_jpeg is not None and keep_jpeg(data):
            return ImageResult("jpeg", data, None)
        img = load_image(data, max_pixels=spec.max_pixels, draft_size=spec.size, max_bytes=spec.max_bytes)
        return ImageResult("pixels", resize_crop(img, spec.size), None)
    except ImageLoadError as exc:
        return ImageResult("error", None, f"{exc.kind}: {_name_source(str(exc), value)}")
    except Exception as exc:  # never let one row stop the job; PIL raises many types
        return ImageResult("error", None, f"corrupt: image {value!r} cannot be decoded: {type(exc).__name__}: {exc}")


def _name_source(message: str, value: object) -> str:
    # load_image(bytes) says "<image bytes>"; name the row's path instead.
    if isinstance(value, str) and "<image bytes>" in message:
        return message.replace("<image bytes>", repr(value))
    return message
