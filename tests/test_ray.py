"""`mmsa score --engine ray` and the Ray Data API (mmsa_cli.scoring.engines.ray_dataset): the same rows
as the local engine, actor death, driver kill -9 + --resume, clear errors, object storage.

Ray is required (the `[ray]` extra): without it this module fails at import, it never skips.
Clusters are local, with more logical CPUs than the 2 physical ones (as Ray's own tests do)
and a small object store; every cluster this module starts is shut down by it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from mmsa_cli.errors import ConfigError
from mmsa_cli.scoring import Columns, ScoreOptions, score_files
from mmsa_cli.scoring.engines.ray_dataset import INSTALL_HINT, ScoreActor, score_dataset
from mmsa_cli.scoring.engines.ray_files import MANIFEST_FILE, RayOptions, score_files_ray

sys.path.insert(0, str(Path(__file__).parent))
from scoring_helpers import make_model_folder  # noqa: E402
from test_score import make_messy  # noqa: E402

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROBS = ["prob_positive", "prob_neutral", "prob_negative"]
RESULT = ["label", *PROBS, "error", "error_kind", "predicted_from"]
COPIES = 80  # the 25 messy rows (every bad-row kind) x 80 = 2,000 rows


# ----------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("ray-models") / "ote", "ote")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """messy.parquet (25 rows, one per problem) and big/ = four files of 500 rows with unique
    guids, in the images' folder (the default image root is each input file's folder)."""
    path, expected = make_messy(tmp_path_factory.mktemp("ray-messy") / "data")
    messy = pq.read_table(path)
    parts = []
    for k in range(COPIES):
        guids = pa.array([f"{g}#{k}" for g in messy.column("guid").to_pylist()])
        parts.append(messy.set_column(0, "guid", guids))
    big = pa.concat_tables(parts)
    files = []
    for i in range(4):
        f = path.parent / f"big-{i}.parquet"
        pq.write_table(big.slice(i * 500, 500), f, row_group_size=100)
        files.append(f)
    return {"messy": path, "expected": expected, "files": files, "folder": path.parent, "rows": big.num_rows}


@pytest.fixture(scope="module")
def cluster(s3):
    """One local cluster for the in-process tests: 4 logical CPUs, one logical GPU (Ray
    schedules it on a CPU-only machine: placement and fractions are testable), a 200 MiB
    object store; this folder on the workers' path (ray_helpers)."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    ray.init(address="local", num_cpus=4, num_gpus=1, object_store_memory=200 * 1024 ** 2, include_dashboard=False,
             log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def by_id(table: pa.Table, id_col: str = "guid") -> dict:
    rows = table.to_pylist()
    ids = [r[id_col] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    return {r[id_col]: r for r in rows}


def read_dir(out: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("part-*.parquet")))


def assert_same_rows(ray_rows: dict, local_rows: dict) -> None:
    assert ray_rows.keys() == local_rows.keys()
    for guid, want in local_rows.items():
        got = ray_rows[guid]
        for c in ("label", "error", "error_kind", "predicted_from", "user"):
            assert got[c] == want[c], (guid, c, got[c], want[c])
        for c in PROBS:
            if want[c] is None:
                assert got[c] is None, (guid, c)
            else:
                assert abs(got[c] - want[c]) <= 1e-6, (guid, c, got[c], want[c])


def local_reference(data, model, tmp_path) -> dict:
    out = tmp_path / "local.parquet"
    score_files(data["files"], model, out, ScoreOptions(columns=Columns(keep=("user",)), device="cpu",
                                                         workers=0, progress=False))
    return by_id(pq.read_table(out))


# ----------------------------------------------------------------------------------- 1. same rows

def test_ray_engine_equals_local_engine_by_id(cluster, data, model, tmp_path):
    """2,000 rows over four files, every bad-row kind: every row once, same labels, errors and
    probabilities (to 1e-6) as the local engine; the manifest counts them."""
    out = tmp_path / "scored"
    summary = score_files_ray(data["files"], model, out, ScoreOptions(columns=Columns(keep=("user",)), device="cpu",
                                                                      row_group_size=300),
                              RayOptions(actors=(1, 2), rows_per_call=100, rows_per_file=300), progress=False)
    local = local_reference(data, model, tmp_path)
    table = read_dir(out)
    assert table.column_names == ["guid", *RESULT, "user"]
    assert_same_rows(by_id(table), local)

    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["rows"] == summary.rows == data["rows"] == sum(f["rows"] for f in manifest["files"])
    assert len(manifest["files"]) == len(list(out.glob("part-*.parquet"))) > 1
    kinds = {}
    for r in local.values():
        if r["error_kind"]:
            kinds[r["error_kind"]] = kinds.get(r["error_kind"], 0) + 1
    assert manifest["errors_by_kind"] == kinds and manifest["errors_by_kind"]["outside_root"] == 2 * COPIES
    assert manifest["rows_without_prediction"] == COPIES  # g-both-bad
    assert manifest["model"]["model_sha256"] == manifest["job"]["model_sha256"]
    assert manifest["job"]["columns"]["keep"] == ["user"]

    again = score_files_ray(data["files"], model, out, ScoreOptions(columns=Columns(keep=("user",)), device="cpu"),
                            RayOptions(), progress=False)
    assert again.status == "already_complete" and again.rows_this_run == 0


