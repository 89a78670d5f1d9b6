"""Tweet text decoding: MVSA .txt files mix valid UTF-8 (emoji) with stray cp1252/latin-1 bytes."""
from __future__ import annotations

import codecs
import re
from pathlib import Path

# Name of the codecs error handler; usable anywhere an `errors=` argument is accepted
# (bytes.decode, open, pandas.read_csv(encoding_errors=...)).
FALLBACK_ERRORS = "mmsa_cp1252_fallback"


def _byte_table() -> str:
    # One character per byte value: cp1252 where defined, latin-1 for the 5 holes (0x81, 0x8d, ...).
    chars = []
    for b in range(256):
        try:
            chars.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(bytes([b]).decode("latin-1"))
    return "".join(chars)


_BYTE_CHARS = _byte_table()


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    """Decode each byte the UTF-8 decoder rejected on its own, so the valid UTF-8 around it survives."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start:err.end]
    return "".join(_BYTE_CHARS[b] for b in bad), err.end


codecs.register_error(FALLBACK_ERRORS, _cp1252_fallback)

# C0 and C1 control characters (and DEL); ordinary whitespace is among them and also becomes a space.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Replace control characters with spaces, collapse whitespace runs, strip."""
    text = text.lstrip("\ufeff")
    return " ".join(_CONTROL.sub(" ", text).split())


def decode_text(raw: bytes) -> str:
    """Decode tweet bytes: UTF-8 first, per-byte cp1252/latin-1 fallback. Never raises."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    return clean_text(raw.decode("utf-8", errors=FALLBACK_ERRORS))


def read_text_file(path: str | Path) -> str:
    return decode_text(Path(path).read_bytes())
