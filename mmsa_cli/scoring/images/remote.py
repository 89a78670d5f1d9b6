"""Images on object storage (`--image-root s3://bucket/images`, or URIs in the image column),
read with the local engine's bad-row policy: a missing object is `missing`, a key escaping the
root prefix is `outside_root`, an object over the byte limit is `too_large` (refused before it
is downloaded).
"""
from __future__ import annotations

import functools
import posixpath

from ...contract.images import ImageLoadError
from ..errors import InputError
from ...io.storage import is_uri, open_fs, scheme_of


class RemoteImages:
    """Reads image bytes under a root prefix of one object store (the root is a URI)."""

    def __init__(self, root: str):
        self.root_uri = root.rstrip("/")
        self.scheme = scheme_of(root)
        self.fs, path = open_fs(root)
        self.root = path.rstrip("/")

    def resolve(self, value: str, allow_outside: bool) -> str:
        """The object's path in the store; ImageLoadError for empty or root-escaping keys."""
        value = value.strip()
        if not value:
            raise ImageLoadError("missing", f"empty image path (relative to {self.root_uri})")
        if is_uri(value):
            if scheme_of(value) != self.scheme:
                raise ImageLoadError("outside_root", f"image path {value!r} is not on {self.scheme} "
                                                     f"(the image root is {self.root_uri})")
            path = posixpath.normpath(value.split("://", 1)[1])
        else:
            path = posixpath.normpath(posixpath.join(self.root, value))
        if not allow_outside and not (path + "/").startswith(self.root + "/"):
            raise ImageLoadError("outside_root", f"image path {value!r} resolves to {self.scheme}{path}, "
                                                 f"outside the image root {self.root_uri}")
        return path

    def read(self, value: str, allow_outside: bool, max_bytes: int) -> bytes:
        path = self.resolve(value, allow_outside)
        name = f"{self.scheme}{path}"
        try:
            with self.fs.open_input_file(path) as f:  # the object's size comes with the open
                if f.size() > max_bytes:
                    raise ImageLoadError("too_large", f"image {name} is {f.size()} bytes; limit is {max_bytes} bytes")
                data = f.readall()
        except FileNotFoundError:
            raise ImageLoadError("missing", f"image {name} does not exist") from None
        except OSError as exc:
            raise ImageLoadError("missing", f"image {name} cannot be read: {exc}") from None
        if not data:
            raise ImageLoadError("empty", f"image {name} is empty (0 bytes)")
        return data


@functools.lru_cache(maxsize=64)
def remote_images(root: str) -> RemoteImages:
    """One RemoteImages per root and process (image workers, Ray tasks): the store's client is
    made once, not per image."""
    return RemoteImages(root)


def read_remote_image(value: str, root: str, allow_outside: bool, max_bytes: int) -> bytes:
    """The bytes of an image on object storage: `value` relative to a URI root, or a URI
    itself (outside a local root, so accepted only with allow_outside)."""
    if not is_uri(root):
        value = value.strip()
        if not allow_outside:
            raise ImageLoadError("outside_root", f"image path {value!r} is on object storage, outside the image "
                                                 f"root {root}")
        scheme, path = value.split("://", 1)
        root, allow_outside = f"{scheme}://{path.split('/', 1)[0]}", True  # its bucket: one client per store
    try:
        store = remote_images(root)
    except InputError as exc:  # an unknown scheme or bucket, no credentials: this row's image is unreachable
        raise ImageLoadError("missing", str(exc)) from None
    return store.read(value, allow_outside, max_bytes)
