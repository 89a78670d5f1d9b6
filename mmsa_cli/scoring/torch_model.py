"""TorchModel: the PyTorch model of a run folder behind OnnxModel's interface, so `mmsa
evaluate` and `mmsa predict` run the very pipeline `mmsa score` runs (same tokenization,
geometry and bad-row policy), and export parity compares the two backends on the same inputs.
Needs the [train] extra (torch); imported only by those commands."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract.decision import run_decision_rule
from ..contract.device import resolve_device, torch_cuda_check
from ..contract.inputs import ModelInputs

TORCH_BATCH = 64  # rows per call of a run folder's PyTorch model


class TorchModel:
    """`TorchModel.from_run(load_run("runs/ote"))`, then `model({"input_ids", "attention_mask",
    "pixel_values"}) -> {"probs", "logits"}`, in float32 (no autocast: the reference export
    parity is measured against)."""

    def __init__(self, model, inputs: ModelInputs, tokenizer, device: str = "auto", *,
                 batch_size: int | None = None, description: dict | None = None,
                 decision_offsets: list[float] | None = None):
        import torch

        chosen = resolve_device(device, torch_cuda_check)  # cuda unusable: DeviceUnavailableError
        self.warnings: list[str] = [chosen.note] if chosen.note else []
        self.device = chosen.name
        self.provider = f"PyTorch ({self.device})"
        self._torch_device = torch.device(self.device)
        self.model = model.eval().to(self._torch_device)
        self.inputs, self.tokenizer = inputs, tokenizer
        self.batch_size = batch_size or TORCH_BATCH
        self.fixed_batch: int | None = None
        self._description = description or {}
        self.decision_offsets = list(decision_offsets or [])  # the label rule (contract/decision.py)

    @classmethod
    def from_run(cls, run, device: str = "auto", **kwargs) -> "TorchModel":
        """A run folder's model (mmsa_cli.runs.load_run) with the inputs it was trained on, and
        the decision rule of the CV run it is a fold of (decision_rule.json), as export carries it."""
        rule = run_decision_rule(run.folder)
        kwargs.setdefault("decision_offsets", rule["offsets"] if rule else None)
        cfg = run.model_cfg
        return cls(run.model, run.inputs, run.model.text_encoder.tokenizer, device,
                   description={"path": str(run.folder), "fusion": cfg.fusion, "text_encoder": cfg.text_encoder,
                                "image_encoder": cfg.image_encoder}, **kwargs)

    def describe(self) -> dict:
        return {**self._description, "provider": self.provider, "device": self.device}

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            ids, mask, pixels = (torch.as_tensor(batch[k]).to(self._torch_device)
                                 for k in ("input_ids", "attention_mask", "pixel_values"))
            logits = self.model(ids.long(), mask.long(), pixels.float()).float()
            return {"probs": logits.softmax(-1).cpu().numpy(), "logits": logits.cpu().numpy()}

    def blank_pixels(self, n: int) -> np.ndarray:
        s = self.inputs.image_size
        return np.zeros((n, 3, s, s), np.float32)
