"""Tweet text decoding: UTF-8 first, then the dataset's legacy encoding.

MVSA-Single's .txt files are UTF-8 except 1,061 of 4,511, which are GBK (saved through a
Chinese Windows locale: "…" is A1 AD, Cyrillic and kana read correctly as GB18030; 1,059 decode
strictly). Decoded per byte as cp1252 they turn into mojibake ("…" -> "¡­"). GB18030 is not a
safe per-file guess, though: short cp1252 text such as "niño" (F1 6F) is valid GB18030 too. So
the legacy encoding is chosen once per dataset (`guess_legacy_encoding`), and a text that is
not valid in it falls back to per-byte cp1252/latin-1.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterable

# The text normalizations (tweet_text.py implements them; `--text-normalization` offers them).
# Here, not there, so option declarations name them without importing the emoji table.
TEXT_NORMALIZATIONS = ("none", "tweet")

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


# Share of a dataset's non-UTF-8 texts that must be valid GB18030 to decode them as such.
GB18030_MIN_SHARE = 0.9


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def decode_text(raw: bytes, legacy: str = "cp1252") -> str:
    """Decode tweet bytes: UTF-8 first; else strict GB18030 when `legacy` is "gb18030";
    else per-byte cp1252/latin-1 for the bytes UTF-8 rejects. Never raises."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if legacy == "gb18030":
        for codec in ("utf-8", "gb18030"):  # strict; each text is decoded once on success
            try:
                return clean_text(raw.decode(codec))
            except UnicodeDecodeError:
                pass
    return clean_text(raw.decode("utf-8", errors=FALLBACK_ERRORS))


def guess_legacy_encoding(raws: Iterable[bytes]) -> tuple[str, int]:
    """The legacy encoding of a set of texts, and how many of them are not UTF-8:
    "gb18030" when at least GB18030_MIN_SHARE of those are valid GB18030, else "cp1252"."""
    legacy = [raw for raw in raws if not _decodes(raw, "utf-8")]
    if legacy and sum(_decodes(raw, "gb18030") for raw in legacy) >= GB18030_MIN_SHARE * len(legacy):
        return "gb18030", len(legacy)
    return "cp1252", len(legacy)


def read_text_file(path: str | Path) -> str:
    return decode_text(Path(path).read_bytes())
