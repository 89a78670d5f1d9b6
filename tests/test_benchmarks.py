"""benchmarks/bench_score.py refuses figures that are not real: error rows in the timed input,
and label agreement over a model whose predictions do not vary."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent))
import bench_score  # noqa: E402
from scoring_helpers import noisy_jpeg  # noqa: E402


def test_refuses_any_error_row_with_one_line():
    bench_score.refuse_row_errors("the timed input", 10, {})  # no error: carries on
    with pytest.raises(SystemExit) as exc:
        bench_score.refuse_row_errors("the timed input", 60000, {"outside_root": 59999, "corrupt": 1})
    message = str(exc.value.code)
    assert "\n" not in message and "refused" in message
    assert "60,000 of 60,000 rows of the timed input" in message and "outside_root 59,999" in message


def test_refuses_agreement_over_predictions_that_do_not_vary():
    counts = bench_score.refuse_constant_predictions("rows", ["positive"] * 90 + ["negative"] * 10)
    assert counts == {"positive": 90, "negative": 10}
    for labels in (["neutral"] * 50, ["positive"] * 96 + ["negative"] * 4, [None] * 5, []):
        with pytest.raises(SystemExit) as exc:
            bench_score.refuse_constant_predictions("the agreement rows", labels)
        assert "refused" in str(exc.value.code) and "\n" not in str(exc.value.code)


def test_symlinked_images_dir_stays_inside_the_scoring_root(tmp_path):
    """The old bug: --images-dir linked into --work made every row outside_root."""
    from mmsa_cli.scoring.images.prepare import ImageSpec, prepare_image

    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        noisy_jpeg(real / f"{i}.jpg", (80, 60), seed=i)
    (tmp_path / "linked").symlink_to(real)
    work = tmp_path / "work"
    paths = bench_score.real_images(tmp_path / "linked", work, 10)
    assert paths == ["img/0.jpg", "img/1.jpg", "img/2.jpg"]
    spec = ImageSpec(32, (0.5,) * 3, (0.5,) * 3)
    assert [prepare_image(p, str(work), spec).status for p in paths] == ["pixels"] * 3


def test_benchmark_exits_non_zero_when_the_timed_input_has_an_error_row(tmp_path):
    """End to end, tiny model on the CPU: one unreadable image among the real ones stops the
    benchmark with a one-line reason before anything is timed."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        noisy_jpeg(images / f"{i}.jpg", (80, 60), seed=i)
    (images / "3.jpg").write_text("not a JPEG")
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_score.py"), "--device", "cpu", "--rows", "8",
           "--images", "4", "--images-dir", str(images), "--text-encoder", "tiny-bert", "--image-encoder", "tiny-cnn",
           "--random-weights", "--max-length", "16", "--workers", "0", "--work", str(tmp_path / "work")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_score: refused:") and "of the warm-up input have errors" in last, done.stderr[-2000:]
    assert "not_image" in last or "corrupt" in last
    assert "Traceback" not in done.stderr


def test_decoder_spec_sets_dalis_hw_decoder_load_for_one_run_only():
    """`--image-decoder dali@0.9` builds DALI with hw_decoder_load 0.9 and leaves the default alone."""
    from mmsa_cli.scoring.images import dali as dali_images

    class RecordingScorer:  # stands in for Scorer.use_image_decoder on a CUDA machine
        def use_image_decoder(self, name):
            self._gpu = type("Gpu", (), {"hw_decoder_load": dali_images.HW_DECODER_LOAD})()
            return name

    default = dali_images.HW_DECODER_LOAD
    assert bench_score.use_decoder(RecordingScorer(), "dali@0.9") == "dali (hw_decoder_load 0.9)"
    assert dali_images.HW_DECODER_LOAD == default
    assert bench_score.use_decoder(RecordingScorer(), "dali") == f"dali (hw_decoder_load {default})"
    assert bench_score.use_decoder(RecordingScorer(), "nvjpeg") == "nvjpeg"
