"""`--engine ray` on a multi-node cluster simulated on one machine (ray.cluster_utils.Cluster:
a head and two worker nodes); a worker node with work on it is removed mid-job and every row
still comes back exactly once (Ray re-runs the lost tasks; a re-run batch rewrites its own
part file), directly or, when Ray Data gives up on the job, after one --resume."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from mmsa_cli.scoring import Columns, ScoreOptions
from mmsa_cli.scoring.output import PAUSE_ENV
from mmsa_cli.scoring.ray_job import MANIFEST_FILE, RayOptions, score_files_ray

sys.path.insert(0, str(Path(__file__).parent))
from test_ray import data, model  # noqa: E402,F401  (module fixtures)
from test_ray import assert_same_rows, by_id, local_reference, read_dir  # noqa: E402

NODE = {"num_cpus": 2, "object_store_memory": 80 * 1024 ** 2}


def test_a_node_removed_mid_job_loses_no_row(data, model, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PAUSE_ENV, "0.3")  # the nodes inherit it: parts are written slowly enough to interrupt
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    out, result = tmp_path / "scored", {}
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False

        def job(resume: bool = False):
            try:
                result["summary"] = score_files_ray(
                    data["files"], model, out, ScoreOptions(columns=Columns(keep=("user",)), device="cpu",
                                                            row_group_size=100, resume=resume),
                    RayOptions(actors=(2, 3), rows_per_call=100, rows_per_file=100), progress=False)
            except BaseException as exc:  # reported by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=job)
        thread.start()
        deadline = time.time() + 240
        busy = None
        while time.time() < deadline and thread.is_alive() and busy is None:
            if len(list(out.glob("part-*.parquet"))) >= 3:
                busy = _busy_node(workers)
            time.sleep(0.1)
        assert thread.is_alive() and busy is not None, result
        cluster.remove_node(busy)  # a node with work on it (an actor or tasks holding its CPUs)
        thread.join(600)
        assert not thread.is_alive(), result
        if "error" in result:
            # Seen in full-suite runs (never alone): after the node loss Ray Data's pool kept
            # starting replacement actors that were cancelled before they ran, until its
            # max_consecutive_actor_init_deaths budget ran out. The job then fails with exit
            # 6 and keeps its parts; the documented recovery, --resume, must finish the job
            # without losing or doubling a row.
            assert getattr(result["error"], "exit_code", None) == 6, result
            print(f"job failed after the node loss ({result['error']}); resuming")
            job(resume=True)
            assert "summary" in result, result
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert (out / MANIFEST_FILE).exists() and result["summary"].rows == data["rows"]
    assert_same_rows(by_id(read_dir(out)), local_reference(data, model, tmp_path))


def _busy_node(nodes):
    """One of `nodes` whose CPUs are in use now, or None."""
    from ray._private.state import available_resources_per_node

    free = available_resources_per_node()
    for node in nodes:
        if free.get(node.node_id, {}).get("CPU", NODE["num_cpus"]) < NODE["num_cpus"]:
            return node
    return None
