"""Code the Ray tests ship to Ray worker processes (importable there: the tests put this
folder on the workers' PYTHONPATH)."""
from __future__ import annotations

import os
from pathlib import Path

from mmsa_cli.scoring.engines.ray_dataset import ScoreActor


class DiesOnceActor(ScoreActor):
    """A scoring actor whose process exits in the middle of a batch, once per job (the first
    actor to take the marker file dies), the way Ray's own tests kill actors."""

    def __init__(self, *args, marker: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker = Path(marker)

    def __call__(self, batch):
        out = super().__call__(batch)   # scored, not yet returned: the batch is lost with the process
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return out
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


class ReportsGpuActor(ScoreActor):
    """Writes which GPUs Ray gave it (ids, CUDA_VISIBLE_DEVICES) to report_dir/<pid>.json."""

    def __init__(self, *args, report_dir: str, **kwargs):
        import json

        import ray

        super().__init__(*args, **kwargs)
        Path(report_dir, f"{os.getpid()}.json").write_text(json.dumps(
            {"gpu_ids": [str(i) for i in ray.get_gpu_ids()], "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES")}))
