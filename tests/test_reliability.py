"""Issue 18: hostile inputs and faults. Each test names the item it covers; each one failed
before the fix. The cases the audit found already handled are in test_score.py."""
from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mmsa_cli.cli import main
from mmsa_cli.contract.images import ImageLoadError, read_image_bytes
from mmsa_cli.errors import EXIT_INTERRUPTED, EXIT_MODEL, EXIT_RESUME_MISMATCH, EXIT_RUNTIME, EXIT_USAGE
from mmsa_cli.contract.model_folder import CHECKSUMS, ModelFolderError, load_model_folder, write_checksums
from mmsa_cli.scoring import ScoreOptions, score_files
from mmsa_cli.scoring.errors import InputError, ResumeMismatchError
from mmsa_cli.io.checkpointed import PAUSE_ENV

from scoring_helpers import noisy_jpeg

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """25 rows (guid, text, image) with real JPEGs beside them."""
    folder = tmp_path_factory.mktemp("rel") / "data"
    folder.mkdir()
    for i in range(3):
        noisy_jpeg(folder / f"{i}.jpg", (80, 60), seed=i)
    n = 25
    table = pa.table({"guid": [f"g{i}" for i in range(n)], "text": [f"tweet number {i} is great" for i in range(n)],
                      "image": [f"{i % 3}.jpg" for i in range(n)]})
    pq.write_table(table, folder / "tweets.parquet")
    return folder / "tweets.parquet"


def _run(inputs, model, out, scorer=None, **kw) -> dict:
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return score_files(inputs, model, out, ScoreOptions(**kw), scorer=scorer).to_dict()


def _cli(*args, **kw):
    return CliRunner().invoke(main, ["score", *[str(a) for a in args], "--no-progress", "--workers", "0",
                                     "--device", "cpu"], **kw)


