"""`mmsa score`: bad rows, the output contract, resume after kill -9, exit codes, the API."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from mmsa_cli.cli import main
from mmsa_cli.scoring import Columns, Scorer, ScoreOptions, score_files, score_table
from mmsa_cli.scoring.errors import InputError, OutputExistsError, ResumeMismatchError
from mmsa_cli.scoring.images.gpu import resize_crop_batch
from mmsa_cli.io.checkpointed import PAUSE_ENV
from mmsa_cli.contract.geometry import normalise, plan_resize, resize_crop
from mmsa_cli.scoring.images.prepare import GpuSplit, ImageSpec, _gpu_ready, prepare_image, prepare_images
from mmsa_cli.contract.tokenizer import tokenize
from mmsa_cli.scoring.images.gpu import GpuImages
from mmsa_cli.scoring.onnx_model import pad_rows

sys.path.insert(0, str(Path(__file__).parent))
from scoring_helpers import noisy_jpeg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROBS = ["prob_positive", "prob_neutral", "prob_negative"]


def gpu_split(ready, share: float, start: int = 0) -> list[bool]:
    """What prepare_images decides per image: True = nvJPEG; images not ready for nvJPEG stay on the CPU."""
    split = GpuSplit(share, start)
    return [bool(r) and split.take() for r in ready]


# ----------------------------------------------------------------------------------- fixtures

# `models` and `scorers` (tiny exported model folders, loaded once): conftest.py


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a decompression bomb): header plus a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _save(img: Image.Image, path: Path, fmt: str, **kw) -> str:
    img.save(path, fmt, **kw)
    return path.name


def make_messy(folder: Path) -> tuple[Path, dict[str, str | None]]:
    """A Parquet file with one row per problem, images beside it; returns (path, expected kind per guid)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    good = noisy_jpeg(folder / "good.jpg", (120, 90), seed=1).name
    jpeg_bytes = (folder / good).read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.integers(0, 255, 3000, dtype=np.uint8).tobytes())
    (folder / "text.jpg").write_bytes(b"this is not an image at all\n")
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 200)
    (folder / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    (folder / "a_dir.jpg").mkdir(exist_ok=True)
    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "green", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    grey = _save(rgb.convert("L"), folder / "grey.jpg", "JPEG")
    cmyk = _save(rgb.convert("CMYK"), folder / "cmyk.jpg", "JPEG")
    alpha = _save(rgb.convert("RGBA"), folder / "alpha.png", "PNG")
    wide = _save(Image.fromarray((rng.integers(0, 65535, (30, 40))).astype(np.uint16)), folder / "deep16.png", "PNG")
    progressive = _save(rgb, folder / "progressive.jpg", "JPEG", progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _save(rgb, folder / "rotated.jpg", "JPEG", exif=exif.tobytes())
    (folder.parent / "outside.jpg").write_bytes(jpeg_bytes)

    rows = [  # guid, text, image, expected error kind (None = fine)
        ("g-ok", "I love this sunny day", good, None),
        ("g-missing", "where is it", "nope/missing.jpg", "missing"),
        ("g-empty", "empty file", "empty.jpg", "empty"),
        ("g-trunc", "truncated jpeg", "truncated.jpg", "corrupt"),
        ("g-garbage", "corrupt jpeg", "garbage.jpg", ("corrupt", "not_image")),
        ("g-text", "not an image", "text.jpg", "not_image"),
        ("g-heic", "unsupported format", "photo.heic", ("not_image", "unsupported")),
        ("g-bomb", "decompression bomb", "bomb.png", "too_large"),
        ("g-dir", "a folder", "a_dir.jpg", "not_image"),
        ("g-anim", "animated gif", "anim.gif", None),
        ("g-grey", "grey", grey, None),
        ("g-cmyk", "cmyk", cmyk, None),
        ("g-alpha", "alpha", alpha, None),
        ("g-16bit", "16 bit", wide, None),
        ("g-prog", "progressive", progressive, None),
        ("g-rot", "exif rotated", rotated, None),
        ("g-dotdot", "escapes the root", "../outside.jpg", "outside_root"),
        ("g-abs", "absolute elsewhere", str(folder.parent / "outside.jpg"), "outside_root"),
        ("g-nullimg", "no image", None, "missing"),
        ("g-nulltext", None, good, None),
        ("g-emptytext", "", good, None),
        ("g-controls", "\x00\x07\x1b", good, None),
        ("g-long", "so much to say " * 800, good, None),
        ("g-emoji", "\U0001F600\U0001F525 best day ever \u2764\ufe0f", good, None),
        ("g-both-bad", "", "empty.jpg", "empty"),
    ]
    table = pa.table({"guid": [r[0] for r in rows], "text": [r[1] for r in rows], "image": [r[2] for r in rows],
                      "user": [f"user{i}" for i in range(len(rows))]})
    path = folder / "messy.parquet"
    pq.write_table(table, path)
    return path, {r[0]: r[3] for r in rows}


@pytest.fixture(scope="session")
def messy(tmp_path_factory):
    return make_messy(tmp_path_factory.mktemp("messy") / "data")


def _run(inputs, model, out, scorer=None, **kw) -> dict:
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return score_files(inputs, model, out, ScoreOptions(**kw), scorer=scorer).to_dict()


def _kind(error: str | None) -> str | None:
    return error.split(":", 1)[0] if error else None


# ----------------------------------------------------------------------------------- preprocessing

def test_geometry_crops_the_centre_of_the_shorter_side_resized(tmp_path):
    """The one geometry (contract/geometry.py): no resize when the shorter side is already S,
    then the centre S x S; a JPEG's draft factor is the largest power of 2 keeping >= S."""
    arr = np.random.default_rng(0).integers(0, 256, (50, 101, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_crop(Image.fromarray(arr), 50), arr[:, 26:76])  # round(25.5) = 26
    assert plan_resize(101, 50, 50) == (1, 101, 50, 101, 50, 26, 0)
    assert plan_resize(100, 200, 50) == (1, 100, 200, 50, 100, 0, 25)
    assert [plan_resize(w, 600, 224, draft=True)[0] for w in (224, 448, 900, 1800)] == [1, 2, 2, 2]
    assert plan_resize(1800, 1800, 224, draft=True)[:3] == (8, 225, 225)
    pixels = normalise(np.full((1, 4, 4, 3), 255, np.uint8), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert pixels.shape == (1, 3, 4, 4) and np.allclose(pixels, 1.0)


def test_batched_matrix_resize_reproduces_pil(tmp_path):
    """The GPU resize (run here on the CPU) vs PIL's BILINEAR resize + centre crop: within one
    grey level (PIL rounds to 8 bits between its two passes), any aspect, down or up. (Below
    1/3 scale PIL box-reduces first; the GPU path gets such JPEGs draft-reduced instead.)"""
    import torch

    images, refs = [], []
    for i, size in enumerate([(150, 120), (120, 150), (100, 80), (65, 64), (190, 64), (40, 30), (64, 180)]):
        img = Image.open(noisy_jpeg(tmp_path / f"{i}.jpg", size, seed=i)).convert("RGB")
        refs.append(resize_crop(img, 64).astype(np.float32))
        images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous())
    out = resize_crop_batch(images, 64, draft=False).permute(0, 2, 3, 1).numpy()
    assert np.abs(out - np.stack(refs)).max() <= 1.0
    single = torch.stack([resize_crop_batch([im], 64, draft=False)[0] for im in images]).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(out, single)  # padding other images in never changes a result


def test_gpu_route_takes_only_plain_jpegs(messy):
    path, _ = messy
    folder = path.parent
    spec = ImageSpec(64, (0.5,) * 3, (0.5,) * 3, gpu_jpeg=True)
    assert _gpu_ready((folder / "good.jpg").read_bytes(), spec)
    for name in ("grey.jpg", "cmyk.jpg", "progressive.jpg", "rotated.jpg", "truncated.jpg", "alpha.png", "anim.gif"):
        assert not _gpu_ready((folder / name).read_bytes(), spec), name
    assert prepare_image("good.jpg", str(folder), spec).status == "jpeg"
    assert prepare_image("grey.jpg", str(folder), spec).status == "pixels"


def test_gpu_pixel_path_matches_cpu_path_on_cpu(messy, scorers):
    """GpuImages (nvJPEG + batched resize on CUDA) exercised on the CPU with libjpeg: same
    errors, pixels within JPEG-decoder differences of the CPU path."""
    import torch

    path, _ = messy
    table = pq.read_table(path)
    scorer = scorers["ote"]
    tasks = [(v, str(path.parent)) for v in table.column("image").to_pylist()]
    spec_gpu = scorer.image_spec()
    spec_gpu = ImageSpec(spec_gpu.size, spec_gpu.mean, spec_gpu.std, gpu_jpeg=True)
    gpu_results, _ = prepare_images(tasks, spec_gpu)
    assert sum(r.status == "jpeg" for r in gpu_results) >= 5
    pixels, errors = GpuImages(scorer.manifest, torch.device("cpu"))(gpu_results, spec_gpu)
    cpu_pixels, cpu_errors = scorer.pixel_batch(prepare_images(tasks, scorer.image_spec())[0], scorer.image_spec())
    assert errors == cpu_errors
    diff = np.abs(pixels.numpy() - cpu_pixels) * 0.229 * 255  # back to grey levels
    assert diff.mean() < 1.0 and diff.max() <= 40


# ----------------------------------------------------------------------------------- GPU decode share

def test_gpu_split_share_rounding_and_non_jpegs():
    """The split of a batch's nvJPEG-ready JPEGs: share 0, 1, halves, round-half-up, evenly
    spread, never a non-ready image, and worker chunks (start=) add up to the whole batch."""
    ready = [True] * 10
    assert gpu_split(ready, 1.0) == ready
    assert gpu_split(ready, 0.0) == [False] * 10
    assert gpu_split(ready, 0.5) == [True, False] * 5
    assert sum(gpu_split(ready, 0.3)) == 3 and sum(gpu_split(ready, 0.25)) == 3  # 2.5 rounds up
    assert sum(gpu_split([True] * 256, 0.7)) == 179 and sum(gpu_split([True] * 3, 0.5)) == 2
    picked = [i for i, g in enumerate(gpu_split([True] * 12, 0.25)) if g]
    assert picked == [1, 5, 9]  # spread, not bunched at the front
    mixed = [True, False, True, True, False, False, True, True, False, True]
    for share in (0.0, 0.3, 0.5, 1.0):
        split = gpu_split(mixed, share)
        assert not any(g for g, r in zip(split, mixed) if not r)  # non-JPEGs always on the CPU
        assert sum(split) == int(np.floor(share * sum(mixed) + 0.5))
    assert gpu_split([False] * 4, 1.0) == [False] * 4
    whole = gpu_split([True] * 256, 0.37)
    chunks = [gpu_split([True] * 19, 0.37, start) for start in range(0, 256, 19)]
    assert sum(chunks, [])[:256] == whole


def _simulate_share(workers, prep_threads, cpu_cost, header_cost, gpu_cost, upload_cost, lag=6, batches=400):
    """The pipeline's loop with a linear cost model: a batch's share is chosen at submission and
    its busy times reported `lag` batches later (prefetch + prep threads)."""
    from collections import deque

    from mmsa_cli.scoring.engines.local import GpuDecodeShare

    ctl = GpuDecodeShare("auto", workers, prep_threads)
    pending, trace = deque(), []
    for _ in range(batches):
        pending.append(ctl.next())
        if len(pending) > lag:
            s, n = pending.popleft(), 256
            ctl.update(n * ((1 - s) * cpu_cost + s * header_cost), n * (s * gpu_cost + (1 - s) * upload_cost))
        trace.append(ctl.value)
    c, h, g, u = cpu_cost / workers, header_cost / workers, gpu_cost / prep_threads, upload_cost / prep_threads
    return ctl, trace, (c - u) / (c - h + g - u)  # where both paths take the same time


def test_auto_share_balances_the_two_paths():
    # H100-like: 14 workers at ~270 img/s, 2 prep threads at ~2,400 img/s each (nvJPEG + resize)
    for workers, prep, cpu, gpu in ((14, 2, 1 / 270, 1 / 2400), (4, 2, 1 / 270, 1 / 2400), (14, 2, 1 / 150, 1 / 6000)):
        ctl, trace, balance = _simulate_share(workers, prep, cpu, 2e-4, gpu, 1e-5)
        assert abs(trace[-1] - balance) < 0.03, (workers, trace[-1], balance)
        assert max(trace[-100:]) - min(trace[-100:]) < 0.02  # settles, no oscillation
        summary = ctl.summary()
        assert summary["gpu_decode_share"] == "auto" and summary["share_min"] <= summary["share_mean"] <= summary["share_max"]
    ctl, trace, _ = _simulate_share(2, 2, 1 / 270, 2e-4, 1 / 20000, 1e-5)  # a fast GPU and 2 cores: mostly GPU
    assert trace[-1] > 0.9
    from mmsa_cli.scoring.engines.local import GpuDecodeShare, check_share

    fixed = GpuDecodeShare(0.4, 14, 2)
    fixed.update(10.0, 0.1)
    assert fixed.next() == 0.4 and fixed.value == 0.4
    assert GpuDecodeShare("auto", 0, 2).next() == 1.0  # no workers: the CPU path would run in series
    assert 0.5 < GpuDecodeShare("auto", 14, 2).value < 0.8
    assert check_share("AUTO") == "auto" and check_share("0.25") == 0.25
    for bad in (1.5, -0.1, "half", float("nan")):
        with pytest.raises(InputError, match="gpu_decode_share"):
            check_share(bad)


@pytest.fixture(scope="session")
def jpegs(messy, tmp_path_factory):
    """Mostly nvJPEG-ready JPEGs of several sizes, and images that always take the CPU path."""
    import shutil

    folder = tmp_path_factory.mktemp("jpegs")
    for name in ("grey.jpg", "alpha.png", "progressive.jpg", "truncated.jpg", "cmyk.jpg"):
        shutil.copy(messy[0].parent / name, folder / name)
    sizes = [(120, 90), (90, 120), (200, 150), (64, 64), (300, 100), (100, 180)]
    names = [noisy_jpeg(folder / f"plain{i}.jpg", sizes[i % len(sizes)], seed=10 + i).name for i in range(22)]
    names[3:3] = ["grey.jpg", "alpha.png", "progressive.jpg"]
    names[12:12] = ["nope/missing.jpg", "truncated.jpg", "cmyk.jpg"]
    words = "love great awful rain sunny city news game team".split()
    texts = [" ".join(words[: 1 + i % len(words)]) for i in range(len(names))]
    table = pa.table({"guid": [f"j{i}" for i in range(len(names))], "text": texts, "image": names})
    path = folder / "jpegs.parquet"
    pq.write_table(table, path)
    return path


def test_mixed_gpu_cpu_batch_keeps_rows_and_pixels(jpegs, scorers):
    """A batch with some JPEGs decoded by the "device" (torchvision on the CPU here) and the rest
    prepared by the CPU path: every row holds its own image's pixels, in row order: the
    CPU-prepared ones bit-identical to the all-CPU batch, the device-decoded ones to the
    all-device batch."""
    import torch

    scorer = scorers["ote"]
    tasks = [(v, str(jpegs.parent)) for v in pq.read_table(jpegs).column("image").to_pylist()]
    cpu_spec = scorer.image_spec()
    gpu_spec = ImageSpec(cpu_spec.size, cpu_spec.mean, cpu_spec.std, gpu_jpeg=True)
    ref_px, ref_err = scorer.pixel_batch(prepare_images(tasks, cpu_spec)[0], cpu_spec)
    images = GpuImages(scorer.manifest, torch.device("cpu"))
    by_share = {}
    for share in (0.0, 0.5, 1.0):
        results, _ = prepare_images(tasks, gpu_spec, share)
        px, err = images(results, gpu_spec)
        assert err == ref_err
        by_share[share] = ([r.status for r in results], px.numpy())
    ready = [s == "jpeg" for s in by_share[1.0][0]]
    assert sum(ready) == 22 and by_share[0.0][0].count("jpeg") == 0
    np.testing.assert_array_equal(by_share[0.0][1], ref_px)  # share 0: exactly the CPU path
    status, mixed = by_share[0.5]
    assert status.count("jpeg") == 11 and [s == "jpeg" for s in status] == gpu_split(ready, 0.5)
    for i, s in enumerate(status):
        np.testing.assert_array_equal(mixed[i], by_share[1.0][1][i] if s == "jpeg" else ref_px[i], err_msg=str(i))
    gpu_rows = [i for i, s in enumerate(status) if s == "jpeg"]
    assert np.abs(by_share[1.0][1][gpu_rows] - ref_px[gpu_rows]).max() > 0  # the decoders differ: the check bites
    assert images.counts == {"nvjpeg": 0 + 11 + 22, "cpu": 26 + 15 + 4, "nvjpeg_rejected": 0}


@pytest.mark.parametrize("workers", [0, 2])
def test_gpu_decode_share_pipeline_on_the_cpu(jpegs, models, scorers, tmp_path, workers):
    """score_files with the GPU image path running on the CPU device: share 0 gives exactly the
    CPU-only output; share 0.5 gives each row exactly the probabilities of the all-CPU or of the
    all-"nvJPEG" run (so rows stay in order), with about half the JPEGs on each side."""
    import torch

    scorer = Scorer(models["ote"], "cpu", batch_size=8)
    scorer._gpu = GpuImages(scorer.manifest, torch.device("cpu"))
    assert scorer.image_spec().gpu_jpeg
    ref_out = tmp_path / "ref.parquet"
    _run(jpegs, models["ote"], ref_out, scorer=scorers["ote"], workers=workers)
    ref = pq.read_table(ref_out)
    tables, summaries = {}, {}
    for share in (0.0, 0.5, 1.0, "auto"):
        out = tmp_path / f"share-{share}.parquet"
        summaries[share] = _run(jpegs, models["ote"], out, scorer=scorer, workers=workers, gpu_decode_share=share)
        tables[share] = pq.read_table(out)
        assert tables[share].column("error").to_pylist() == ref.column("error").to_pylist()
        assert tables[share].column("guid").to_pylist() == ref.column("guid").to_pylist()
    assert tables[0.0].equals(ref)
    probs = {k: np.stack([t.column(c).to_numpy(zero_copy_only=False) for c in PROBS], 1) for k, t in tables.items()}
    same_cpu = np.all(probs[0.5] == probs[0.0], axis=1) | np.isnan(probs[0.0]).all(1)
    same_gpu = np.all(probs[0.5] == probs[1.0], axis=1) | np.isnan(probs[1.0]).all(1)
    assert (same_cpu | same_gpu).all()
    assert (same_cpu & ~same_gpu).sum() >= 5 and (same_gpu & ~same_cpu).sum() >= 5
    images = {k: s["images"] for k, s in summaries.items()}
    assert images[0.0]["nvjpeg"] == 0 and images[1.0]["nvjpeg"] == 22 and 7 <= images[0.5]["nvjpeg"] <= 15
    for k, im in images.items():
        assert im["nvjpeg"] + im["cpu"] == 22 + 4, k  # 4 images fine on the CPU path only; 2 errors
    assert images[0.5]["gpu_decode_share"] == 0.5 and images[0.5]["share_mean"] == 0.5
    assert images["auto"]["gpu_decode_share"] == "auto"
    if workers == 0:
        assert images["auto"]["share_mean"] == 1.0
    assert summaries["auto"]["stage_seconds"]["decode_cpu"] > 0


# ----------------------------------------------------------------------------------- bad rows

def test_every_bad_row_is_kept_with_its_error(messy, models, scorers, tmp_path):
    path, expected = messy
    out = tmp_path / "scored.parquet"
    summary = _run(path, models["ote"], out, scorer=scorers["ote"], columns=Columns(keep=("user",)))
    table = pq.read_table(out)
    assert table.column_names == ["guid", "label", *PROBS, "error", "error_kind", "predicted_from", "user"]
    rows = table.to_pylist()
    assert [r["guid"] for r in rows] == list(expected)  # none dropped, input order
    for r in rows:
        want = expected[r["guid"]]
        got = _kind(r["error"])
        assert (got in want) if isinstance(want, tuple) else got == want, (r["guid"], r["error"])
        assert r["error_kind"] == got  # the kind alone, for SQL users
        if r["guid"] == "g-both-bad":
            assert r["label"] is None and r["prob_positive"] is None and r["predicted_from"] is None
            continue
        assert r["label"] in ("positive", "neutral", "negative"), r  # everything else is predicted
        assert abs(sum(r[c] for c in PROBS) - 1) < 1e-5
        if r["error"]:
            assert r["error"].endswith("(predicted from text only)") and r["predicted_from"] == "text"
        elif r["guid"] in ("g-nulltext", "g-emptytext", "g-controls"):
            assert r["predicted_from"] == "image", r  # a picture without words: said, not an error
        else:
            assert r["predicted_from"] == "text+image", r
    assert summary["rows"] == len(expected)
    assert summary["rows_with_errors"] == sum(1 for v in expected.values() if v)
    assert summary["rows_without_prediction"] == 1
    assert summary["errors_by_kind"]["outside_root"] == 2


def test_blank_image_prediction_equals_mean_image(messy, scorers):
    """'predicted from text only' really is the text with the normalised zero image."""
    path, _ = messy
    scorer = scorers["ote"]
    table = pq.read_table(path).slice(1, 1)  # g-missing
    got = scorer.score_batch(table, image_root=path.parent)
    ids, mask = tokenize(scorer.tokenizer, ["where is it"], scorer.manifest.max_length)
    width = int(mask.sum())
    s = scorer.manifest.image_size
    ref = scorer({"input_ids": ids[:, :width], "attention_mask": mask[:, :width],
                  "pixel_values": np.zeros((1, 3, s, s), np.float32)})["probs"][0]
    np.testing.assert_allclose([got.column(c)[0].as_py() for c in PROBS], ref, atol=1e-6)


def test_image_only_and_text_only_policies(messy, models, scorers, tmp_path):
    path, expected = messy
    img = {r["guid"]: r for r in pq.read_table(_out(path, models, scorers, "image-only", tmp_path)).to_pylist()}
    for guid, kind in expected.items():
        if kind:  # no prediction without a usable image
            assert img[guid]["label"] is None and "no prediction" in img[guid]["error"], guid
        else:
            assert img[guid]["label"] is not None and img[guid]["error"] is None, guid
    txt = {r["guid"]: r for r in pq.read_table(_out(path, models, scorers, "text-only", tmp_path)).to_pylist()}
    for guid, r in txt.items():  # images never opened; empty text is the only problem
        if guid in ("g-nulltext", "g-emptytext", "g-controls", "g-both-bad"):
            assert r["label"] is None and r["error"].startswith("empty_text:"), guid
        else:
            assert r["label"] is not None and r["error"] is None, guid


def _out(path, models, scorers, fusion, tmp_path) -> Path:
    out = tmp_path / f"{fusion}.parquet"
    _run(path, models[fusion], out, scorer=scorers[fusion])
    return out


def test_tokenizer_gives_the_folder_tokenizers_ids(scorers):
    from mmsa_cli.contract.tokenizer import BatchTokenizer, decode_texts

    scorer = scorers["ote"]
    texts = decode_texts(pa.array(["Caf\u00e9 \u201cquoted\u201d #BestDayEver @user http://t.co/x",
                                   "\U0001F600\U0001F525 \u4e2d\u6587 na\u00efve", "", "\x00\x07ctrl", "word " * 300]))
    ours = scorer._tokenize(texts)
    assert scorer._tokenize.backend is not None  # the Rust fast path
    assert type(scorer.tokenizer).__module__.startswith("tokenizers")  # scoring needs no transformers
    folder_tok = scorer.folder.load_hf_tokenizer()  # the reference: transformers' own tokenizer
    ref = folder_tok(texts, truncation=True, max_length=scorer.manifest.max_length, padding="max_length",
                     return_tensors="np")
    np.testing.assert_array_equal(ours[0], ref["input_ids"])
    np.testing.assert_array_equal(ours[1], ref["attention_mask"])
    assert scorer._empty_ids.tolist() == folder_tok("")["input_ids"]
    blocks = BatchTokenizer(folder_tok, scorer.manifest.max_length)
    blocks.BLOCK = 2  # 5 texts: blocks of 2, 2, 1 fill the same rows
    np.testing.assert_array_equal(blocks(texts)[0], ref["input_ids"])
    np.testing.assert_array_equal(tokenize(folder_tok, texts, 16)[0], folder_tok(texts, truncation=True, max_length=16,
                                  padding="max_length", return_tensors="np")["input_ids"])
    np.testing.assert_array_equal(tokenize(scorer.tokenizer, texts, 16)[0], folder_tok(
        texts, truncation=True, max_length=16, padding="max_length", return_tensors="np")["input_ids"])


def test_text_edge_cases_and_non_utf8(models, scorers, tmp_path):
    """Binary text column with cp1252 bytes, invalid UTF-8 in a *string* column, long text."""
    scorer = scorers["text-only"]
    raw = [b"caf\xe9 \x93great\x94", "\U0001F600 ok".encode(), None, b"\x00\x01", ("long " * 5000).encode()]
    table = pa.table({"text": pa.array(raw, pa.binary()), "image": pa.array([None] * 5, pa.string())})
    out = scorer.score_batch(table, row_offset=0).to_pylist()
    assert [r["row"] for r in out] == [0, 1, 2, 3, 4]
    # Without an id column, the next batch of the same stream continues the numbering.
    assert scorer.score_batch(table.slice(0, 2)).column("row").to_pylist() == [5, 6]
    assert [r["label"] is None for r in out] == [False, False, True, True, False]
    # A string column whose bytes are not UTF-8 (written by a careless producer) still scores.
    bad = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.array([0, 6], np.int32).tobytes()),
                                                  pa.py_buffer(b"ab\xff\xfecd")])
    got = scorer.score_batch(pa.table({"text": bad, "image": pa.array([None], pa.string())}))
    assert got.column("label")[0].as_py() is not None


