"""The local engine (`mmsa score`, score_files) on object storage: Parquet inputs, images under
a bucket prefix and the output file on a real S3-compatible server (moto, on localhost; the
`s3` fixture in conftest.py), never a patched client. The Ray engine's S3 test is in test_ray.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mmsa_cli.cli import main
from mmsa_cli.errors import EXIT_OUTPUT_EXISTS, EXIT_USAGE
from mmsa_cli.scoring import Columns, ScoreOptions, score_files

sys.path.insert(0, str(Path(__file__).parent))
from test_score import make_messy  # noqa: E402

PROBS = ["prob_positive", "prob_neutral", "prob_negative"]


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory) -> dict:
    """s3://tweets: the messy rows (every bad-row kind) as in/a.parquet + in/b.parquet, their
    images under images/, and a copy of all of it under together/ (the Parquet files beside
    their images: the default image root is each input file's folder)."""
    import boto3

    path, expected = make_messy(tmp_path_factory.mktemp("s3-messy") / "data")
    table = pq.read_table(path)
    local = path.parent
    pq.write_table(table.slice(0, 12), local / "a.parquet")
    pq.write_table(table.slice(12), local / "b.parquet")
    client = boto3.client("s3")
    client.create_bucket(Bucket="tweets")
    for f in local.iterdir():
        if f.is_file() and f.suffix != ".parquet":
            client.upload_file(str(f), "tweets", f"images/{f.name}")
            client.upload_file(str(f), "tweets", f"together/{f.name}")
    for name in ("a.parquet", "b.parquet"):
        client.upload_file(str(local / name), "tweets", f"in/{name}")
        client.upload_file(str(local / name), "tweets", f"together/{name}")
        client.upload_file(str(local / name), "tweets", f"together/old/{name}")  # `*` must not reach it
    return {"client": client, "local": [local / "a.parquet", local / "b.parquet"], "expected": expected,
            "rows": table.num_rows}


def _score(*args) -> object:
    return CliRunner().invoke(main, ["score", *map(str, args), "--device", "cpu", "--no-progress"])


def _get(client, key: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(client.get_object(Bucket="tweets", Key=key)["Body"].read()))


def _keys(client, prefix: str) -> list[str]:
    """Object keys under prefix, without the empty directory markers pyarrow leaves ('out/')."""
    return [o["Key"] for o in client.list_objects_v2(Bucket="tweets", Prefix=prefix).get("Contents", [])
            if not o["Key"].endswith("/")]


def _comparable(table: pa.Table) -> dict:
    """Rows by guid; an error reduced to its kind (the messages name the image's location)."""
    rows = {}
    for r in table.to_pylist():
        r["error"] = r["error"] and r["error"].split(":", 1)[0]
        rows[r["guid"]] = r
    return rows


@pytest.fixture(scope="module")
def reference(bucket, models, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("s3-reference") / "local.parquet"
    score_files(bucket["local"], models["ote"], out, ScoreOptions(device="cpu", workers=0, progress=False,
                                                                  columns=Columns(keep=("user",))))
    return _comparable(pq.read_table(out))


def _assert_same_as_local(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for guid, w in want.items():
        g = got[guid]
        if guid == "g-dir":  # locally a folder (not_image); on S3 a key that does not exist
            assert (g["error_kind"], w["error_kind"]) == ("missing", "not_image")
            continue
        for c in ("label", "error", "error_kind", "predicted_from", "user"):
            assert g[c] == w[c], (guid, c, g[c], w[c])
        for c in PROBS:
            assert (g[c] is None) == (w[c] is None) and (g[c] is None or abs(g[c] - w[c]) <= 1e-6), (guid, c)


def test_inputs_images_and_output_on_s3_give_the_local_rows(bucket, models, reference):
    """CLI, image worker processes reading the bucket: the same rows, in order, as the local
    engine on local files; the parts prefix is gone; a rerun of the same job is complete and
    another job on the same output is refused (exit 4)."""
    client = bucket["client"]
    args = ["s3://tweets/in/", "--model", models["ote"], "--out", "s3://tweets/out/scored.parquet",
            "--image-root", "s3://tweets/images", "--keep-columns", "user", "--workers", "1", "--row-group-size", "5"]
    result = _score(*args, "--stats-json", "s3://tweets/out/scored.stats.json")
    assert result.exit_code == 0, result.output
    stats = json.loads(client.get_object(Bucket="tweets", Key="out/scored.stats.json")["Body"].read())
    assert stats["status"] == "done" and stats["rows"] == bucket["rows"]
    table = _get(client, "out/scored.parquet")
    assert table.column("guid").to_pylist() == [r for r in reference]  # input order
    got = _comparable(table)
    _assert_same_as_local(got, reference)
    missing = [r for r in table.to_pylist() if r["guid"] == "g-missing"][0]
    assert "s3://tweets/images/nope/missing.jpg does not exist" in missing["error"]
    assert json.loads(pq.read_schema(pa.BufferReader(
        client.get_object(Bucket="tweets", Key="out/scored.parquet")["Body"].read())).metadata[b"mmsa.rows"]) == 25
    assert _keys(client, "out/") == ["out/scored.parquet", "out/scored.stats.json"]  # no parts left behind

    again = _score(*args)
    assert again.exit_code == 0 and "already" in again.output
    other = _score(*args[:-2], "--row-group-size", "7")
    assert other.exit_code == EXIT_OUTPUT_EXISTS and "another job" in other.output


def test_default_image_root_is_the_input_objects_prefix_and_globs_match_objects(bucket, models, reference):
    out = "s3://tweets/out/together.parquet"
    result = _score("s3://tweets/together/*.parquet", "--model", models["ote"], "--out", out,
                    "--keep-columns", "user", "--workers", "0")
    assert result.exit_code == 0, result.output
    table = _get(bucket["client"], "out/together.parquet")
    assert table.num_rows == bucket["rows"]  # together/old/ is one level down: not matched
    _assert_same_as_local(_comparable(table), reference)


def test_an_image_over_the_byte_limit_is_refused_before_download(bucket, models, tmp_path):
    limit = 1_000
    out = tmp_path / "small.parquet"
    result = _score("s3://tweets/in/a.parquet", "--model", models["ote"], "--out", out,
                    "--image-root", "s3://tweets/images", "--max-image-bytes", limit, "--workers", "0")
    assert result.exit_code == 0, result.output
    ok = [r for r in pq.read_table(out).to_pylist() if r["guid"] == "g-ok"][0]
    assert ok["error_kind"] == "too_large" and f"limit is {limit} bytes" in ok["error"]
    assert "s3://tweets/images/" in ok["error"]


def test_an_interrupted_run_on_s3_resumes_where_it_stopped(bucket, models, reference, monkeypatch):
    """Parts and checkpoint live on the bucket: a run stopped after two row groups, rerun with
    --resume, scores only the rest and gives the same file as an uninterrupted run."""
    from mmsa_cli.io import checkpointed as output

    client = bucket["client"]
    out = "s3://tweets/out/resumed.parquet"
    opts = dict(device="cpu", workers=0, progress=False, image_root="s3://tweets/images", row_group_size=5,
                columns=Columns(keep=("user",)))
    original = output.OutputWriter.write_part

    def stop_after_two(self, *a, **kw):
        if self.checkpoint.parts >= 2:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(output.OutputWriter, "write_part", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        score_files(["s3://tweets/in/"], models["ote"], out, ScoreOptions(**opts))
    monkeypatch.undo()
    assert output.rows_done(out) == (10, out + ".parts")
    assert {"out/resumed.parquet.parts/part-000000.parquet", "out/resumed.parquet.parts/checkpoint.json"} <= set(
        _keys(client, "out/resumed.parquet.parts/"))

    refused = _score("s3://tweets/in/", "--model", models["ote"], "--out", out, "--image-root",
                     "s3://tweets/images", "--keep-columns", "user", "--row-group-size", "5", "--workers", "0")
    assert refused.exit_code == EXIT_OUTPUT_EXISTS and "--resume" in refused.output
    summary = score_files(["s3://tweets/in/"], models["ote"], out, ScoreOptions(**opts, resume=True))
    assert summary.resumed_from_row == 10 and summary.rows_this_run == bucket["rows"] - 10
    _assert_same_as_local(_comparable(_get(client, "out/resumed.parquet")), reference)
    assert _keys(client, "out/resumed.parquet.parts/") == []


def test_object_storage_problems_are_one_line_before_any_work(bucket, models, tmp_path):
    bucket["client"].put_object(Bucket="tweets", Key="folder.parquet/x", Body=b"x")
    cases = [
        (["s3://tweets/nothing-here/", "--out", tmp_path / "a.parquet"], "does not exist"),
        (["s3://tweets/in/", "--out", "s3://no-such-bucket/x.parquet"], "bucket no-such-bucket does not exist"),
        (["s3://tweets/in/", "--out", "s3://tweets/images"], "must be a .parquet file"),
        (["s3://tweets/in/", "--out", "s3://tweets/folder.parquet"], "prefix holding objects"),
        (["s3://tweets/in/", "--out", tmp_path / "b.parquet", "--image-root", "s3://tweets/no-images"],
         "--image-root s3://tweets/no-images"),
        (["s3://tweets/in/", "--out", "s3://tweets/in/a.parquet", "--overwrite"], "is one of the input files"),
        (["s3://tweets/in/", "--out", tmp_path / "c.parquet", "--stats-json", "s3://no-such-bucket/s.json"],
         "the bucket no-such-bucket does not exist"),
    ]
    for args, message in cases:
        result = _score(*args, "--model", models["ote"])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == EXIT_USAGE, (args, result.output)
        assert len(lines) == 1 and message in lines[0], (args, result.output)
    assert not list(tmp_path.iterdir())
    assert "in/a.parquet" in _keys(bucket["client"], "in/")
