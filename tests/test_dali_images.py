"""The DALI image path (mmsa_cli/scoring/dali_images.py) on the CPU: DALI's CPU operators run
the same pipeline as the GPU's mixed decoder, against the CPU path; files DALI refuses fall
back to the CPU path with their errors; the --image-decoder option and its choice.

Tests marked `needs_dali` run where DALI is installed (`pip install nvidia-dali-cuda130`, the
[gpu] extra); the rest run everywhere, the DALI bookkeeping with a stand-in pipeline
(FakeDaliPipeline, named as such) that decodes with Pillow."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mmsa_cli.cli import main
from mmsa_cli.contract.geometry import plan_resize
from mmsa_cli.errors import ConfigError
from mmsa_cli.scoring import Scorer, ScoreOptions, score_files
from mmsa_cli.scoring.images import dali as dali_images
from mmsa_cli.scoring.images.dali import DECODERS, DaliImages, crop_window, gpu_image_path, jpeg_size
from mmsa_cli.scoring.images.gpu import GpuImages
from mmsa_cli.scoring.images.prepare import ImageResult, ImageSpec, prepare_images

sys.path.insert(0, str(Path(__file__).parent))
from scoring_helpers import noisy_jpeg  # noqa: E402

needs_dali = pytest.mark.skipif(dali_images.dali_missing() is not None,
                                reason="NVIDIA DALI is not installed here (pip install nvidia-dali-cuda130)")


@pytest.fixture(scope="module")
def model(models) -> Path:
    return models["ote"]  # conftest's session model folders: exported once for the suite


@pytest.fixture(scope="module")
def scorer(scorers) -> Scorer:
    return scorers["ote"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, list[str]]:
    """Plain JPEGs of several sizes (some at least 2S, which the CPU path DCT-drafts), and rows
    that take the CPU path or fail: grey, progressive, PNG, truncated, missing."""
    folder = tmp_path_factory.mktemp("images")
    sizes = [(300, 200), (200, 300), (640, 480), (64, 64), (150, 90), (90, 160), (500, 140), (1000, 700)]
    names = [noisy_jpeg(folder / f"plain{i}.jpg", sizes[i % len(sizes)], seed=i).name for i in range(16)]
    Image.open(folder / "plain0.jpg").convert("L").save(folder / "grey.jpg")
    Image.open(folder / "plain1.jpg").save(folder / "progressive.jpg", progressive=True)
    Image.open(folder / "plain2.jpg").save(folder / "alpha.png")
    (folder / "truncated.jpg").write_bytes((folder / "plain3.jpg").read_bytes()[:300])
    names[2:2] = ["grey.jpg", "progressive.jpg", "alpha.png"]
    names[9:9] = ["truncated.jpg", "missing.jpg"]
    return folder, names


def _spec(scorer: Scorer, gpu_jpeg: bool) -> ImageSpec:
    s = scorer.image_spec()
    return ImageSpec(s.size, s.mean, s.std, gpu_jpeg=gpu_jpeg)


def _grey_levels(a, b, std: float) -> np.ndarray:
    return np.abs(np.asarray(a) - np.asarray(b)) * std * 255


# ----------------------------------------------------------------------------------- geometry

def test_jpeg_size_reads_the_frame_header(images):
    folder, names = images
    for name in ("plain0.jpg", "plain2.jpg", "progressive.jpg", "grey.jpg"):
        assert jpeg_size((folder / name).read_bytes()) == Image.open(folder / name).size, name
    exif = io.BytesIO()
    Image.open(folder / "plain5.jpg").save(exif, "JPEG", exif=Image.Exif())  # an APP1 segment before the frame
    assert jpeg_size(exif.getvalue()) == (90, 160)
    assert jpeg_size((folder / "alpha.png").read_bytes()) is None
    assert jpeg_size(b"\xff\xd8\xff") is None and jpeg_size(b"") is None


def test_crop_window_is_the_cpu_paths_resize_and_crop():
    """The window DALI resizes to S x S covers what the CPU path's resize + centre crop keeps."""
    assert crop_window(64, 64, 64) == (0.0, 0.0, 64.0, 64.0)
    assert crop_window(128, 64, 64) == (0.0, 32.0, 64.0, 96.0)            # the centre of the longer side
    y0, x0, y1, x1 = crop_window(640, 480, 224)                              # drafted by 2 on the CPU path
    assert (y0, y1) == (0.0, 480.0) and x1 - x0 == pytest.approx(480.0, abs=2.5)
    k, rw, rh, new_w, new_h, left, top = plan_resize(640, 480, 224, draft=True)
    assert x0 == pytest.approx(left * rw / new_w * k)                        # the same crop corner


# ----------------------------------------------------------------------------------- DALI on the CPU