def test_image_bytes_column_and_pandas_input(messy, scorers):
    import pandas as pd

    path, _ = messy
    good = (path.parent / "good.jpg").read_bytes()
    frame = pd.DataFrame({"guid": [7, 8, 9], "text": ["a", "b", "c"], "image": [good, b"", b"junk"]})
    out = score_table(frame, scorers["ote"].folder.path, device="cpu").to_pylist()
    assert [r["guid"] for r in out] == [7, 8, 9]
    assert [_kind(r["error"]) for r in out] == [None, "empty", "not_image"]


def test_score_batch_needs_an_image_root_for_relative_paths(messy, scorers):
    """The CLI reads relative paths from each input file's folder; the API has no file, so a
    relative path without image_root is an error, never a silently 'missing' image."""
    path, _ = messy
    table = pq.read_table(path)
    with pytest.raises(InputError, match="image_root"):
        scorers["ote"].score_batch(table)
    absolute = table.set_column(table.schema.get_field_index("image"), "image",
                                pa.array([str(path.parent / v) if v else v for v in table.column("image").to_pylist()]))
    rows = scorers["ote"].score_batch(absolute).to_pylist()
    ref = scorers["ote"].score_batch(table, image_root=path.parent).to_pylist()
    kept = [(r["guid"], r["error_kind"]) for r in rows if r["guid"] not in ("g-dotdot", "g-abs")]
    assert kept == [(r["guid"], r["error_kind"]) for r in ref if r["guid"] not in ("g-dotdot", "g-abs")]


