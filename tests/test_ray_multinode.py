"""`--engine ray` on a multi-node cluster simulated on one machine (ray.cluster_utils.Cluster:
a head and two worker nodes); a worker node with work on it is removed mid-job and every row
still comes back exactly once (Ray re-runs the lost tasks; a re-run batch rewrites its own
part file), directly or, when Ray Data gives up on the job (exit 6), after one --resume.
The cluster runs in a fresh interpreter (tests/ray_multinode_job.py): see why there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mmsa_cli.scoring.engines.ray_files import MANIFEST_FILE

sys.path.insert(0, str(Path(__file__).parent))
from test_ray import data, model  # noqa: E402,F401  (module fixtures)
from test_ray import REPO, TESTS, assert_same_rows, by_id, local_reference, read_dir  # noqa: E402


def test_a_node_removed_mid_job_loses_no_row(data, model, tmp_path):  # noqa: F811
    out = tmp_path / "scored"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    run = subprocess.run([sys.executable, str(TESTS / "ray_multinode_job.py"), str(model), str(out),
                          *map(str, data["files"])], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print(report)
    assert report["removed"] and report["error"] is None and report["rows"] == data["rows"], report
    assert (out / MANIFEST_FILE).exists()
    assert_same_rows(by_id(read_dir(out)), local_reference(data, model, tmp_path))