def test_score_dataset_is_dataset_in_dataset_out(cluster, data, model):
    """The Python API: a Dataset of raw rows -> the Dataset with the result columns; and the
    actor class called directly on a numpy batch (Ray Data's format) gives the same rows."""
    messy = pq.read_table(data["messy"])
    ds = ray.data.from_arrow(messy).repartition(5)
    scored = score_dataset(ds, model, columns=Columns(keep=("user",)), image_root=data["folder"], device="cpu",
                           actors=(1, 2), rows_per_call=8)
    got = by_id(pa.concat_tables(ray.get(scored.to_arrow_refs())))
    stats = scored.stats()
    assert "MapBatches(prepare_image_columns)" in stats and "prepare_image_columns)->" not in stats  # not fused
    from mmsa_cli.scoring import Scorer

    want = by_id(Scorer(model, "cpu").score_batch(messy, Columns(keep=("user",)), image_root=data["folder"]))
    assert_same_rows(got, want)

    actor = ScoreActor(str(model), "cpu", columns=Columns(keep=("user",)), image_root=str(data["folder"]))
    batch = {c: np.array(messy.column(c).to_pylist(), dtype=object) for c in messy.column_names}
    out = actor(batch)
    assert set(out) == {"guid", *RESULT, "user"} and list(out["guid"]) == messy.column("guid").to_pylist()
    for i, guid in enumerate(out["guid"]):
        assert out["error"][i] == want[guid]["error"]
        if want[guid]["prob_positive"] is None:
            assert np.isnan(out["prob_positive"][i])  # numpy has no null float: NaN
        else:
            assert abs(out["prob_positive"][i] - want[guid]["prob_positive"]) <= 1e-6


# ----------------------------------------------------------------------------------- 2. actor death

def test_actor_killed_mid_job_is_restarted_and_every_row_comes_back_once(cluster, data, model, tmp_path):
    from ray_helpers import DiesOnceActor

    marker = tmp_path / "died"
    ds = ray.data.read_parquet([str(f) for f in data["files"]], include_paths=True)
    ds = ds.repartition(target_num_rows_per_block=100)
    scored = score_dataset(ds, model, columns=Columns(keep=("user",)), device="cpu", actors=(2, 2),
                           rows_per_call=100, roots_from_paths="", actor_class=DiesOnceActor,
                           actor_kwargs={"marker": str(marker)})
    table = pa.concat_tables(ray.get(scored.to_arrow_refs()))
    assert marker.exists()  # an actor process did exit mid-job
    dead = int(marker.read_text())
    assert not Path(f"/proc/{dead}").exists() or "Z" in Path(f"/proc/{dead}/stat").read_text().rsplit(")", 1)[1][:3]
    assert_same_rows(by_id(table), local_reference(data, model, tmp_path))


# ----------------------------------------------------------------------------------- 3. kill -9 + --resume

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmsa_cli.cli", "score", *args]


def _ray_args(model: Path, out: Path) -> list[str]:
    return ["--model", str(model), "--out", str(out), "--engine", "ray", "--ray-cpus", "4",
            "--ray-object-store-mb", "200", "--actors", "1", "--ray-rows-per-call", "100", "--row-group-size", "100",
            "--device", "cpu", "--keep-columns", "user", "--no-progress"]