def test_plain_onnxruntime_example_scores_like_the_scorer(messy, models, scorers, capsys):
    """export/run_with_onnxruntime.py (the model folder wired by hand) gives the Scorer's label."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("example", Path(__file__).parents[1] / "export" / "run_with_onnxruntime.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path, _ = messy
    image = path.parent / "good.jpg"
    example.main(str(models["ote"]), "what a day", str(image))
    printed = capsys.readouterr().out.split()
    want = scorers["ote"].score_batch(pa.table({"text": ["what a day"], "image": [str(image)]})).to_pylist()[0]
    assert printed[0] == want["label"]
    assert float(printed[2]) == pytest.approx(want["prob_positive"], abs=1e-3)


def test_allow_outside_root(messy, models, scorers, tmp_path):
    path, _ = messy
    table = pq.read_table(path).filter(pa.compute.is_in(pa.compute.field("guid"), pa.array(["g-dotdot", "g-abs"])))
    pq.write_table(table, tmp_path / "two.parquet")
    for allow, kind in ((False, "outside_root"), (True, None)):
        out = tmp_path / f"o{allow}.parquet"
        _run(tmp_path / "two.parquet", models["ote"], out, scorer=scorers["ote"], image_root=path.parent,
             allow_outside_root=allow)
        assert [_kind(e) for e in pq.read_table(out).column("error").to_pylist()] == [kind, kind]


# ----------------------------------------------------------------------------------- files and API

def test_folder_glob_positions_and_roots(tmp_path, models, scorers):
    """Several files: rows numbered over all of them; image paths relative to each file's folder."""
    for part in ("a", "b"):
        d = tmp_path / "in" / part
        d.mkdir(parents=True)
        noisy_jpeg(d / "x.jpg", (80, 60), seed=ord(part))
        pq.write_table(pa.table({"text": [f"{part}{i}" for i in range(5)], "image": ["x.jpg"] * 5}), d / f"{part}.parquet")
    out = tmp_path / "glob.parquet"
    _run(str(tmp_path / "in" / "*" / "*.parquet"), models["ote"], out, scorer=scorers["ote"], row_group_size=3)
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(10))
    assert table.column("error").null_count == 10
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # 3 + 3 + 3 + 1, across the file boundary