@needs_dali
def test_dali_cpu_backend_matches_the_cpu_path(images, scorer):
    """DALI's CPU operators (the GPU pipeline with device="cpu" decoders) against the CPU path:
    the same errors, every row in order, pixels close (measured here, grey levels: 0.2 mean for
    images the CPU path resizes directly, the decoders' difference; 0.5-5 mean and up to ~70 at
    hard edges for those it DCT-drafts, which DALI filters instead), probabilities within 1e-2."""
    folder, names = images
    tasks = [(n, str(folder)) for n in names]
    cpu_px, cpu_err = scorer.pixel_batch(prepare_images(tasks, _spec(scorer, False))[0], _spec(scorer, False))
    results, _ = prepare_images(tasks, _spec(scorer, True))
    assert sum(r.status == "jpeg" for r in results) == 16
    dali = DaliImages(scorer.manifest, torch.device("cpu"), max_batch=8)  # 21 rows: batches are split
    px, err = dali(results, _spec(scorer, True))
    assert err == cpu_err and sum(e is not None for e in err) == 2
    std = min(scorer.manifest.image_std)
    diff = _grey_levels(px.numpy(), cpu_px, std)
    jpeg_rows = [i for i, r in enumerate(results) if r.status == "jpeg"]
    assert diff[jpeg_rows].mean() < 3.0 and diff.max() <= 120
    other_rows = [i for i, r in enumerate(results) if r.status != "jpeg"]
    np.testing.assert_array_equal(px.numpy()[other_rows], cpu_px[other_rows])  # CPU-prepared rows: exact
    undrafted = [i for i in jpeg_rows if min(Image.open(folder / names[i]).size) < 2 * scorer.inputs.image_size]
    assert diff[undrafted].mean() < 0.5  # no draft: only the decoders and the filter's rounding differ
    assert dali.counts == {"dali": 16, "cpu": 3, "dali_rejected": 0}
    ids, mask = scorer._tokenize(["a tweet"] * len(names))
    p_dali = scorer({"input_ids": ids, "attention_mask": mask, "pixel_values": px.numpy()})["probs"]
    p_cpu = scorer({"input_ids": ids, "attention_mask": mask, "pixel_values": cpu_px})["probs"]
    assert np.abs(p_dali - p_cpu).max() < 1e-2 and (p_dali.argmax(1) == p_cpu.argmax(1)).all()


@needs_dali
def test_files_dali_refuses_take_the_cpu_path_and_keep_their_errors(images, scorer):
    """Bytes handed to DALI that it cannot decode never stop the batch: the good JPEGs around
    them are DALI's, the bad ones get the CPU path's verdict (pixels or an error), in order."""
    folder, _ = images
    good = (folder / "plain0.jpg").read_bytes()
    png = (folder / "alpha.png").read_bytes()                       # not a JPEG: no frame header
    broken = good[:200] + b"\x00" * 400 + b"\xff\xd9"               # a header, then garbage
    results = [ImageResult("jpeg", good, None), ImageResult("jpeg", broken, None), ImageResult("jpeg", png, None),
               ImageResult("error", None, "missing: gone"), ImageResult("jpeg", good, None)]
    dali = DaliImages(scorer.manifest, torch.device("cpu"), max_batch=8)
    px, err = dali(results, _spec(scorer, True))
    assert err[0] is None and err[4] is None and err[2] is None and err[3] == "missing: gone"
    assert err[1] is not None and err[1].startswith("corrupt:")
    np.testing.assert_array_equal(px[0].numpy(), px[4].numpy())
    assert px[0].abs().sum() > 0 and px[2].abs().sum() > 0 and px[1].abs().sum() == 0 and px[3].abs().sum() == 0
    assert dali.counts == {"dali": 2, "cpu": 1, "dali_rejected": 2}
    again, _ = dali(results[:1], _spec(scorer, True))  # the failed pipeline was replaced: DALI still works
    np.testing.assert_array_equal(again[0].numpy(), px[0].numpy())


@needs_dali
def test_score_files_through_the_dali_path_on_the_cpu(images, model, scorer, tmp_path):
    """score_files with the DALI image path (CPU operators) and worker processes: every row in
    input order with the CPU run's errors and labels; the summary counts DALI's images."""
    folder, names = images
    table = pa.table({"guid": [f"r{i}" for i in range(len(names))], "text": ["good day"] * len(names),
                      "image": names})
    pq.write_table(table, folder / "rows.parquet")
    opts = dict(workers=2, progress=False, overwrite=True)
    score_files(folder / "rows.parquet", model, tmp_path / "cpu.parquet", ScoreOptions(**opts), scorer=scorer)
    dali_scorer = Scorer(model, "cpu", batch_size=8)
    dali_scorer._gpu, dali_scorer.image_decoder = DaliImages(dali_scorer.manifest, torch.device("cpu"), 8), "dali"
    summary = score_files(folder / "rows.parquet", model, tmp_path / "dali.parquet", ScoreOptions(**opts),
                          scorer=dali_scorer)
    cpu, dali = pq.read_table(tmp_path / "cpu.parquet"), pq.read_table(tmp_path / "dali.parquet")
    for column in ("guid", "error", "label", "predicted_from"):
        assert dali.column(column).to_pylist() == cpu.column(column).to_pylist(), column
    assert summary.images["dali"] == 16 and summary.images["cpu"] == 3 and summary.images["decoder"] == "dali"
    assert summary.errors_by_kind == {"corrupt": 1, "missing": 1}
    assert "decoded by DALI" in "\n".join(summary.lines())