def _descendants(pid: int) -> set[int]:
    """Every process below pid (Ray's daemons and workers), found before the driver dies."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _rows_in(out: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("part-*.parquet"))


def test_driver_killed_then_resume_scores_the_rest_once(data, model, tmp_path):
    """`mmsa score --engine ray` killed with SIGKILL (its whole session, then every Ray process
    it had started) once parts exist; the rerun without --resume exits 4, with --resume it
    scores only the missing rows and the directory holds every row once."""
    out = tmp_path / "scored"
    files = [str(f) for f in data["files"]]
    env = {**os.environ, "MMSA_SCORE_TEST_PAUSE_S": "0.5", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_cli(*files, *_ray_args(model, out)), env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("part-*.parquet"))) < 3:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    family = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    for pid in family:  # Ray's daemons may have left the session; end each one we saw, by id
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (out / MANIFEST_FILE).exists()
    before = _rows_in(out)
    assert 300 <= before < data["rows"]

    env.pop("MMSA_SCORE_TEST_PAUSE_S")
    refused = subprocess.run(_cli(*files, *_ray_args(model, out)), env=env, cwd=tmp_path, capture_output=True,
                             text=True)
    assert refused.returncode == 4 and "--resume" in refused.stderr, refused.stderr
    stats = tmp_path / "stats.json"
    done = subprocess.run(_cli(*files, *_ray_args(model, out), "--resume", "--stats-json", str(stats)), env=env,
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(stats.read_text())
    assert summary["resumed_rows"] == before and summary["rows_this_run"] == data["rows"] - before
    assert summary["rows"] == data["rows"]
    assert_same_rows(by_id(read_dir(out)), local_reference(data, model, tmp_path))


# ----------------------------------------------------------------------------------- 4. clear errors

def _one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_model_missing_ray_and_unreachable_cluster_fail_before_any_work(data, model, tmp_path):
    files = [str(f) for f in data["files"]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *cmd: subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # noqa: E731

    bad_model = run(*_cli(*files, *_ray_args(tmp_path / "no-model", tmp_path / "a")))
    assert bad_model.returncode == 3 and "no-model" in _one_line_error(bad_model)

    no_ray = run(sys.executable, "-c", "import sys; sys.modules['ray'] = None; from mmsa_cli.cli import main; "
                 "main()", "score", *files, *_ray_args(model, tmp_path / "b"))
    assert no_ray.returncode == 2 and INSTALL_HINT in _one_line_error(no_ray) and "pip install" in INSTALL_HINT

    start = time.time()
    unreachable = run(*_cli(*files, *_ray_args(model, tmp_path / "c"), "--ray-address", "127.0.0.1:9"))
    line = _one_line_error(unreachable)
    assert unreachable.returncode == 2 and "127.0.0.1:9" in line and "cannot connect" in line
    assert time.time() - start < 60

    bad_actors = run(*_cli(*files, *_ray_args(model, tmp_path / "d"), "--actors", "3,2"))
    assert bad_actors.returncode == 2 and "MIN <= MAX" in bad_actors.stderr
    assert not any((tmp_path / n).exists() for n in "abcd")  # nothing was written


# ----------------------------------------------------------------------------------- 5. object storage

def test_inputs_images_and_output_on_s3(cluster, s3, data, model, tmp_path):
    """Parquet inputs, images under a bucket prefix and the output directory all on a real
    S3 server (moto on localhost): the same rows as the local engine on local files."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="tweets")
    for f in data["folder"].iterdir():
        if f.is_file() and f.suffix != ".parquet":
            client.upload_file(str(f), "tweets", f"images/{f.name}")
    for f in data["files"][:2]:
        client.upload_file(str(f), "tweets", f"in/{f.name}")
    client.put_object(Bucket="tweets", Key="outside.jpg", Body=(data["folder"].parent / "outside.jpg").read_bytes())

    summary = score_files_ray(["s3://tweets/in/"], model, "s3://tweets/out/run1",
                              ScoreOptions(columns=Columns(keep=("user",)), device="cpu", image_root="s3://tweets/images",
                                           row_group_size=250),
                              RayOptions(actors=(1, 1), rows_per_call=100, rows_per_file=250), progress=False)
    assert summary.rows == 1000 and summary.files >= 4
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="tweets", Prefix="out/run1/")["Contents"]]
    assert "out/run1/_manifest.json" in keys and "out/run1/_job.json" in keys
    parts = [k for k in keys if k.startswith("out/run1/part-")]
    got = by_id(pa.concat_tables(pq.read_table(pa.BufferReader(client.get_object(Bucket="tweets", Key=k)["Body"].read()))
                                 for k in parts))

    local = tmp_path / "local.parquet"
    score_files(data["files"][:2], model, local, ScoreOptions(columns=Columns(keep=("user",)), device="cpu", workers=0,
                                                              progress=False))
    want = by_id(pq.read_table(local))
    for guid in [g for g in want if g.startswith("g-dir#")]:  # a folder locally; on S3 a key that does not exist
        assert got[guid]["error_kind"] == "missing" and want[guid]["error_kind"] == "not_image"
        got.pop(guid), want.pop(guid)
    for guid in [g for g in want if g.startswith("g-missing#")]:
        assert "s3://tweets/images/nope/missing.jpg does not exist" in got[guid]["error"]
    for rows in (got, want):  # the messages name the image's location: compare the rest of the row
        for r in rows.values():
            r["error"] = r["error"] and r["error"].split(":", 1)[0]
    assert_same_rows(got, want)