def test_score_batch_equals_score_files(messy, models, scorers, tmp_path):
    path, _ = messy
    out = tmp_path / "files.parquet"
    _run(path, models["ote"], out, scorer=scorers["ote"], row_group_size=1000)
    files = pq.read_table(out)
    api = scorers["ote"].score_batch(pq.read_table(path), image_root=path.parent)
    assert api.column_names == files.column_names
    assert api.column("error").to_pylist() == files.column("error").to_pylist()
    for c in PROBS:
        np.testing.assert_allclose(api.column(c).to_numpy(zero_copy_only=False),
                                   files.column(c).to_numpy(zero_copy_only=False), atol=1e-6)


def test_worker_processes_give_the_same_output(messy, models, scorers, tmp_path):
    path, _ = messy
    a, b = tmp_path / "inline.parquet", tmp_path / "pool.parquet"
    _run(path, models["ote"], a, scorer=scorers["ote"], workers=0, row_group_size=4)
    # three prep threads finish batches out of order; the writer still writes chunks in order
    _run(path, models["ote"], b, scorer=scorers["ote"], workers=2, prefetch=2, prep_threads=3, row_group_size=4)
    assert pq.read_table(a).equals(pq.read_table(b))


def test_reader_waits_for_the_writer(messy, models, scorers, tmp_path, monkeypatch):
    """At most CHUNKS_IN_FLIGHT row groups exist between being read and being written, even
    when writing is slow: memory depends on the row-group size, not on the file's length."""
    from mmsa_cli.scoring.engines import local as pipeline
    from mmsa_cli.io.checkpointed import OutputWriter

    path, _ = messy
    scorer, alive, peak = scorers["ote"], [0], [0]
    plan, write_part = scorer.plan, OutputWriter.write_part

    def counted_plan(*args, **kw):
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        return plan(*args, **kw)

    def slow_write_part(self, *args, **kw):
        time.sleep(0.05)  # a slow disk: without the limit the reader runs ahead
        alive[0] -= 1
        return write_part(self, *args, **kw)

    monkeypatch.setattr(scorer, "plan", counted_plan)
    monkeypatch.setattr(OutputWriter, "write_part", slow_write_part)
    summary = _run(path, models["ote"], tmp_path / "out.parquet", scorer=scorer, row_group_size=2, batch_size=2)
    assert summary["rows"] == pq.read_metadata(path).num_rows > 8 * 2
    assert peak[0] == pipeline.CHUNKS_IN_FLIGHT  # bounded, and still overlapping


