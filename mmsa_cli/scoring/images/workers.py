"""Image worker processes: `python -m mmsa_cli.scoring.images.workers`, fed over pipes.

Not multiprocessing: its spawn/forkserver children re-import the parent's __main__ (a
notebook's or an Airflow task's, which may import torch: seconds and hundreds of MB per
worker), and fork is unsafe in a process running ONNX Runtime and CUDA threads. These
workers import only what image preparation needs (numpy, Pillow; never torch, transformers
or onnxruntime: tests/test_install.py), and exit when their stdin closes, so a parent
killed with SIGKILL leaves no orphans.

Protocol (pickle frames): parent -> (ImageSpec, slots layout or None), then
(tasks, gpu_share, start, slot) per task list (see preprocess.prepare_images); worker ->
([ImageResult], seconds).

Pixels travel through shared memory (PixelSlots, Linux): a task list is given a slot, the
worker writes its prepared images there and sends back only their statuses (payload None),
and the parent reads them in place, instead of reading and unpickling 150 KB per image from
a pipe while holding its GIL (on the H100 this did not change the end-to-end rate measurably:
benchmarks/results/score_gpu.md, session 3).
"""
from __future__ import annotations

import mmap
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import PipelineError
from .prepare import ImageResult, ImageSpec, ImageTask


class WorkerDied(PipelineError):
    """An image worker process ended unexpectedly (killed, out of memory)."""


class PixelSlots:
    """`count` slots of `images` uint8 [S,S,3] images in one anonymous shared memory file
    (memfd, so nothing can leak when the parent is killed); handed out to task lists and
    given back once their pixels are consumed, so memory is bounded by `count`."""

    def __init__(self, count: int, images: int, size: int):
        self.layout = (count, images, size)
        self.fd = os.memfd_create("mmsa-pixels")
        os.ftruncate(self.fd, count * images * size * size * 3)
        self._map = mmap.mmap(self.fd, count * images * size * size * 3)
        self.view = np.frombuffer(self._map, np.uint8).reshape(count, images, size, size, 3)
        self._free: queue.LifoQueue = queue.LifoQueue()  # LIFO: the same few slots stay hot
        for i in range(count):
            self._free.put(i)

    @classmethod
    def create(cls, count: int, images: int, size: int) -> "PixelSlots | None":
        if not hasattr(os, "memfd_create"):  # not Linux: pixels go through the pipes
            return None
        return cls(count, images, size)

    def acquire(self, stop: threading.Event | None) -> int | None:
        """A free slot; waits while all are in use; None once `stop` is set."""
        while stop is None or not stop.is_set():
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def release(self, slot: int) -> None:
        self._free.put(slot)

    def free(self) -> int:
        return self._free.qsize()


class WorkerPool:
    def __init__(self, size: int, spec: ImageSpec, *, slot_count: int = 0, slot_images: int = 0,
                 stop: threading.Event | None = None):
        """`size` worker processes. With slot_count and slot_images, pixels come back through
        shared memory: submit() waits for a free slot (so at most slot_count task lists are in
        flight) and release() must be called with the future once its pixels are consumed."""
        root = str(Path(__file__).resolve().parents[2])  # the folder holding mmsa_cli
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._todo: queue.Queue = queue.Queue()
        self._broken: str | None = None
        self._stop = stop
        self.slots = PixelSlots.create(slot_count, slot_images, spec.size) if slot_count and slot_images else None
        layout = (self.slots.fd, self.slots.layout) if self.slots else None
        self._procs = [subprocess.Popen([sys.executable, "-m", "mmsa_cli.scoring.images.workers"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, pass_fds=(layout[0],) if layout else ())
                       for _ in range(size)]
        if self.slots:
            os.close(self.slots.fd)  # the workers hold it now; the mapping stays
        self._threads = [threading.Thread(target=self._feed, args=(p, (spec, layout)), daemon=True,
                                          name=f"mmsa-feed-{i}") for i, p in enumerate(self._procs)]
        for t in self._threads:
            t.start()

    def submit(self, tasks: Sequence[ImageTask], gpu_share: float = 1.0, start: int = 0) -> Future:
        """Future of prepare_images(tasks, spec, gpu_share, start) in a worker process."""
        future: Future = Future()
        future.slot = None
        if self.slots is not None and len(tasks) <= self.slots.layout[1]:
            future.slot = self.slots.acquire(self._stop)
            if future.slot is None:
                future.set_exception(PipelineError("scoring stopped"))
                return future
        if self._broken:
            future.set_exception(WorkerDied(self._broken))
        else:
            self._todo.put((future, (list(tasks), float(gpu_share), int(start), future.slot)))
        return future

    def release(self, future: Future) -> None:
        """The future's pixels have been consumed: its slot may be reused."""
        slot, future.slot = getattr(future, "slot", None), None
        if slot is not None and self.slots is not None:
            self.slots.release(slot)

    def _pixels_in_place(self, results: list[ImageResult], slot: int | None) -> list[ImageResult]:
        """Worker results -> results whose pixel payloads are views of their slot."""
        if slot is None:
            return results
        k = 0
        for i, r in enumerate(results):
            if r.status == "pixels" and r.payload is None:
                results[i] = r._replace(payload=self.slots.view[slot, k])
                k += 1
        return results

    def _feed(self, proc: subprocess.Popen, hello) -> None:
        """One thread per worker: send a task, wait for its result, repeat."""
        try:
            pickle.dump(hello, proc.stdin)
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
                results, seconds = pickle.load(proc.stdout)
                future.set_result((self._pixels_in_place(results, job[3]), seconds))
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


def _attach(layout) -> np.ndarray | None:
    """The worker's view of the parent's PixelSlots."""
    if layout is None:
        return None
    fd, (count, images, size) = layout
    return np.frombuffer(mmap.mmap(fd, count * images * size * size * 3), np.uint8).reshape(
        count, images, size, size, 3)


def _to_slot(results: list[ImageResult], view: np.ndarray | None, slot: int | None) -> list[ImageResult]:
    """Pixels written into the slot, in order; their payloads become None (the parent fills
    them back in as views)."""
    if view is None or slot is None:
        return results
    k = 0
    for i, r in enumerate(results):
        if r.status == "pixels" and k < view.shape[1]:
            view[slot, k] = r.payload
            results[i] = r._replace(payload=None)
            k += 1
    return results


def _serve() -> None:
    from .prepare import prepare_images

    # Ctrl-C reaches the whole process group: the parent decides (it stops, keeps the parts
    # and closes our stdin), a worker dying first would turn "interrupted" into "worker died".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from libraries go to stderr, never into the protocol
    stdin = sys.stdin.buffer
    try:
        spec, layout = pickle.load(stdin)
        view = _attach(layout)
        while True:
            tasks, gpu_share, start, slot = pickle.load(stdin)
            results, seconds = prepare_images(tasks, spec, gpu_share, start)
            pickle.dump((_to_slot(results, view, slot), seconds), protocol_out, protocol=pickle.HIGHEST_PROTOCOL)
            protocol_out.flush()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # parent closed the pipe or died: done


if __name__ == "__main__":
    _serve()
