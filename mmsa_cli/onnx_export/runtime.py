"""ONNX Runtime sessions for export checks and benchmarks.

torch is imported before onnxruntime on purpose: onnxruntime-gpu finds the CUDA/cuDNN
libraries torch has already loaded. ORT silently falls back to the CPU when the CUDA EP
cannot load, so a CUDA session is always verified.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch  # noqa: F401  (before onnxruntime, see above)

from ..contract.device import onnxruntime_cuda_check, torch_cuda_check
from ..errors import ConfigError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def export_cuda_check() -> str | None:
    """Export's CUDA needs both backends: the PyTorch reference and the ONNX Runtime session."""
    return onnxruntime_cuda_check() or torch_cuda_check()


def make_session(path: str | Path, provider: str = "CPUExecutionProvider", *, threads: int = 0,
                 provider_options: dict | None = None, optimized_path: str | Path | None = None):
    """A session with every graph optimisation on; threads=0 lets ORT use all cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    providers = [(provider, provider_options or {})]
    if provider != "CPUExecutionProvider":
        providers.append(("CPUExecutionProvider", {}))
    session = ort.InferenceSession(str(path), options, providers=providers)
    if session.get_providers()[0] != provider:
        raise ConfigError(f"ONNX Runtime could not start {provider} (it fell back to {session.get_providers()[0]})")
    return session


def parity_provider_options(provider: str) -> dict:
    # TF32 matmuls would blur an fp32 comparison at the 1e-4 level.
    return {"use_tf32": "0"} if provider == "CUDAExecutionProvider" else {}


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