def test_worker_pixels_come_back_through_shared_slots(jpegs, scorers):
    """Workers write pixels into shared memory; the parent reads them in place (views of the
    slot), equal to in-process preparation; slots are reused only once released; a task list
    bigger than a slot falls back to the pipe; a stopped run does not wait for a slot."""
    import threading

    from mmsa_cli.scoring.images.workers import WorkerPool

    spec = scorers["ote"].image_spec()
    tasks = [(v, str(jpegs.parent)) for v in pq.read_table(jpegs).column("image").to_pylist()]
    expected, _ = prepare_images(tasks, spec)
    stop = threading.Event()
    pool = WorkerPool(2, spec, slot_count=2, slot_images=16, stop=stop)
    try:
        assert pool.slots is not None and pool.slots.free() == 2
        parts = [pool.submit(tasks[:16]), pool.submit(tasks[16:])]
        assert pool.slots.free() == 0
        got = [r for f in parts for r in f.result(timeout=60)[0]]
        assert [r.status for r in got] == [r.status for r in expected]
        assert [r.error for r in got] == [r.error for r in expected]
        pixels = [(g, e) for g, e in zip(got, expected) if e.status == "pixels"]
        assert pixels and all(np.shares_memory(g.payload, pool.slots.view) for g, _ in pixels)
        assert all(np.array_equal(g.payload, e.payload) for g, e in pixels)
        big = pool.submit(tasks[:20])  # more than a slot holds: pickled through the pipe
        assert big.slot is None and np.array_equal(big.result(timeout=60)[0][0].payload, expected[0].payload)
        stop.set()
        with pytest.raises(Exception, match="stopped"):
            pool.submit(tasks[:4]).result(timeout=5)  # no free slot, and the run is stopping
        for f in parts:
            pool.release(f)
        pool.release(parts[0])  # a second release is a no-op
        assert pool.slots.free() == 2
    finally:
        pool.shutdown()