def test_output_directory_refuses_other_jobs_and_changed_resumes(tmp_path):
    """Decided before any cluster starts: a file in the way (4), an interrupted run without
    --resume (4), a --resume with other options (5, naming them), another job's finished
    output (4), both flags (2); the same finished job is complete (exit 0 upstream)."""
    from mmsa_cli.errors import OutputExistsError, ResumeMismatchError
    from mmsa_cli.scoring.errors import InputError
    from mmsa_cli.scoring.engines.ray_files import OutputDir

    job = {"inputs": [["a.parquet", 1, 2]], "model_sha256": "x", "columns": {"keep": []}}
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputExistsError, match="is a file"):
        OutputDir(tmp_path / "file", job, overwrite=False, resume=False)
    out = tmp_path / "out"
    OutputDir(out, job, overwrite=False, resume=False).prepare()
    with pytest.raises(OutputExistsError, match="--resume"):
        OutputDir(out, job, overwrite=False, resume=False)
    with pytest.raises(ResumeMismatchError, match="columns"):
        OutputDir(out, {**job, "columns": {"keep": ["user"]}}, overwrite=False, resume=True)
    assert not OutputDir(out, job, overwrite=False, resume=True).complete
    OutputDir(out, job, overwrite=False, resume=True).finalize({"job": job})
    assert OutputDir(out, job, overwrite=False, resume=True).complete
    with pytest.raises(OutputExistsError, match="another job"):
        OutputDir(out, {**job, "model_sha256": "y"}, overwrite=False, resume=True)
    with pytest.raises(InputError, match="exclude"):
        OutputDir(out, job, overwrite=True, resume=True)
    fresh = OutputDir(out, {**job, "model_sha256": "y"}, overwrite=True, resume=False)
    fresh.prepare()
    assert sorted(p.name for p in out.iterdir()) == ["_job.json"]


def test_an_unexpected_exception_marks_only_its_row(data, model, monkeypatch):
    """A batch whose scoring raises is scored again row by row: the one row that fails again
    gets `internal: ...` and no prediction, the others their normal result (no Ray needed:
    the actor class is plain Python)."""
    messy = pq.read_table(data["messy"])
    actor = ScoreActor(str(model), "cpu", columns=Columns(keep=("user",)), image_root=str(data["folder"]))
    want = by_id(actor(messy))
    plan = actor.scorer.plan

    def fragile_plan(table, *args, **kwargs):
        if "g-emoji" in table.column("guid").to_pylist():
            raise ValueError("tokenizer exploded")
        return plan(table, *args, **kwargs)

    monkeypatch.setattr(actor.scorer, "plan", fragile_plan)
    got = by_id(actor(messy))
    bad = got.pop("g-emoji")
    assert bad["error"] == "internal: ValueError: tokenizer exploded" and bad["error_kind"] == "internal"
    assert bad["label"] is None and bad["prob_positive"] is None and bad["user"] == want["g-emoji"]["user"]
    want.pop("g-emoji")
    assert_same_rows(got, want)


def test_half_a_gpu_per_actor_puts_two_actors_on_one_gpu(cluster, data, model, tmp_path):
    """--gpus-per-actor 0.5 on a cluster with one (logical) GPU: both actors get GPU 0, and
    Ray remaps CUDA_VISIBLE_DEVICES inside each to it (the Scorer then uses device 0). The
    model runs on the CPU here (device="cpu"): only the placement is under test."""
    from ray_helpers import ReportsGpuActor

    ctx = ray.data.DataContext.get_current()
    saved, ctx.wait_for_min_actors_s = ctx.wait_for_min_actors_s, 120  # both actors up before any work
    try:
        ds = ray.data.from_arrow(pq.read_table(data["files"][0])).repartition(10)
        scored = score_dataset(ds, model, device="cpu", image_root=data["folder"], actors=(2, 2), gpus_per_actor=0.5,
                               rows_per_call=50, actor_class=ReportsGpuActor, actor_kwargs={"report_dir": str(tmp_path)})
        table = pa.concat_tables(ray.get(scored.to_arrow_refs()))
    finally:
        ctx.wait_for_min_actors_s = saved
    assert table.num_rows == 500 and len(set(table.column("guid").to_pylist())) == 500
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert reports == [{"gpu_ids": ["0"], "cuda_visible": "0"}] * 2  # two actors shared the one GPU
    with pytest.raises(ConfigError, match="--gpus-per-actor"):
        score_dataset(ds, model, device="cuda")


