"""How a CUDA run shares its plain JPEGs between nvJPEG on the GPU and the CPU image workers
(`--gpu-decode-share`), balanced per batch when it is `auto`."""
from __future__ import annotations

import threading

from ..options import AUTO, check_share


class GpuDecodeShare:
    """gpu_decode_share: the fraction of each batch's plain JPEGs (those nvJPEG takes) decoded
    by nvJPEG on the GPU; the CPU workers fully prepare the rest (PIL draft decode + resize +
    crop, as on a CPU-only run) and the prep thread uploads their pixels, so both decoders work
    at once. 1 = all on the GPU, 0 = none. Only runs that decode on the GPU use it.

    A number is used as it is. AUTO starts where `workers` processes at CPU_IMAGES_PER_S each
    keep pace with `prep_threads` threads at GPU_IMAGES_PER_S each (H100 measurements, nvJPEG
    sharing the GPU with ONNX Runtime), then after every batch balances the busy times of the
    two paths for that batch:
        cpu = the workers' seconds for the batch / workers         (they run in parallel)
        gpu = the prep thread's seconds for the batch / prep threads
        share += GAIN * (cpu - gpu) / (cpu + gpu)                   (kept in 0..1)
    so the slower side gets less work until neither waits for the other. A change reaches the
    batches submitted after it, a few batches later; GAIN is small enough for that delay not to
    make it oscillate. Without worker processes the CPU path runs in the prep thread, in series
    with nvJPEG, so AUTO is then 1."""

    CPU_IMAGES_PER_S = 270.0
    GPU_IMAGES_PER_S = 3500.0
    GAIN = 0.03

    def __init__(self, setting: float | str, workers: int, prep_threads: int):
        self.setting = check_share(setting)
        self.auto = self.setting == AUTO and workers > 0
        self.workers, self.prep_threads = max(workers, 1), max(prep_threads, 1)
        if self.setting != AUTO:
            self.value = float(self.setting)
        elif workers > 0:
            gpu = self.prep_threads * self.GPU_IMAGES_PER_S
            self.value = gpu / (gpu + workers * self.CPU_IMAGES_PER_S)
        else:
            self.value = 1.0
        self._lock = threading.Lock()
        self.batches, self._sum, self.low, self.high = 0, 0.0, self.value, self.value

    def next(self) -> float:
        """The share for the next batch submitted (recorded for the summary)."""
        with self._lock:
            v = self.value
            self.batches += 1
            self._sum += v
            self.low, self.high = min(self.low, v), max(self.high, v)
            return v

    def update(self, cpu_seconds: float, gpu_seconds: float) -> None:
        """One batch's busy times: the workers' summed seconds, the prep thread's seconds."""
        if not self.auto:
            return
        cpu, gpu = cpu_seconds / self.workers, gpu_seconds / self.prep_threads
        if cpu + gpu <= 0:
            return
        with self._lock:
            self.value = min(1.0, max(0.0, self.value + self.GAIN * (cpu - gpu) / (cpu + gpu)))

    def summary(self) -> dict:
        mean = self._sum / self.batches if self.batches else self.value
        return {"gpu_decode_share": self.setting, "share_mean": round(mean, 3), "share_min": round(self.low, 3),
                "share_max": round(self.high, 3), "share_last": round(self.value, 3)}