def test_metadata_records_model_and_job(messy, models, scorers, tmp_path):
    path, _ = messy
    out = tmp_path / "meta.parquet"
    _run(path, models["ote"], out, scorer=scorers["ote"])
    meta = pq.read_schema(out).metadata
    model = json.loads(meta[b"mmsa.model"])
    assert model["model_sha256"] == scorers["ote"].manifest.model_sha256 and model["fusion"] == "ote"
    assert meta[b"mmsa.version"] and json.loads(meta[b"mmsa.job"])["model_sha256"] == model["model_sha256"]
    assert not Path(str(out) + ".parts").exists()


def test_empty_input_writes_an_empty_file(models, scorers, tmp_path):
    pq.write_table(pa.table({"guid": pa.array([], pa.int64()), "text": pa.array([], pa.string()),
                             "image": pa.array([], pa.string())}), tmp_path / "none.parquet")
    out = tmp_path / "none-scored.parquet"
    summary = _run(tmp_path / "none.parquet", models["ote"], out, scorer=scorers["ote"])
    assert summary["rows"] == 0 and pq.read_table(out).num_rows == 0
    assert pq.read_schema(out).field("guid").type == pa.int64()


def test_cuda_asked_without_gpu_is_an_error_before_any_work(messy, models, tmp_path):
    """--device cuda never falls back silently: a scheduler must not see success for a CPU run."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this checks machines without a usable GPU")
    from mmsa_cli.errors import EXIT_DEVICE, DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError, match="--device cuda"):
        Scorer(models["ote"], "cuda", batch_size=8)
    path, _ = messy
    out = tmp_path / "cuda.parquet"
    result = CliRunner().invoke(main, ["score", str(path), "--model", str(models["ote"]), "--out", str(out),
                                       "--device", "cuda", "--no-progress"])
    assert result.exit_code == EXIT_DEVICE, result.output
    assert "--device cuda" in result.output and not out.exists()


def test_io_binding_path_matches_session_run(scorers):
    scorer = scorers["ote"]
    rng = np.random.default_rng(0)
    s = scorer.manifest.image_size
    ids, mask = rng.integers(1000, 2000, (3, 7)), np.ones((3, 7), np.int64)
    pixels = rng.normal(size=(3, 3, s, s)).astype(np.float32)
    np.testing.assert_allclose(scorer.model._run_cuda(ids, mask, pixels),
                               scorer({"input_ids": ids, "attention_mask": mask, "pixel_values": pixels})["probs"],
                               atol=1e-6)


def test_fixed_batch_padding_changes_no_result(messy, scorers):
    """CUDA pads every batch to one shape (cuDNN compiles kernels per shape): the padded rows
    must never show, and the real rows must score as unpadded."""
    import torch

    scorer = scorers["ote"]
    table = pq.read_table(messy[0])
    plain = scorer.score_batch(table, image_root=messy[0].parent)
    assert scorer.model.fixed_batch is None  # the CPU default: run batches as they are
    scorer.model.fixed_batch = scorer.batch_size + 5
    try:
        padded = scorer.score_batch(table, image_root=messy[0].parent)
    finally:
        scorer.model.fixed_batch = None
    assert padded.num_rows == plain.num_rows
    assert padded.column("label").equals(plain.column("label"))
    np.testing.assert_allclose(padded.column("prob_positive").to_numpy(zero_copy_only=False),
                               plain.column("prob_positive").to_numpy(zero_copy_only=False), atol=1e-6)
    ids, mask = np.arange(6).reshape(2, 3), np.ones((2, 3), np.int64)
    for pixels in (np.zeros((2, 3, 4, 4), np.float32), torch.zeros(2, 3, 4, 4)):
        i, m, p = pad_rows(ids, mask, pixels, 5)
        assert i.shape == (5, 3) and m.shape == (5, 3) and tuple(p.shape) == (5, 3, 4, 4)
        assert (i[2:] == ids[0]).all() and type(p) is type(pixels)


# ----------------------------------------------------------------------------------- reruns and resume

def test_rerun_is_a_noop_and_changes_are_refused(messy, models, scorers, tmp_path):
    path, _ = messy
    out = tmp_path / "job.parquet"
    _run(path, models["ote"], out, scorer=scorers["ote"])
    before = out.stat().st_mtime_ns
    assert _run(path, models["ote"], out, scorer=scorers["ote"])["status"] == "already_complete"
    assert _run(path, models["ote"], out, scorer=scorers["ote"], resume=True)["status"] == "already_complete"
    assert out.stat().st_mtime_ns == before
    with pytest.raises(OutputExistsError):  # same output name, another job
        _run(path, models["ote"], out, scorer=scorers["ote"], columns=Columns(keep=("user",)))
    assert _run(path, models["ote"], out, scorer=scorers["ote"], overwrite=True)["status"] == "done"


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_kill_9_then_resume_equals_uninterrupted_run(messy, models, scorers, tmp_path):
    """A real `mmsa score` process (with an image worker) killed with SIGKILL after two row
    groups; --resume continues at row 20 and the file equals an uninterrupted run's."""
    path, _ = messy
    big = tmp_path / "big.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(path)] * 4), big, row_group_size=30)  # 100 rows
    opts = dict(image_root=path.parent, row_group_size=10, batch_size=4, columns=Columns(keep=("user",)))
    ref = tmp_path / "ref.parquet"
    _run(big, models["ote"], ref, scorer=scorers["ote"], **opts)

    out = tmp_path / "killed.parquet"
    env = {**os.environ, PAUSE_ENV: "0.3", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mmsa_cli.cli", "score", str(big), "--model", str(models["ote"]),
                             "--out", str(out), "--image-root", str(path.parent), "--row-group-size", "10",
                             "--batch-size", "4", "--workers", "1", "--keep-columns", "user", "--no-progress"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = Path(str(out) + ".parts") / "checkpoint.json"
    deadline = time.time() + 45
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text())["parts"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    done = json.loads(checkpoint.read_text())["rows_done"]
    assert 20 <= done < 100
    deadline = time.time() + 5  # the image worker notices its parent is gone and exits
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers):
        time.sleep(0.1)
    assert workers and not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]

    with pytest.raises(OutputExistsError, match="--resume"):
        _run(big, models["ote"], out, scorer=scorers["ote"], **opts)
    summary = _run(big, models["ote"], out, scorer=scorers["ote"], resume=True, **opts)
    assert summary["resumed_from_row"] == done and summary["rows"] == 100 and summary["rows_this_run"] == 100 - done
    assert pq.read_table(out).equals(pq.read_table(ref))
    assert pq.read_schema(out).metadata == pq.read_schema(ref).metadata
    assert pq.ParquetFile(out).metadata.num_row_groups == 10


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_chunks_resume_at_any_row_group_boundary(tmp_path):
    from mmsa_cli.scoring.inputs import iter_chunks, open_inputs, resolve_columns

    t = pa.table({"text": [str(i) for i in range(100)], "image": ["x"] * 100})
    pq.write_table(t, tmp_path / "a.parquet", row_group_size=30)
    pq.write_table(t.slice(0, 7), tmp_path / "b.parquet", row_group_size=3)
    source = open_inputs([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    cols = resolve_columns(source.files[0].schema, Columns(), uses_text=True, uses_image=True, where="t")
    every = [x for c in iter_chunks(source, cols, 10) for x in c.table.column("text").to_pylist()]
    assert len(every) == 107
    for start in range(0, 110, 10):
        chunks = list(iter_chunks(source, cols, 10, start, read_rows=7))
        assert [c.start for c in chunks] == list(range(start, 107, 10))
        assert [x for c in chunks for x in c.table.column("text").to_pylist()] == every[start:]


@pytest.mark.parametrize("row_group_size", [5_000, 200_000])
def test_reading_memory_does_not_grow_with_the_file(tmp_path, row_group_size):
    """Arrow memory held while chunks are read: the same for a file 8x longer, with many row
    groups or one (pyarrow's default pre-buffering loaded every row group up front)."""
    from mmsa_cli.scoring.inputs import iter_chunks, open_inputs, resolve_columns

    rng = np.random.default_rng(0)
    rows = 25_000
    texts = ["".join(chr(c) for c in rng.integers(97, 123, 120)) for _ in range(rows)]  # hardly compressible
    table = pa.table({"text": texts, "image": [f"img/{i}.jpg" for i in range(rows)]})
    pq.write_table(table, tmp_path / "short.parquet", row_group_size=row_group_size)
    pq.write_table(pa.concat_tables([table] * 8), tmp_path / "long.parquet", row_group_size=row_group_size)

    def held_mib(name: str) -> float:
        source = open_inputs(tmp_path / name)
        cols = resolve_columns(source.files[0].schema, Columns(), uses_text=True, uses_image=True, where="t")
        peak = 0
        for chunk in iter_chunks(source, cols, 4_096):
            peak = max(peak, pa.total_allocated_bytes())
            del chunk
        return peak / 2**20

    short, long = held_mib("short.parquet"), held_mib("long.parquet")
    assert (tmp_path / "long.parquet").stat().st_size > 20 * 2**20
    assert long <= short + 2, f"reading held {long:.1f} MiB for 200,000 rows, {short:.1f} MiB for 25,000"


def test_resume_with_other_options_is_refused(messy, models, scorers, tmp_path):
    path, _ = messy
    out = tmp_path / "r.parquet"
    parts = Path(str(out) + ".parts")
    with pytest.raises(KeyboardInterrupt):  # stop after the first row group, like Ctrl-C
        _interrupt_after_first_part(path, models, scorers, out)
    assert (parts / "checkpoint.json").exists() and not out.exists()
    with pytest.raises(ResumeMismatchError, match="batch_size"):
        _run(path, models["ote"], out, scorer=scorers["ote"], row_group_size=5, resume=True, batch_size=3)
    summary = _run(path, models["ote"], out, scorer=scorers["ote"], row_group_size=5, resume=True)
    assert summary["resumed_from_row"] == 5 and summary["rows"] == 25


def _interrupt_after_first_part(path, models, scorers, out):
    from mmsa_cli.io import checkpointed as output

    original = output.OutputWriter.write_part

    def write_once(self, *a, **kw):
        if self.checkpoint.parts >= 1:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    output.OutputWriter.write_part = write_once
    try:
        _run(path, models["ote"], out, scorer=scorers["ote"], row_group_size=5)
    finally:
        output.OutputWriter.write_part = original


# ----------------------------------------------------------------------------------- CLI

def test_cli_stats_json_dash_is_standard_output(messy, models, tmp_path):
    """The shared vocabulary: `--stats-json -` puts the JSON on stdout, the summary lines on stderr."""
    path, _ = messy
    result = CliRunner().invoke(main, ["score", str(path), "--model", str(models["ote"]), "--workers", "0",
                                       "--device", "cpu", "--out", str(tmp_path / "o.parquet"), "--no-progress",
                                       "--stats-json", "-"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["status"] == "done" and stats["rows"] == pq.read_metadata(tmp_path / "o.parquet").num_rows
    assert "rows with errors" in result.stderr and not (tmp_path / "-").exists()


def test_cli_exit_codes_and_summary(messy, models, tmp_path):
    path, _ = messy
    runner = CliRunner()
    out = tmp_path / "cli.parquet"
    base = ["score", str(path), "--model", str(models["ote"]), "--workers", "0", "--device", "cpu"]
    ok = runner.invoke(main, [*base, "--out", str(out), "--stats-json", str(tmp_path / "stats.json"),
                              "--gpu-decode-share", "0.5"])  # no effect on the CPU
    assert ok.exit_code == 0, ok.output
    assert "rows with errors" in ok.output and "stage busy time" in ok.output
    assert "images: 0 decoded by nvJPEG, 13 on the CPU" in ok.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["status"] == "done" and set(stats["stage_seconds"]) >= {"read", "tokenize", "infer", "write"}
    assert stats["images"] == {"nvjpeg": 0, "cpu": 13, "nvjpeg_rejected": 0, "gpu_decode_share": None,
                              "decoder": "cpu"}
    assert runner.invoke(main, [*base, "--out", str(out)]).exit_code == 0  # no-op

    def code(args):
        return runner.invoke(main, args).exit_code

    assert code(["score", str(tmp_path / "nope.parquet"), "--model", str(models["ote"]), "--out", str(tmp_path / "x.parquet")]) == 2
    assert code([*base, "--out", str(tmp_path / "y.parquet"), "--text-col", "tweet"]) == 2
    assert code([*base, "--out", str(tmp_path / "y.parquet"), "--keep-columns", "label"]) == 2
    assert code([*base, "--out", str(tmp_path / "y.parquet"), "--resume", "--overwrite"]) == 2
    assert code([*base, "--out", str(tmp_path / "y.parquet"), "--gpu-decode-share", "1.5"]) == 2
    assert code([*base, "--out", str(tmp_path / "y.parquet"), "--gpu-decode-share", "most"]) == 2
    assert code([*base, "--out", str(out), "--keep-columns", "user"]) == 4
    broken = tmp_path / "broken"
    shutil.copytree(models["ote"], broken)
    assert code(["score", str(path), "--model", str(broken / "missing"), "--out", str(tmp_path / "z.parquet")]) == 3
    with (broken / "model.onnx").open("ab") as fh:
        fh.write(b"tampered")
    failed = runner.invoke(main, ["score", str(path), "--model", str(broken), "--out", str(tmp_path / "z.parquet"),
                                  "--stats-json", str(tmp_path / "fail.json")])
    assert failed.exit_code == 3 and "does not match its checksum" in failed.output
    assert json.loads((tmp_path / "fail.json").read_text())["exit_code"] == 3


def test_progress_lines_when_not_a_terminal():
    from mmsa_cli.scoring.report import RowProgress

    stream = io.StringIO()
    progress = RowProgress(100, enabled=True, every_s=0.0, stream=stream)
    progress.update(40, errors=2)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("mmsa score: 40/100 rows (40.0%)") and "rows/s" in lines[0] and "ETA" in lines[0]
    assert "2 rows with errors" in lines[0] and lines[-1].endswith("done")


def test_input_errors_name_the_problem(tmp_path, models, scorers):
    with pytest.raises(InputError, match="no Parquet files"):
        _run(tmp_path, models["ote"], tmp_path / "o.parquet", scorer=scorers["ote"])
    pq.write_table(pa.table({"text": ["a"], "image": [1]}), tmp_path / "ints.parquet")
    with pytest.raises(InputError, match="image column 'image'.*type int64"):
        _run(tmp_path / "ints.parquet", models["ote"], tmp_path / "o.parquet", scorer=scorers["ote"])


# ----------------------------------------------------------------------------------- on a GPU machine

def _cuda_ready() -> bool:
    import onnxruntime as ort
    import torch

    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_ready(), reason="needs a CUDA GPU and onnxruntime-gpu")
def test_cuda_pipeline_matches_cpu(messy, models, scorers, tmp_path):
    """nvJPEG + batched resize + IO binding: same rows, same errors, near-identical numbers."""
    import torch

    path, _ = messy
    scorer = Scorer(models["ote"], "cuda", batch_size=8)
    assert scorer.provider == "CUDAExecutionProvider" and not scorer.warnings
    out = tmp_path / "gpu.parquet"
    summary = _run(path, models["ote"], out, scorer=scorer, workers=2)
    assert summary["device"] == "cuda" and summary["stage_seconds"]["decode_gpu"] > 0
    gpu = pq.read_table(out)
    cpu = scorers["ote"].score_batch(pq.read_table(path), image_root=path.parent)
    assert gpu.column("error").to_pylist() == cpu.column("error").to_pylist()
    for c in PROBS:
        np.testing.assert_allclose(gpu.column(c).to_numpy(zero_copy_only=False),
                                   cpu.column(c).to_numpy(zero_copy_only=False), atol=2e-3)
    # GPU pixels vs the CPU path's, on real nvJPEG output
    table = pq.read_table(path)
    tasks = [(v, str(path.parent)) for v in table.column("image").to_pylist()]
    gpu_px, gpu_err = scorer.pixel_batch(prepare_images(tasks, scorer.image_spec())[0], scorer.image_spec())
    cpu_px, cpu_err = scorers["ote"].pixel_batch(prepare_images(tasks, scorers["ote"].image_spec())[0],
                                                 scorers["ote"].image_spec())
    assert isinstance(gpu_px, torch.Tensor) and gpu_px.is_cuda and gpu_err == cpu_err
    diff = np.abs(gpu_px.cpu().numpy() - cpu_px) * 0.229 * 255
    assert diff.mean() < 1.0
