"""The multi-node scenario of test_ray_multinode.py, run in a fresh interpreter: Ray Data
keeps process-wide state between clusters (after test_ray.py's cluster, actors of a new
Cluster in the same pytest process were cancelled at start, before any node was removed).

    python tests/ray_multinode_job.py MODEL OUT FILE... -> one JSON line on stdout
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from mmsa_cli.scoring import Columns, ScoreOptions
from mmsa_cli.io.checkpointed import PAUSE_ENV
from mmsa_cli.scoring.engines.ray_files import RayOptions, score_files_ray

NODE = {"num_cpus": 2, "object_store_memory": 80 * 1024 ** 2}


def main(model: str, out: str, files: list[str]) -> dict:
    os.environ[PAUSE_ENV] = "0.3"  # the nodes inherit it: parts are written slowly enough to interrupt
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    report: dict = {"removed": False, "failed_first": None}
    result: dict = {}

    def job(resume: bool = False) -> None:
        try:
            result["summary"] = score_files_ray(
                files, model, out, ScoreOptions(columns=Columns(keep=("user",)), device="cpu", row_group_size=100,
                                                resume=resume),
                RayOptions(actors=(2, 3), rows_per_call=100, rows_per_file=100), progress=False)
        except Exception as exc:
            result["error"] = exc

    try:
        ray.init(address=cluster.address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        thread = threading.Thread(target=job)
        thread.start()
        deadline, busy = time.time() + 240, None
        while time.time() < deadline and thread.is_alive() and busy is None:
            if len(list(Path(out).glob("part-*.parquet"))) >= 3:
                busy = _busy_node(workers)
            time.sleep(0.1)
        if thread.is_alive() and busy is not None:
            cluster.remove_node(busy)  # a node with work on it (an actor or tasks holding its CPUs)
            report["removed"] = True
        thread.join(600)
        if "error" in result:
            # The documented recovery: exit 6 keeps the parts, --resume finishes the job.
            report["failed_first"] = f"exit {getattr(result.pop('error'), 'exit_code', None)}"
            job(resume=True)
        report["error"] = str(result.get("error")) if "error" in result else None
        report["rows"] = result["summary"].rows if "summary" in result else None
    finally:
        ray.shutdown()
        cluster.shutdown()
    return report


def _busy_node(nodes):
    """One of `nodes` whose CPUs are in use now, or None."""
    from ray._private.state import available_resources_per_node

    free = available_resources_per_node()
    for node in nodes:
        if free.get(node.node_id, {}).get("CPU", NODE["num_cpus"]) < NODE["num_cpus"]:
            return node
    return None


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
