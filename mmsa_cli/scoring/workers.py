"""Image worker processes: `python -m mmsa_cli.scoring.workers`, fed over pipes.

Not multiprocessing: its spawn/forkserver children re-import the parent's __main__ (the
`mmsa` script imports torch and transformers: seconds and hundreds of MB per worker), and
fork is unsafe in a process running ONNX Runtime and CUDA threads. These workers import
only what image preparation needs, and exit when their stdin closes, so a parent killed
with SIGKILL leaves no orphans.

Protocol (pickle frames): parent -> ImageSpec, then (tasks, gpu_share, start) per task list
(see preprocess.prepare_images); worker -> ([ImageResult], seconds).
"""
from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

from .errors import PipelineError
from .preprocess import ImageSpec, ImageTask


class WorkerDied(PipelineError):
    """An image worker process ended unexpectedly (killed, out of memory)."""


class WorkerPool:
    def __init__(self, size: int, spec: ImageSpec):
        root = str(Path(__file__).resolve().parents[2])  # the folder holding mmsa_cli
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._todo: queue.Queue = queue.Queue()
        self._broken: str | None = None
        self._procs = [subprocess.Popen([sys.executable, "-m", "mmsa_cli.scoring.workers"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env) for _ in range(size)]
        self._threads = [threading.Thread(target=self._feed, args=(p, spec), daemon=True, name=f"mmsa-feed-{i}")
                         for i, p in enumerate(self._procs)]
        for t in self._threads:
            t.start()

    def submit(self, tasks: Sequence[ImageTask], gpu_share: float = 1.0, start: int = 0) -> Future:
        """Future of prepare_images(tasks, spec, gpu_share, start) in a worker process."""
        future: Future = Future()
        if self._broken:
            future.set_exception(WorkerDied(self._broken))
        else:
            self._todo.put((future, (list(tasks), float(gpu_share), int(start))))
        return future

    def _feed(self, proc: subprocess.Popen, spec: ImageSpec) -> None:
        """One thread per worker: send a task, wait for its result, repeat."""
        try:
            pickle.dump(spec, proc.stdin)
            proc.stdin.flush()
        except OSError:
            pass
        while (item := self._todo.get()) is not None:
            future, job = item
            if self._broken:
                future.set_exception(WorkerDied(self._broken))
                continue
            try:
                pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.flush()
                future.set_result(pickle.load(proc.stdout))
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                code = proc.poll()
                self._broken = (f"an image worker process (pid {proc.pid}) died"
                                + (f" with exit code {code}" if code is not None else "")
                                + f" ({exc}); the completed row groups are kept: rerun with --resume")
                future.set_exception(WorkerDied(self._broken))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        for p in self._procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


def _serve() -> None:
    from .preprocess import prepare_images

    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from libraries go to stderr, never into the protocol
    stdin = sys.stdin.buffer
    try:
        spec = pickle.load(stdin)
        while True:
            tasks, gpu_share, start = pickle.load(stdin)
            pickle.dump(prepare_images(tasks, spec, gpu_share, start), protocol_out, protocol=pickle.HIGHEST_PROTOCOL)
            protocol_out.flush()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # parent closed the pipe or died: done


if __name__ == "__main__":
    _serve()
