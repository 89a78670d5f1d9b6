"""OnnxModel: an exported model folder's graph in ONNX Runtime, loaded once; model inputs in,
probabilities out. One of the two backends the table scorer (scorer.py) runs; the other is
the PyTorch model of a run folder (torch_model.py)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.device import onnxruntime_cuda_check, resolve_device
from ..contract.inputs import ModelInputs
from ..errors import DeviceUnavailableError
from ..contract.model_folder import ModelFolder, load_model_folder
from .errors import ModelLoadError

log = logging.getLogger(__name__)

BATCH_BY_DEVICE = {"cpu": 32, "cuda": 512}  # cuda: 512 beat 256 by 3.5% end to end on the H200 (score_gpu_dali.md)
# prefer_nhwc: channels-last convolutions (ResNet/EfficientNet) on tensor cores; HEURISTIC
# avoids an exhaustive cuDNN search. fuse_conv_bias: cuDNN's runtime conv+bias(+ReLU) fusion,
# ResNet-50 alone 10,400 -> 14,700 img/s on the H100 (benchmarks/results/export_gpu_session2.md).
# It compiles kernels for each new input shape (seconds), which is why CUDA batches are
# padded to one fixed shape (fixed_batch) and the scorer warms up once when it loads.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1", "cudnn_conv_use_max_workspace": "1",
                "fuse_conv_bias": "1"}


class OnnxModel:
    """`OnnxModel("models/ote", device="auto")`, then `model({"input_ids", "attention_mask",
    "pixel_values"}) -> {"probs": [B,3] float32}`. On CUDA, pixel_values may be a CUDA torch
    tensor (bound in place, no host copy) and every batch is padded to `fixed_batch` rows."""

    def __init__(self, model_dir: str | Path, device: str = "auto", *, batch_size: int | None = None,
                 verify_checksum: bool = True, threads: int | None = None):
        self.folder: ModelFolder = load_model_folder(model_dir, verify_checksum=verify_checksum)
        self.manifest = self.folder.manifest
        self.decision_offsets = list(self.manifest.decision_offsets)  # the label rule (contract/decision.py)
        self.inputs = ModelInputs.from_manifest(self.manifest)
        self.tokenizer = self.folder.load_tokenizer()  # tokenizers alone: no transformers, no torch
        self.warnings: list[str] = []
        self.session = self._open_session(device, threads)
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.batch_size = batch_size or BATCH_BY_DEVICE[self.device]
        # Smaller batches are padded to this many rows (None: run as they are). On CUDA every
        # batch then has the image shape the convolution kernels were built for.
        self.fixed_batch: int | None = self.batch_size if self.device == "cuda" else None
        self.input_names = {i.name for i in self.session.get_inputs()}
        self._zeros: dict[int, Any] = {}

    def _open_session(self, device: str, threads: int | None):
        chosen = resolve_device(device, onnxruntime_cuda_check)  # cuda unusable: DeviceUnavailableError
        if chosen.note:  # resolve_device said it on stderr; the summary lists it too
            self.warnings.append(chosen.note)
        want_cuda = chosen.name == "cuda"
        if want_cuda:
            import torch  # noqa: F401  (before onnxruntime: the CUDA EP finds the libraries torch loaded)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        elif want_cuda:  # the CPU pool only runs shape ops; spinning threads would starve nvJPEG and the workers
            opts.intra_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = str(self.folder.onnx_path)
        cpu = ["CPUExecutionProvider"]
        try:
            if want_cuda:
                try:
                    session = ort.InferenceSession(path, opts, providers=[("CUDAExecutionProvider", CUDA_OPTIONS), *cpu])
                except Exception as exc:  # an option this ORT build does not know: plain CUDA EP
                    log.debug("CUDA EP with tuned options failed (%s); retrying with defaults", exc)
                    session = ort.InferenceSession(path, opts, providers=["CUDAExecutionProvider", *cpu])
            else:
                session = ort.InferenceSession(path, opts, providers=cpu)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from None
        active = session.get_providers()
        if want_cuda and active[0] != "CUDAExecutionProvider":
            reason = (f"ONNX Runtime's CUDA provider failed to load and it fell back to {active[0]}: check the "
                      f"CUDA/cuDNN libraries")
            if device == "cuda":
                raise DeviceUnavailableError(f"--device cuda: {reason}")
            self._warn(f"device auto: {reason}; scoring is much slower")
        if active[0] == "CPUExecutionProvider" and self.manifest.target == "cuda":
            self._warn(f"model {self.folder.path} was optimised for CUDA (precision {self.manifest.precision}) "
                       f"and runs on the CPU: export one for the CPU for best speed")
        return session

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def describe(self) -> dict:
        m = self.manifest
        return {"path": str(self.folder.path), "fusion": m.fusion, "text_encoder": m.text_encoder,
                "image_encoder": m.image_encoder, "precision": m.precision, "target": m.target,
                "model_sha256": m.model_sha256, "format_version": m.format_version,
                "provider": self.provider, "device": self.device}

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """All three inputs ([B,L] int64 ids and mask, [B,3,S,S] float32 pixels) -> {"probs": [B,3]}."""
        ids, mask, pixels = batch["input_ids"], batch["attention_mask"], batch["pixel_values"]
        n = len(ids)
        rows = max(n, self.fixed_batch or 0)
        if rows > n:
            ids, mask, pixels = pad_rows(ids, mask, pixels, rows)
        if self.device == "cuda":
            return {"probs": self._run_cuda(ids, mask, pixels)[:n]}
        feed = {"input_ids": ids, "attention_mask": mask, "pixel_values": to_numpy(pixels, np.float32)}
        feed = {k: np.ascontiguousarray(v) for k, v in feed.items() if k in self.input_names}
        return {"probs": self.session.run(["probs"], feed)[0][:n]}

    def _run_cuda(self, ids: np.ndarray, mask: np.ndarray, pixels) -> np.ndarray:
        binding = self.session.io_binding()
        if "input_ids" in self.input_names:
            binding.bind_cpu_input("input_ids", np.ascontiguousarray(ids))
        if "attention_mask" in self.input_names:
            binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask))
        if "pixel_values" in self.input_names:
            if is_torch(pixels) and pixels.is_cuda:
                pixels = pixels.contiguous()
                binding.bind_input("pixel_values", "cuda", pixels.device.index or 0, np.float32,
                                   list(pixels.shape), pixels.data_ptr())
            else:
                binding.bind_cpu_input("pixel_values", np.ascontiguousarray(to_numpy(pixels, np.float32)))
        binding.bind_output("probs", "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def blank_pixels(self, n: int):
        """n mean images: the pixel input of rows without a usable image (kept on the device)."""
        if n not in self._zeros:
            s = self.inputs.image_size
            if self.device == "cuda":
                import torch

                self._zeros[n] = torch.zeros((n, 3, s, s), device="cuda")
            else:
                self._zeros[n] = np.zeros((n, 3, s, s), np.float32)
        return self._zeros[n]


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def to_numpy(x, dtype) -> np.ndarray:
    if is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def pad_rows(ids: np.ndarray, mask: np.ndarray, pixels, rows: int):
    """Model inputs of n < rows rows -> `rows` rows, the extra ones copies of the first (any
    valid input; their outputs are dropped). Pixels may be numpy or a torch tensor."""
    def pad(x):
        extra = rows - len(x)
        if extra <= 0:
            return x
        if is_torch(x):
            import torch

            return torch.cat([x, x[:1].expand(extra, *x.shape[1:])])
        return np.concatenate([x, np.repeat(np.asarray(x[:1]), extra, 0)])

    return pad(ids), pad(mask), pad(pixels)
