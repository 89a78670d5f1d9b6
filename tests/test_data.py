"""Data layer: text decoding, image loading edge cases, MVSA/table readers, splits."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from mmsa_cli.errors import ConfigError, DataError
from mmsa_cli.data import (
    IMAGE_ERROR_KINDS,
    Example,
    ImageLoadError,
    decode_text,
    guess_legacy_encoding,
    load_examples,
    load_image,
    preprocess_image,
    read_mvsa,
    read_split,
    read_table,
    read_text_file,
    resolve_image_path,
    stratified_kfold,
    stratified_split,
    train_augment,
    write_split,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------- text

def test_decode_cp1252_and_latin1():
    assert decode_text(b"caf\xe9 \x93quoted\x94") == "caf\u00e9 \u201cquoted\u201d"
    assert decode_text(b"na\xefve \xbd") == "na\u00efve \u00bd"


def test_decode_mixed_keeps_utf8_emoji():
    raw = b"caf\xe9 \xf0\x9f\x98\x80 ni\xc3\xb1o \x80"
    assert decode_text(raw) == "caf\u00e9 \U0001F600 ni\u00f1o \u20ac"


def test_decode_bom_controls_whitespace():
    raw = b"\xef\xbb\xbf  hello\x00world\r\n\tnew\x07line \x81x  "
    # 0x81 is undefined in cp1252 -> latin-1 C1 control -> space
    assert decode_text(raw) == "hello world new line x"


def test_decode_never_raises():
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = decode_text(rng.integers(0, 256, size=64, dtype=np.uint8).tobytes())
        assert isinstance(out, str)
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert decode_text(b"") == ""
    assert decode_text(b"\xf0\x9f") == "\u00f0\u0178"  # truncated emoji -> cp1252 chars


GBK_TEXTS = ["RT @a: \u0418 \u043a\u0443\u0434\u0430 \u2026", "\u671f\u9593\u306f\u660e\u65e5\u306e\u2026 http://t.co/x",
             "Temps in the low 80s http:/\u2026"]  # Cyrillic, kanji + kana, "…": as in MVSA-Single


def test_decode_gb18030_legacy():
    for text in GBK_TEXTS:
        raw = text.encode("gbk")
        assert decode_text(raw, "gb18030") == text
        assert decode_text(raw) != text  # the cp1252 default would garble it
    # UTF-8 still wins, and bytes that are not valid GB18030 still get the cp1252 fallback.
    assert decode_text("caf\u00e9 \u2026".encode(), "gb18030") == "caf\u00e9 \u2026"
    assert decode_text(b"caf\xe9 \x93quoted\x94", "gb18030") == "caf\u00e9 \u201cquoted\u201d"


def test_guess_legacy_encoding():
    gbk = [t.encode("gbk") for t in GBK_TEXTS]
    cp1252 = [t.encode("cp1252") for t in ["caf\u00e9 au lait", "na\u00efve \u00bd", "ni\u00f1o"]]
    utf8 = ["plain", "\U0001F600"]
    assert guess_legacy_encoding([*gbk, *(t.encode() for t in utf8)]) == ("gb18030", 3)
    # "niño" alone is valid GB18030 (F1 6F), which is why the choice is made per dataset.
    assert guess_legacy_encoding(cp1252) == ("cp1252", 3)
    assert guess_legacy_encoding([t.encode() for t in utf8]) == ("cp1252", 0)
    assert guess_legacy_encoding([]) == ("cp1252", 0)


def test_read_text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"RT @x: \x93hi\x94 \xf0\x9f\x98\x80\n")
    assert read_text_file(p) == "RT @x: \u201chi\u201d \U0001F600"


# ---------------------------------------------------------------------------------------------- images

def _save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _load_err(source, **kw) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(source, **kw)
    assert info.value.kind in IMAGE_ERROR_KINDS
    return info.value


def test_load_valid_jpeg_and_bytes(tmp_path):
    p = _save(_noise(64, 48), tmp_path / "a.jpg", "JPEG")
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert load_image(p.read_bytes()).size == (64, 48)
    assert load_image(str(p)).size == (64, 48)


def test_load_jpeg_draft(tmp_path):
    p = _save(_noise(400, 300), tmp_path / "big.jpg", "JPEG")
    img = load_image(p, draft_size=100)
    assert img.mode == "RGB" and min(img.size) >= 100 and img.size[0] < 400


def test_png_alpha_over_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.putpixel((1, 1), (255, 0, 0, 255))
    out = load_image(_save(img, tmp_path / "a.png", "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (255, 0, 0)


def test_la_and_palette_transparency(tmp_path):
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(_save(la, tmp_path / "la.png", "PNG")).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    out = load_image(_save(p, tmp_path / "p.png", "PNG", transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 1)) == (0, 255, 0)


def test_grayscale_and_cmyk(tmp_path):
    gray = load_image(_save(Image.new("L", (8, 8), 100), tmp_path / "g.png", "PNG"))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (100, 100, 100)
    cmyk = load_image(_save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "c.jpg", "JPEG"))
    r, g, b = cmyk.getpixel((8, 8))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16bit_png_scaled(tmp_path):
    arr = np.full((8, 8), 65535, np.uint16)
    arr[0, 0] = 32896  # 128 * 257
    arr[0, 1] = 0
    out = load_image(_save(Image.fromarray(arr), tmp_path / "16.png", "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (128, 128, 128)
    assert out.getpixel((1, 0)) == (0, 0, 0)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), (255, 0, 0)), Image.new("RGB", (10, 10), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(p).n_frames == 2
    out = load_image(p)
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (255, 0, 0)


def test_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = _save(_noise(40, 20), tmp_path / "rot.jpg", "JPEG", exif=exif.tobytes())
    assert load_image(p).size == (20, 40)


def test_missing_empty_not_image(tmp_path):
    assert _load_err(tmp_path / "nope.jpg").kind == "missing"
    assert "nope.jpg" in str(_load_err(tmp_path / "nope.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _load_err(tmp_path / "empty.jpg").kind == "empty"
    assert _load_err(b"").kind == "empty"
    (tmp_path / "text.jpg").write_bytes(b"<html>not an image</html>")
    e = _load_err(tmp_path / "text.jpg")
    assert e.kind == "not_image" and "text.jpg" in str(e)
    assert _load_err(tmp_path).kind == "not_image"  # a directory


def test_truncated_jpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    buf = io.BytesIO()
    _noise(128, 128).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 2])
    e = _load_err(p)
    assert e.kind == "corrupt" and "trunc.jpg" in str(e)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width x height with a tiny (wrong) body: decoding it would allocate w*h*3 bytes."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_never_decodes(tmp_path, monkeypatch):
    calls = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(self) or real_load(self))
    # PIL's own bomb check (10^10 pixels) and ours (49M > 40M, below PIL's limit)
    for w, h in [(100_000, 100_000), (7_000, 7_000)]:
        p = tmp_path / f"bomb{w}.png"
        p.write_bytes(_png_header_only(w, h))
        e = _load_err(p)
        assert e.kind == "too_large" and "bomb" in str(e)
    assert "40000000" in str(e)  # the limit is named
    assert calls == []  # nothing was decoded
    small = _save(_noise(20, 20), tmp_path / "small.png", "PNG")
    assert _load_err(small, max_pixels=100).kind == "too_large"
    assert load_image(small, max_pixels=400).size == (20, 20)


def test_resolve_image_path(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    assert resolve_image_path("sub/a.jpg", root) == (root / "sub" / "a.jpg").resolve()
    assert resolve_image_path(str(root / "a.jpg"), root) == (root / "a.jpg").resolve()
    for bad in ["../secret.jpg", "sub/../../x.jpg", "/etc/passwd"]:
        with pytest.raises(ImageLoadError) as info:
            resolve_image_path(bad, root)
        assert info.value.kind == "outside_root" and bad in str(info.value)
    assert resolve_image_path("../x.jpg", root, allow_outside=True) == (tmp_path / "x.jpg").resolve()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ImageLoadError, match="outside"):
        resolve_image_path("link/x.jpg", root)


def test_preprocess_shape_and_determinism():
    img = _noise(120, 80)
    a = preprocess_image(img, 64, MEAN, STD)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    assert np.array_equal(a, preprocess_image(img, 64, MEAN, STD))
    white = preprocess_image(Image.new("RGB", (50, 90), (255, 255, 255)), 32, MEAN, STD)
    assert np.allclose(white[0], (1 - MEAN[0]) / STD[0], atol=1e-5)
    assert preprocess_image(Image.new("L", (10, 10)), 16, MEAN, STD).shape == (3, 16, 16)


def test_train_augment_reproducible():
    img = _noise(100, 70)
    a = train_augment(img, 48, MEAN, STD, np.random.default_rng(7))
    b = train_augment(img, 48, MEAN, STD, np.random.default_rng(7))
    c = train_augment(img, 48, MEAN, STD, np.random.default_rng(8))
    assert a.shape == (3, 48, 48) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert train_augment(_noise(3, 300), 16, MEAN, STD, np.random.default_rng(0)).shape == (3, 16, 16)


# ---------------------------------------------------------------------------------------------- MVSA

def _mvsa(tmp_path: Path, rows: list[tuple[str, str]], texts: dict[str, bytes]) -> Path:
    root = tmp_path / "mvsa"
    (root / "data").mkdir(parents=True)
    for guid, raw in texts.items():
        (root / "data" / f"{guid}.txt").write_bytes(raw)
    (root / "train.txt").write_text("guid,tag\n" + "".join(f"{g},{t}\n" for g, t in rows))
    return root


def test_read_mvsa(tmp_path, caplog):
    root = _mvsa(tmp_path, [("1", "positive"), ("2", "null"), ("3", "negative"), ("4", "neutral")],
                 {"1": b"caf\xe9 \xf0\x9f\x98\x80", "2": b"plain", "3": b"x\r\ny"})
    exs = read_mvsa(root)
    assert [e.guid for e in exs] == ["1", "2", "3", "4"]
    assert [e.label for e in exs] == [0, None, 2, 1]
    assert exs[0].text == "caf\u00e9 \U0001F600" and exs[2].text == "x y"
    assert exs[3].text == ""  # missing .txt keeps the row
    assert "no text file" in caplog.text
    assert exs[0].image_path == root / "data" / "1.jpg"  # recorded even though the jpg is missing
    assert load_examples(root) == exs
    assert read_mvsa(root, root / "train.txt") == exs


def test_read_mvsa_gbk_dataset(tmp_path):
    """A folder whose non-UTF-8 texts are GBK (as MVSA-Single's) decodes them as GB18030; a
    cp1252 text among them that GB18030 rejects keeps the cp1252 fallback."""
    gbk = GBK_TEXTS * 3  # 9 of the 10 non-UTF-8 texts: GB18030_MIN_SHARE
    texts = {str(i): t.encode("gbk") for i, t in enumerate(gbk)}
    texts["u"] = "utf-8 \u2026".encode()
    texts["c"] = b"caf\xe9 \x93q\x94"
    root = _mvsa(tmp_path, [(g, "neutral") for g in texts], texts)
    got = [e.text for e in read_mvsa(root)]
    assert got == [*gbk, "utf-8 \u2026", "caf\u00e9 \u201cq\u201d"]


def test_read_mvsa_errors(tmp_path):
    root = _mvsa(tmp_path, [("1", "positive"), ("2", "postive")], {})
    with pytest.raises(DataError) as info:
        read_mvsa(root)
    msg = str(info.value)
    assert "'postive'" in msg and "train.txt" in msg and "line 3" in msg and "positive, neutral, negative" in msg
    with pytest.raises(DataError, match="test.txt"):
        read_mvsa(root, "test.txt")


# ---------------------------------------------------------------------------------------------- tables

def test_read_table_parquet(tmp_path):
    df = pd.DataFrame({
        "guid": ["a", "b", "c", "d"],
        "text": ["hi", None, "  x\ty ", "NA"],
        "image": ["imgs/a.jpg", "b.jpg", str(tmp_path / "abs.jpg"), "d.jpg"],
        "label": ["Positive", None, "negative", "neutral"],
    })
    p = tmp_path / "t.parquet"
    df.to_parquet(p)
    exs = read_table(p)
    assert exs[0] == Example("a", "hi", tmp_path / "imgs" / "a.jpg", 0)
    assert [e.label for e in exs] == [0, None, 2, 1]
    assert [e.text for e in exs] == ["hi", "", "x y", "NA"]
    assert exs[2].image_path == tmp_path / "abs.jpg"
    assert read_table(p, image_root=tmp_path / "r")[1].image_path == tmp_path / "r" / "b.jpg"
    assert load_examples(p) == exs


def test_read_table_int_labels_and_defaults(tmp_path):
    p = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "image": ["1.jpg", "2.jpg", "3.jpg"], "y": [2, 0, 1]}).to_parquet(p)
    exs = read_table(p, label_col="y")
    assert [e.guid for e in exs] == ["0", "1", "2"] and [e.label for e in exs] == [2, 0, 1]
    assert all(e.label is None for e in read_table(p))  # no 'label' column: unlabelled
    with pytest.raises(DataError, match="available columns: text, image, y"):
        read_table(p, id_col="guid")  # an explicit id column must exist
    pd.DataFrame({"text": ["a"], "image": ["1.jpg"], "label": [5]}).to_parquet(p)
    with pytest.raises(DataError, match=r"unknown label 5 .*data row 1"):
        read_table(p)


def test_read_table_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"guid,tweet,image,label\n007,caf\xe9 ok,x/1.jpg,1\n008,NA,2.jpg,NEGATIVE\n009,,3.jpg,\n")
    with pytest.raises(DataError) as info:
        read_table(p)
    assert "'text'" in str(info.value) and "available columns: guid, tweet, image, label" in str(info.value)
    exs = read_table(p, text_col="tweet")
    assert [e.guid for e in exs] == ["007", "008", "009"]
    assert [e.text for e in exs] == ["caf\u00e9 ok", "NA", ""]
    assert [e.label for e in exs] == [1, 2, None]
    assert exs[0].image_path == tmp_path / "x" / "1.jpg"
    t = tmp_path / "t.tsv"
    t.write_text("text\timage\nhello\ta.jpg\n")
    assert read_table(t) == [Example("0", "hello", tmp_path / "a.jpg", None)]
    p.write_text("text,image,label\nhi,a.jpg,happy\n")
    with pytest.raises(DataError, match="'happy'.*positive, neutral, negative"):
        read_table(p)


def test_load_examples_bad_source(tmp_path):
    with pytest.raises(DataError, match="MVSA folder.*table"):
        load_examples(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_examples(tmp_path / "missing.parquet")


# ---------------------------------------------------------------------------------------------- splits

def _mvsa_labels() -> list[int]:
    labels = [0] * 2388 + [1] * 419 + [2] * 1193
    np.random.default_rng(0).shuffle(labels)
    return labels


def test_stratified_split():
    labels = _mvsa_labels()
    train, val = stratified_split(labels)
    assert (len(train), len(val)) == (3200, 800)
    assert sorted(train + val) == list(range(4000)) and train == sorted(train) and val == sorted(val)
    val_counts = np.bincount([labels[i] for i in val], minlength=3)
    assert np.allclose(val_counts, np.array([2388, 419, 1193]) * 0.2, atol=1)
    assert stratified_split(labels) == (train, val)
    assert stratified_split(labels, seed=1)[1] != val
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ConfigError, match=str(bad)):
            stratified_split(labels, val_fraction=bad)
    with pytest.raises(DataError):
        stratified_split([0, 1, None])


def test_stratified_kfold():
    labels = _mvsa_labels()[:500]
    folds = stratified_kfold(labels, k=5, seed=3)
    assert len(folds) == 5
    seen = sorted(i for _, val in folds for i in val)
    assert seen == list(range(500))
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == 500
    assert stratified_kfold(labels, k=5, seed=3) == folds
    with pytest.raises(ConfigError, match="k 1"):
        stratified_kfold(labels, k=1)


def test_write_read_split(tmp_path):
    exs = [Example(str(i), "", Path(f"{i}.jpg"), i % 3) for i in range(10)]
    train, val = stratified_split([e.label for e in exs], 0.3)
    p = tmp_path / "runs" / "split.csv"
    write_split(p, exs, train, val)
    assert p.read_text().splitlines()[0] == "guid,split,label"
    split = read_split(p)
    assert sorted(k for k, v in split.items() if v == "val") == sorted(str(i) for i in val)
    assert len(split) == 10
    with pytest.raises(DataError, match="does not exist"):
        read_split(tmp_path / "none.csv")


# ---------------------------------------------------------------------------------------------- tweet text

from mmsa_cli.data import tweet_text as tt  # noqa: E402


@pytest.mark.parametrize("rule, text, expected", [
    # HTML entities: complete entities only
    (tt.unescape_entities, "fish &amp; chips &lt;3 &quot;ok&quot; &#39;a&#x27;", "fish & chips <3 \"ok\" 'a'"),
    (tt.unescape_entities, "AT&T and R&D", "AT&T and R&D"),
    # retweet prefix: only at the start
    (tt.strip_retweet_prefix, "RT @jewel_of_ark: so unnatural", "so unnatural"),
    (tt.strip_retweet_prefix, "RT @bob:@amy hi", "@amy hi"),
    (tt.strip_retweet_prefix, "Please RT @bob: now", "Please RT @bob: now"),
    (tt.strip_retweet_prefix, "RTL news", "RTL news"),
    # URLs: removed, including Twitter's truncated ones
    (tt.remove_urls, "look http://t.co/k7VzxS2q0F now", "look now"),
    (tt.remove_urls, "https://example.com/a?b=1 www.site.org t.co/x", ""),
    (tt.remove_urls, "cut short http:/\u2026", "cut short"),
    (tt.remove_urls, "cut short htt\u00a1\xad", "cut short"),
    (tt.remove_urls, "the h is silent", "the h is silent"),
    # emoticons: stand-alone only
    (tt.emoticons_to_words, "nice :) bad :-( lol xD", "nice smile bad sad lol laugh"),
    (tt.emoticons_to_words, "yes ;) <3 :P :'( :D", "yes wink love tongue cry laugh"),
    (tt.emoticons_to_words, "<3Tia", "love Tia"),
    (tt.emoticons_to_words, "time:12:30 a:)b", "time:12:30 a:)b"),
    # emoji: CLDR names, two of a run kept, (c)(r)(tm) left alone
    (tt.emoji_to_words, "\U0001F602", "face with tears of joy"),
    (tt.emoji_to_words, "ok\U0001F44D\U0001F3FD!", "ok thumbs up medium skin tone !"),
    (tt.emoji_to_words, "\u2764\ufe0f", "red heart"),
    (tt.emoji_to_words, "\U0001F525\U0001F525\U0001F525 \U0001F525", "fire fire"),
    (tt.emoji_to_words, "caf\u00e9 \u00a9 \u00ae \u2122", "caf\u00e9 \u00a9 \u00ae \u2122"),
    # mentions
    (tt.mask_mentions, "@BarackObama and @a_b1: hi", "@user and @user: hi"),
    (tt.mask_mentions, "mail me at a@b.com", "mail me at a@b.com"),
    # hashtags
    (tt.hashtags_to_words, "#HappyFriday", "Happy Friday"),
    (tt.hashtags_to_words, "#happyfriday", "happyfriday"),
    (tt.hashtags_to_words, "#AwaranBLFTerrorCampBusted", "Awaran BLF Terror Camp Busted"),
    (tt.hashtags_to_words, "#NachBaliye7 #500cu #1974_cadillac", "Nach Baliye 7 500 cu 1974 cadillac"),
    (tt.hashtags_to_words, "We're #1 in C# and a#b", "We're 1 in C# and a#b"),
    # repeats: letters, ! and ?; not digits or dots
    (tt.squeeze_repeats, "sooooo happy!!!!! why???", "soo happy!! why??"),
    (tt.squeeze_repeats, "1000000 ... wait", "1000000 ... wait"),
    (tt.collapse_whitespace, "  a \t b \n c  ", "a b c"),
])
def test_tweet_rule(rule, text, expected):
    """Each rule alone (spaces it adds around words are collapsed at the end of the chain)."""
    assert " ".join(rule(text).split()) == expected


@pytest.mark.parametrize("text, expected", [
    ("RT @jewel: everything about #StopThisSeaWorld \U0001F602 :) http://t.co/x &amp; more @amy",
     "everything about Stop This Sea World face with tears of joy smile & more @user"),
    ("Aweeeesome!!!!  #BestDayEver\U0001F389", "Aweesome!! Best Day Ever party popper"),
    ("http://t.co/a http://t.co/b", ""),   # only links: nothing left, the image decides
    ("", ""),
    ("Plain text stays Plain", "Plain text stays Plain"),  # case is kept
])
def test_normalize_tweet(text, expected):
    assert tt.normalize_text(text, "tweet") == expected
    assert tt.normalize_text(expected, "tweet") == expected  # idempotent on its own output


def test_normalization_none_is_the_identity():
    text = "RT @x: #Tag \U0001F602 http://t.co/a  two  spaces"
    assert tt.normalize_text(text, "none") == text
    assert tt.normalize_texts([text, ""], "none") == [text, ""]


def test_unknown_normalization_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'tweets' is not one of none, tweet"):
        tt.normalize_text("hi", "tweets")
    with pytest.raises(ConfigError, match="'bogus'"):
        tt.normalize_texts([], "bogus")  # checked even with nothing to normalize


def test_every_configurable_normalization_is_implemented():
    from mmsa_cli.config import TEXT_NORMALIZATIONS

    assert tuple(tt.NORMALIZERS) == TEXT_NORMALIZATIONS


def test_tweet_normalization_removes_emoji_unks_for_minilm():
    """The reason for the emoji rule: the default tokenizer has no emoji."""
    from transformers import AutoTokenizer

    from mmsa_cli.models.text_encoders import minilm_dir

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    text = "best day \U0001F602\U0001F60D #HappyFriday"
    assert tok.unk_token_id in tok(text)["input_ids"]
    ids = tok(tt.normalize_text(text, "tweet"))["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids)[1:-1][-2:] == ["happy", "friday"]