def one_line_error(result, code: int) -> str:
    """The exit code, and one `Error:` line, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _copy_folder(models, tmp_path, name="m") -> Path:
    folder = tmp_path / name
    shutil.copytree(models["ote"], folder)
    return folder


def _interrupt_after(parts: int, fn, monkeypatch):
    """Run fn(); a KeyboardInterrupt (like Ctrl-C) once `parts` row groups are written."""
    from mmsa_cli.io import checkpointed as output

    original = output.OutputWriter.write_part

    def write_some(self, *a, **kw):
        if self.checkpoint.parts >= parts:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(output.OutputWriter, "write_part", write_some)
    try:
        return fn()
    finally:
        monkeypatch.setattr(output.OutputWriter, "write_part", original)


# ----------------------------------------------------------------------------------- 1. model folder integrity

def test_1_every_file_that_decides_a_prediction_is_checksummed(models, data, tmp_path):
    folder = _copy_folder(models, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())

    (folder / "manifest.json").write_text(json.dumps(manifest | {"image_mean": [0.0, 0.0, 0.0]}, indent=2))
    with pytest.raises(ModelFolderError, match="manifest.json' does not match its checksum"):
        load_model_folder(folder)
    result = _cli(data, "--model", folder, "--out", tmp_path / "a.parquet")
    assert "manifest.json" in one_line_error(result, EXIT_MODEL) and not (tmp_path / "a.parquet").exists()
    shutil.copy(models["ote"] / "manifest.json", folder / "manifest.json")
    load_model_folder(folder)

    tok_path = folder / "tokenizer" / "tokenizer.json"
    original = tok_path.read_text()
    tok = json.loads(original)
    vocab = tok["model"]["vocab"]
    a, b = "great", "number"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    tok_path.write_text(json.dumps(tok))
    with pytest.raises(ModelFolderError, match="tokenizer.json' does not match its checksum"):
        load_model_folder(folder)
    tok_path.write_text(original)
    load_model_folder(folder)

    (folder / "tokenizer" / "added_tokens.json").write_text('{"great": 5}')
    with pytest.raises(ModelFolderError, match="added_tokens.json' is not listed"):
        load_model_folder(folder)
    (folder / "tokenizer" / "added_tokens.json").unlink()

    (folder / CHECKSUMS).unlink()  # a folder exported before the checksums: refused, re-export
    with pytest.raises(ModelFolderError, match="re-export"):
        load_model_folder(folder)


def test_1_resume_fingerprint_covers_the_whole_folder(models, data, tmp_path, monkeypatch):
    """A folder edited (and re-sealed) between a run and its --resume has the same model.onnx
    but other preprocessing: the resume is refused instead of mixing the two in one file."""
    folder = _copy_folder(models, tmp_path)
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(1, lambda: _run(data, folder, out, row_group_size=10), monkeypatch)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"image_std": [0.5, 0.5, 0.5]}, indent=2))
    write_checksums(folder)  # re-sealed: a valid folder, another preprocessing
    with pytest.raises(ResumeMismatchError, match="model_folder_sha256"):
        _run(data, folder, out, row_group_size=10, resume=True)
    result = _cli(data, "--model", folder, "--out", out, "--row-group-size", "10", "--resume")
    one_line_error(result, EXIT_RESUME_MISMATCH)

    done = tmp_path / "done.parquet"
    _run(data, folder, done)
    meta = pq.read_schema(done).metadata
    digest = load_model_folder(folder).digest
    assert json.loads(meta[b"mmsa.model"])["model_folder_sha256"] == digest
    assert json.loads(meta[b"mmsa.job"])["model_folder_sha256"] == digest


# ----------------------------------------------------------------------------------- 2. FIFO, huge files

def _read_in_thread(path: Path):
    """read_image_bytes(path) in a thread; what it raised, or 'blocked' if it did not return."""
    outcome: list = []

    def target():
        try:
            read_image_bytes(path)
            outcome.append("read")
        except ImageLoadError as exc:
            outcome.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout=30)  # a guard so a regression fails instead of hanging the suite
    if t.is_alive():
        with open(path, "wb"):  # a writer that closes at once: the blocked open returns
            pass
        t.join()
        return "blocked"
    return outcome[0]


def test_2_a_fifo_named_like_an_image_is_an_error_row_not_a_hang(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    outcome = _read_in_thread(fifo)
    assert isinstance(outcome, ImageLoadError), outcome
    assert outcome.kind == "not_image" and "FIFO" in str(outcome)


def test_2_fifo_row_through_the_cli_with_a_worker_process(models, data, tmp_path):
    """The whole job with an image worker process: the FIFO row is an error row, the rest scores."""
    folder = tmp_path / "d"
    shutil.copytree(data.parent, folder)
    os.mkfifo(folder / "fifo.jpg")
    table = pq.read_table(data)
    images = table.column("image").to_pylist()
    images[3] = "fifo.jpg"
    pq.write_table(table.set_column(2, "image", pa.array(images)), folder / "tweets.parquet")
    out = tmp_path / "fifo.parquet"
    proc = subprocess.run([sys.executable, "-m", "mmsa_cli.cli", "score", str(folder / "tweets.parquet"),
                           "--model", str(models["ote"]), "--out", str(out), "--workers", "1", "--no-progress",
                           "--device", "cpu"], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    errors = pq.read_table(out).column("error").to_pylist()
    assert errors[3].startswith("not_image:") and "FIFO" in errors[3]
    assert sum(e is not None for e in errors) == 1


def test_2_files_over_the_size_limit_are_refused_before_reading(models, scorers, data, tmp_path, monkeypatch):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as fh:  # 1 GiB, sparse: no disk used
        fh.truncate(1 << 30)
    opened = []
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: opened.append(a) or real_fdopen(*a, **kw))
    with pytest.raises(ImageLoadError, match="1073741824 bytes; limit is 50000000 bytes") as info:
        read_image_bytes(huge)
    assert info.value.kind == "too_large" and not opened  # refused from fstat, nothing read
    monkeypatch.undo()

    out = tmp_path / "small-limit.parquet"
    summary = _run(data, models["ote"], out, scorer=scorers["ote"], max_image_bytes=1000)
    assert summary["errors_by_kind"] == {"too_large": 25}
    assert "limit is 1000 bytes" in pq.read_table(out).column("error")[0].as_py()
    result = _cli(data, "--model", models["ote"], "--out", tmp_path / "cli.parquet", "--max-image-bytes", "1000")
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------------- 3. output = an input

@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_3_an_output_that_is_an_input_is_refused(models, data, tmp_path, how):
    src = tmp_path / "in.parquet"
    shutil.copy(data, src)
    before = src.read_bytes()
    out = src
    if how == "symlink":
        out = tmp_path / "link.parquet"
        out.symlink_to(src)
    elif how == "hardlink":
        out = tmp_path / "hard.parquet"
        os.link(src, out)
    for flags in ([], ["--overwrite"], ["--resume"]):
        result = _cli(src, "--model", models["ote"], "--out", out, "--image-root", data.parent, *flags)
        assert "is the input file" in one_line_error(result, EXIT_USAGE)
    assert src.read_bytes() == before


# ----------------------------------------------------------------------------------- 4. --stats-json up front

def test_4_stats_json_in_a_missing_folder_is_refused_before_any_work(models, data, tmp_path):
    out = tmp_path / "s.parquet"
    result = _cli(data, "--model", models["ote"], "--out", out, "--stats-json", tmp_path / "nope" / "s.json")
    assert "--stats-json folder" in one_line_error(result, EXIT_USAGE)
    assert not out.exists() and not Path(str(out) + ".parts").exists()
    result = _cli(data, "--model", models["ote"], "--out", out, "--stats-json", tmp_path)
    assert "is a directory" in one_line_error(result, EXIT_USAGE)  # click's own check


def test_4_a_failure_keeps_its_exit_code_when_stats_json_cannot_be_written(models, data, tmp_path, monkeypatch):
    from mmsa_cli.scoring import cli

    def unwritable(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "write_stats", unwritable)
    result = _cli(tmp_path / "missing.parquet", "--model", models["ote"], "--out", tmp_path / "o.parquet",
                  "--stats-json", tmp_path / "s.json")
    assert "does not exist" in one_line_error(result, EXIT_USAGE)
    assert "cannot write --stats-json" in result.output


# ----------------------------------------------------------------------------------- 5. read-only file system

def test_5_output_on_a_read_only_file_system_is_one_line(models, data, tmp_path, monkeypatch):
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *a, **kw):
        if self.name.endswith(".parts"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    result = _cli(data, "--model", models["ote"], "--out", tmp_path / "ro.parquet")
    assert "Read-only file system" in one_line_error(result, EXIT_USAGE)
    monkeypatch.undo()

    from mmsa_cli.io import folders as output_folders

    def fails(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(output_folders.pq, "write_table", fails)  # the file system turns read-only while scoring
    result = _cli(data, "--model", models["ote"], "--out", tmp_path / "ro2.parquet")
    assert "Read-only file system" in one_line_error(result, EXIT_RUNTIME)


# ----------------------------------------------------------------------------------- 6. corrupt part on --resume

def test_6_a_corrupt_part_is_scored_again_on_resume(models, scorers, data, tmp_path, monkeypatch):
    opts = dict(row_group_size=5, batch_size=4)
    ref = tmp_path / "ref.parquet"
    _run(data, models["ote"], ref, scorer=scorers["ote"], **opts)
    out = tmp_path / "c.parquet"
    parts = Path(str(out) + ".parts")
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(3, lambda: _run(data, models["ote"], out, scorer=scorers["ote"], **opts), monkeypatch)
    part = parts / "part-000001.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated by a disk fault
    summary = _run(data, models["ote"], out, scorer=scorers["ote"], resume=True, **opts)
    assert summary["resumed_from_row"] == 5 and summary["rows"] == 25
    assert pq.read_table(out).equals(pq.read_table(ref))
    assert not list(tmp_path.glob(".c.parquet.tmp-*"))


def test_6_a_part_damaged_after_the_checkpoint_fails_once_then_resume_repairs(models, scorers, data, tmp_path,
                                                                             monkeypatch):
    """The damage appears while the last parts are written: finalize says so in one line,
    leaves no hidden temporary file, and --resume then re-scores the bad part."""
    from mmsa_cli.io import checkpointed as output

    opts = dict(row_group_size=5, batch_size=4)
    out = tmp_path / "late.parquet"
    original = output.OutputWriter.finalize

    def damage_then_finalize(self, *a, **kw):
        first = self.parts_dir / self._part(0)
        first.write_bytes(b"PAR1" + b"\0" * 40)
        return original(self, *a, **kw)

    monkeypatch.setattr(output.OutputWriter, "finalize", damage_then_finalize)
    result = CliRunner().invoke(main, ["score", str(data), "--model", str(models["ote"]), "--out", str(out),
                                       "--row-group-size", "5", "--batch-size", "4", "--workers", "0",
                                       "--device", "cpu", "--no-progress"])
    assert "rerun with --resume" in one_line_error(result, EXIT_RUNTIME)
    assert not list(tmp_path.glob(".late.parquet.tmp-*"))
    monkeypatch.undo()
    summary = _run(data, models["ote"], out, scorer=scorers["ote"], resume=True, **opts)
    assert summary["resumed_from_row"] == 0 and summary["rows"] == 25


# ----------------------------------------------------------------------------------- 7. id column = output column

@pytest.mark.parametrize("id_col", ["label", "error", "prob_positive"])
def test_7_an_id_column_named_like_an_output_column_is_refused_up_front(models, data, tmp_path, id_col):
    src = tmp_path / "ids.parquet"
    table = pq.read_table(data)
    pq.write_table(table.append_column(id_col, pa.array([f"x{i}" for i in range(table.num_rows)])), src)
    out = tmp_path / "o.parquet"
    result = _cli(src, "--model", models["ote"], "--out", out, "--id-col", id_col, "--image-root", data.parent)
    assert "output column" in one_line_error(result, EXIT_USAGE)
    assert not Path(str(out) + ".parts").exists()


# ----------------------------------------------------------------------------------- 8. guid in some files

def test_8_guid_in_only_some_files_is_one_rule_in_any_order(models, scorers, data, tmp_path):
    with_guid = tmp_path / "a.parquet"
    without = tmp_path / "b.parquet"
    table = pq.read_table(data)
    pq.write_table(table, with_guid)
    pq.write_table(table.drop_columns(["guid"]), without)
    messages = []
    for order in ([with_guid, without], [without, with_guid]):
        with pytest.raises(InputError, match="'guid' .* is in 1 of the 2 input files but not in .*b.parquet") as info:
            _run(order, models["ote"], tmp_path / "o.parquet", scorer=scorers["ote"], image_root=data.parent)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    # Files without guid at all: row positions, as before.
    shutil.copy(without, tmp_path / "b2.parquet")
    summary = _run([without, tmp_path / "b2.parquet"], models["ote"], tmp_path / "o.parquet", scorer=scorers["ote"],
                   image_root=data.parent)
    assert summary["rows"] == 50 and pq.read_table(tmp_path / "o.parquet").column_names[0] == "row"


# ----------------------------------------------------------------------------------- 9. SIGINT

def test_9_sigint_exits_130_writes_stats_and_keeps_the_parts(models, scorers, data, tmp_path):
    opts = ["--row-group-size", "5", "--batch-size", "4"]
    ref = tmp_path / "ref.parquet"
    _run(data, models["ote"], ref, scorer=scorers["ote"], row_group_size=5, batch_size=4)
    out, stats = tmp_path / "int.parquet", tmp_path / "int.stats.json"
    env = {**os.environ, PAUSE_ENV: "0.5", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mmsa_cli.cli", "score", str(data), "--model", str(models["ote"]),
                             "--out", str(out), "--workers", "1", "--no-progress", "--device", "cpu",
                             "--stats-json", str(stats), *opts], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # A test run in the background (nohup, `cmd &`) inherits SIGINT ignored,
                            # and Python keeps that: give the scorer the terminal's default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = Path(str(out) + ".parts") / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not checkpoint.exists():
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "interrupted (SIGINT)" in stderr and "--resume" in stderr
    report = json.loads(stats.read_text())
    assert report["status"] == "interrupted" and report["exit_code"] == 130 and report["rows_done"] >= 5
    assert checkpoint.exists() and not out.exists()
    summary = _run(data, models["ote"], out, scorer=scorers["ote"], row_group_size=5, batch_size=4, resume=True)
    assert summary["resumed_from_row"] >= 5
    assert pq.read_table(out).equals(pq.read_table(ref))


def test_9_ctrl_c_in_process_is_130_with_stats(models, data, tmp_path, monkeypatch):
    out, stats = tmp_path / "c.parquet", tmp_path / "c.json"
    result = _interrupt_after(1, lambda: _cli(data, "--model", models["ote"], "--out", out, "--row-group-size", "10",
                                               "--stats-json", stats), monkeypatch)
    assert "rerun with --resume" in one_line_error(result, EXIT_INTERRUPTED)
    assert json.loads(stats.read_text())["status"] == "interrupted"
    assert (Path(str(out) + ".parts") / "part-000000.parquet").exists()


# ----------------------------------------------------------------------------------- 10. --on-bad-input skip

def _corrupt_row_group(src: Path, dst: Path, group: int) -> None:
    """Flip every byte of one column chunk of `group` (its page headers cannot be read)."""
    col = pq.ParquetFile(src).metadata.row_group(group).column(1)
    start = col.dictionary_page_offset or col.data_page_offset
    raw = bytearray(src.read_bytes())
    for i in range(start, start + col.total_compressed_size):
        raw[i] ^= 0x5A
    dst.write_bytes(bytes(raw))


def test_10_an_unreadable_row_group_fails_in_one_line_or_is_skipped_and_listed(models, scorers, data, tmp_path):
    clean = tmp_path / "clean.parquet"
    pq.write_table(pq.read_table(data), clean, row_group_size=10)  # groups of 10, 10, 5
    bad = tmp_path / "bad.parquet"
    _corrupt_row_group(clean, bad, 1)
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    args = ["--model", models["ote"], "--image-root", data.parent]

    result = _cli(bad, *args, "--out", tmp_path / "f.parquet")
    assert "row group 1" in one_line_error(result, EXIT_USAGE)

    out, stats = tmp_path / "s.parquet", tmp_path / "s.json"
    result = CliRunner().invoke(main, ["score", str(bad), str(tmp_path / "garbage.parquet"),
                                                       *map(str, args), "--out", str(out), "--on-bad-input", "skip",
                                                       "--stats-json", str(stats), "--workers", "0",
                                                       "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(stats.read_text())
    assert report["rows"] == 15 and report["rows_skipped"] == 10
    where = {(Path(s["file"]).name, s["row_group"]) for s in report["skipped_inputs"]}
    assert where == {("bad.parquet", 1), ("garbage.parquet", None)}
    assert all(s["reason"] for s in report["skipped_inputs"])
    assert "skipped unreadable input" in result.stderr and "row group 1" in result.stderr
    assert "skipped input: 2" in result.stdout
    guids = pq.read_table(out).column("guid").to_pylist()
    assert guids == [f"g{i}" for i in range(10)] + [f"g{i}" for i in range(20, 25)]


def test_10_resume_leaves_out_the_same_row_groups(models, scorers, data, tmp_path, monkeypatch):
    clean = tmp_path / "clean.parquet"
    pq.write_table(pq.read_table(data), clean, row_group_size=5)  # 5 groups of 5
    bad = tmp_path / "bad.parquet"
    _corrupt_row_group(clean, bad, 1)
    opts = dict(image_root=data.parent, row_group_size=5, batch_size=4, on_bad_input="skip")
    ref = tmp_path / "ref.parquet"
    _run(bad, models["ote"], ref, scorer=scorers["ote"], **opts)
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(2, lambda: _run(bad, models["ote"], out, scorer=scorers["ote"], **opts), monkeypatch)
    summary = _run(bad, models["ote"], out, scorer=scorers["ote"], resume=True, **opts)
    assert summary["rows"] == 20 and summary["rows_skipped"] == 5
    assert pq.read_table(out).equals(pq.read_table(ref))


# ----------------------------------------------------------------------------------- 11. permissions

def test_11_model_folders_and_weights_follow_the_umask(tmp_path):
    from mmsa_cli.config import TrainConfig
    from mmsa_cli.runs import WEIGHTS, save_weights, write_run_config
    from scoring_helpers import build_model, make_model_folder

    old = os.umask(0o022)
    try:
        folder = make_model_folder(tmp_path / "m", "text-only")
        run = tmp_path / "run"
        model = build_model("text-only")
        write_run_config(run, model, TrainConfig(), "data")
        save_weights(run, model)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "model.onnx").stat().st_mode) == 0o644
    assert stat.S_IMODE((run / WEIGHTS).stat().st_mode) == 0o644


# ----------------------------------------------------------------------------------- 12. truncated weights

def test_12_evaluate_with_truncated_weights_is_one_line(tmp_path):
    from mmsa_cli.config import TrainConfig
    from mmsa_cli.runs import WEIGHTS, save_weights, write_run_config
    from scoring_helpers import build_model

    run = tmp_path / "run"
    model = build_model("text-only")
    write_run_config(run, model, TrainConfig(), "data")
    save_weights(run, model)
    weights = run / WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--data", str(REPO / "samples" / "mvsa"),
                                       "--device", "cpu"])
    line = one_line_error(result, EXIT_MODEL)
    assert WEIGHTS in line and "truncated or corrupt" in line
