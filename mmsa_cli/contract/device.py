"""Device choice, one rule for every command (train, evaluate, predict, export, score).

    auto  CUDA when it can be used, else the CPU, and the reason is returned to be shown
    cpu   the CPU
    cuda  CUDA, or DeviceUnavailableError (exit 7): a scheduler must never see success for
          a run that silently took ten times longer on the CPU

What "usable" means depends on the backend: torch needs `torch.cuda.is_available()`,
ONNX Runtime needs its CUDAExecutionProvider too (onnxruntime-gpu). Callers pass the check;
this module imports neither, so it costs nothing where no GPU can exist.

Every command gets one result type, Device (the name, and the note when `auto` fell back),
and the note is surfaced one way, here: a warning on stderr (logging). A command whose
summary lists warnings (score) also keeps it there.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DeviceUnavailableError

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")
_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0")


@dataclass(frozen=True)
class Device:
    name: str            # "cpu" or "cuda"
    note: str = ""       # why `auto` chose the CPU ("" when nothing needs saying)


def nvidia_driver_present() -> bool:
    """Cheap check before paying for `import torch` on machines that cannot have CUDA."""
    return any(Path(p).exists() for p in _DRIVER_FILES)


def resolve_device(requested: str, cuda_check: Callable[[], str | None]) -> Device:
    """requested in DEVICES -> the device to run on. cuda_check() returns None when CUDA is
    usable, else a reason ("torch sees no CUDA GPU", "onnxruntime has no CUDA provider ...");
    it is only called where a GPU could exist (an NVIDIA driver) or CUDA was asked for."""
    if requested not in DEVICES:
        raise ConfigError(f"device {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return Device("cpu")
    if requested == "auto" and not nvidia_driver_present():
        return Device("cpu")
    reason = cuda_check()
    if reason is None:
        return Device("cuda")
    if requested == "cuda":
        raise DeviceUnavailableError(f"--device cuda: CUDA cannot be used here ({reason}); use --device cpu or auto")
    device = Device("cpu", f"device auto: running on the CPU ({reason})")
    log.warning(device.note)
    return device


def torch_cuda_check() -> str | None:
    """cuda_check for the PyTorch backend (training, evaluate, predict, export's reference)."""
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA GPU"


def onnxruntime_cuda_check() -> str | None:
    """cuda_check for ONNX Runtime: the CUDA provider must exist and a GPU must be visible.
    torch, when installed, is imported first: onnxruntime-gpu then finds the CUDA libraries
    it loaded."""
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime has no CUDAExecutionProvider: install mmsa-tweets[gpu] (onnxruntime-gpu)"
    if torch is not None and not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    if torch is None and not nvidia_driver_present():
        return "no NVIDIA driver"
    return None


def once(cuda_check: Callable[[], str | None]) -> Callable[[], str | None]:
    """A cuda_check that asks once: a command that needs the answer twice (export: where the
    reference runs, and which provider's fusions to count) makes one decision."""
    return functools.cache(cuda_check)