# ----------------------------------------------------------------------------------- everywhere

class FakeDaliPipeline:
    """Stands in for DaliPipeline where DALI is not installed: decodes with Pillow, resizes the
    crop window to S x S, normalises; raises, like DALI, for the whole batch when one fails."""

    def __init__(self, size, mean, std):
        self.size, self.mean, self.std = size, np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __call__(self, blobs, windows):
        out = []
        for blob, (y0, x0, y1, x1) in zip(blobs, windows):
            img = Image.open(io.BytesIO(blob.tobytes())).convert("RGB")  # raises on a bad file
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
            arr = (np.asarray(img, np.float32) / 255 - self.mean) / self.std
            out.append(arr.transpose(2, 0, 1))
        return FakeTensorList(np.stack(out))


class FakeTensorList:
    def __init__(self, array):
        self.array = array

    def as_array(self):
        return self.array


def test_dali_row_bookkeeping_with_a_fake_pipeline(images, scorer, monkeypatch):
    """Runs without DALI: rows keep their order and errors, a batch with a bad file is retried
    image by image, refused files take the CPU path; counts add up."""
    folder, names = images
    m = scorer.manifest
    monkeypatch.setattr(dali_images, "DaliPipeline",
                        lambda size, mean, std, *a, **k: FakeDaliPipeline(size, mean, std))
    tasks = [(n, str(folder)) for n in names]
    results, _ = prepare_images(tasks, _spec(scorer, True))
    broken = (folder / "plain0.jpg").read_bytes()[:200] + b"\x00" * 100 + b"\xff\xd9"
    results[0] = ImageResult("jpeg", broken, None)
    fake = DaliImages(m, torch.device("cpu"), max_batch=8)
    px, err = fake(results, _spec(scorer, True))
    cpu_px, cpu_err = scorer.pixel_batch(prepare_images(tasks, _spec(scorer, False))[0], _spec(scorer, False))
    assert err[0].startswith("corrupt:") and err[1:] == cpu_err[1:]
    assert fake.counts == {"dali": 15, "cpu": 3, "dali_rejected": 1}
    diff = _grey_levels(px.numpy()[1:], cpu_px[1:], min(m.image_std))
    assert diff.mean() < 2.0  # each row holds its own image (a swapped row would be far off)


def test_image_decoder_option_and_choice(model, scorer, monkeypatch, tmp_path):
    m, cpu = scorer.manifest, torch.device("cpu")
    assert dali_images.check_decoder(" DALI ") == "dali"
    with pytest.raises(ConfigError, match="image_decoder must be one of auto, dali, nvjpeg, cpu"):
        dali_images.check_decoder("pillow")
    with pytest.raises(ConfigError):
        Scorer(model, "cpu", image_decoder="pillow")
    with pytest.raises(ConfigError):
        score_files("nowhere.parquet", model, tmp_path / "x.parquet", ScoreOptions(image_decoder="pillow"))
    cli_choices = next(p for p in main.get_command(None, "score").params if p.name == "image_decoder").type.choices
    assert tuple(cli_choices) == DECODERS
    result = CliRunner().invoke(main, ["score", "x.parquet", "--model", str(model), "--out", "o.parquet",
                                       "--image-decoder", "pillow"])
    assert result.exit_code == 2 and "pillow" in result.output
    assert Scorer(model, "cpu", image_decoder="dali").image_decoder is None  # no effect on a CPU run

    warnings: list[str] = []
    name, path = gpu_image_path("cpu", m, cpu, 8, warnings.append)
    assert name == "cpu" and type(path) is GpuImages
    monkeypatch.setattr(dali_images, "dali_missing", lambda: "NVIDIA DALI is not usable here (test)")
    name, path = gpu_image_path("auto", m, cpu, 8, warnings.append)
    assert name == "nvjpeg" and type(path) is GpuImages and not warnings  # an optional extra: no warning
    with pytest.raises(ConfigError, match="image_decoder 'dali': NVIDIA DALI is not usable here"):
        gpu_image_path("dali", m, cpu, 8, warnings.append)
    monkeypatch.setattr(dali_images, "dali_missing", lambda: None)
    monkeypatch.setattr(DaliImages, "warm_up", lambda self: (_ for _ in ()).throw(RuntimeError("no engine\nmore")))
    name, path = gpu_image_path("auto", m, cpu, 8, warnings.append)
    assert name == "nvjpeg" and warnings == ["image decoder auto: NVIDIA DALI failed to start (RuntimeError: "
                                             "no engine); using nvJPEG (torchvision) instead"]
    with pytest.raises(ConfigError, match="failed to start"):
        gpu_image_path("dali", m, cpu, 8, warnings.append)


@needs_dali
def test_auto_picks_dali_where_it_runs(scorer):
    name, path = gpu_image_path("auto", scorer.manifest, torch.device("cpu"), 8, print)
    assert name == "dali" and isinstance(path, DaliImages) and len(path._pool) == 2  # built and warmed up
    assert path.hw_decoder_load == dali_images.HW_DECODER_LOAD == 0.65