def test_jpegs_passed_to_the_actors_undecoded_give_the_same_rows(data, model):
    """gpu_decode_share: the image stage hands plain JPEGs to the actors as bytes (for nvJPEG
    on GPU actors); here the actor decodes them on the CPU, so the rows equal the local
    engine's. Plain Python: the stage function and the actor class, no cluster."""
    from mmsa_cli.scoring import Scorer
    from mmsa_cli.scoring.images.prepare import ImageSpec
    from mmsa_cli.scoring.engines.ray_dataset import IS_JPEG, prepare_image_columns

    messy = pq.read_table(data["messy"])
    actor = ScoreActor(str(model), "cpu", columns=Columns(keep=("user",)))
    i = actor.scorer.inputs
    spec = ImageSpec(i.image_size, i.image_mean, i.image_std)
    want = by_id(Scorer(model, "cpu").score_batch(messy, Columns(keep=("user",)), image_root=data["folder"]))
    for share, jpegs in ((1.0, True), (0.0, False)):
        prepared = prepare_image_columns(messy, image_col="image", spec=spec, image_root=str(data["folder"]),
                                         gpu_share=share)
        assert any(prepared.column(IS_JPEG).to_pylist()) is jpegs
        assert_same_rows(by_id(actor(prepared)), want)


def test_jpeg_bytes_go_only_to_actors_that_run_on_cuda():
    """The job's JPEG share follows the actor's device, not its GPU reservation: actors kept
    on the CPU (--device cpu --gpus-per-actor 1) get pixels, since they have no nvJPEG."""
    from mmsa_cli.scoring.engines.ray_dataset import actor_device_for, jpeg_share_for

    assert jpeg_share_for("auto", actor_device_for("cpu", 1.0)) == 0.0
    assert jpeg_share_for(0.5, actor_device_for("cpu", 1.0)) == 0.0
    assert jpeg_share_for("auto", actor_device_for("auto", 0.0)) == 0.0
    assert jpeg_share_for("auto", actor_device_for("auto", 0.5)) == 1.0
    assert jpeg_share_for(0.25, actor_device_for("cuda", 1.0)) == 0.25


def test_the_actor_applies_the_models_decision_rule_and_the_image_byte_limit(data, tmp_path):
    """What the local engine applies, the actor applies too: the manifest's decision offsets
    (decision_rule=False: the arg-max) and max_image_bytes (too_large rows). Plain Python: the
    actor class, no cluster."""
    from mmsa_cli import LABELS
    from mmsa_cli.contract.decision import decide_labels
    from mmsa_cli.scoring import Scorer

    offsets = [0.0, -4.0, 4.0]  # strong enough that the labels must differ from the arg-max
    ruled = make_model_folder(tmp_path / "ruled", "ote", decision_rule={
        "rule": "offsets", "labels": list(LABELS), "metric": "macro_f1", "offsets": offsets})
    messy = pq.read_table(data["messy"])
    root = str(data["folder"])
    for decision_rule in (True, False):
        want = Scorer(ruled, "cpu", decision_rule=decision_rule).score_batch(messy, image_root=root)
        got = ScoreActor(str(ruled), "cpu", image_root=root, decision_rule=decision_rule)(messy)
        assert_same_rows(by_id(got.append_column("user", messy.column("user"))),
                         by_id(want.append_column("user", messy.column("user"))))
        probs = np.nan_to_num(np.array([got.column(c).to_pylist() for c in PROBS], dtype=float).T)
        chosen = decide_labels(probs, offsets) if decision_rule else probs.argmax(1)
        scored = [r for r in got.to_pylist() if r["prob_positive"] is not None]
        assert [r["label"] for r in scored] == [LABELS[i] for i, r in zip(chosen, got.to_pylist())
                                                if r["prob_positive"] is not None]
    small = ScoreActor(str(ruled), "cpu", image_root=root, max_image_bytes=100)(messy).to_pylist()
    assert {r["guid"]: r["error_kind"] for r in small}["g-ok"] == "too_large"
