"""`mmsa evaluate` and `mmsa predict`: a trained run folder applied to any data (PyTorch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import LABELS
from .training.batches import ImageDataset, image_loader, pad_tokens, tokenize
from .data import Example, ImageLoadError, resolve_image_path
from .errors import DataError
from .progress import progress
from .training.metrics import classification_metrics
from .runs import Run
from .contract.device import torch_device as pick_device

PROB_COLUMNS = [f"prob_{name}" for name in LABELS]


def table_image_root(data: str | Path, image_root: str | Path | None = None) -> Path | None:
    """The folder a table's image paths must stay inside (--image-root, else the table's
    folder); None for an MVSA folder, whose image names are checked guids."""
    if Path(data).is_dir():
        return None
    return Path(image_root) if image_root else Path(data).parent


class _RootedImages(ImageDataset):
    """Rows whose image path escapes the image root are refused without being opened."""

    def __init__(self, paths, size, mean, std, root: Path):
        super().__init__(paths, size, mean, std)
        self.refused: dict[int, str] = {}
        for i, path in enumerate(self.paths):
            if path == Path():  # no image path: fails on load like any missing image
                continue
            try:
                resolve_image_path(str(Path(path).absolute()), root)
            except ImageLoadError as exc:
                self.refused[i] = f"{exc.kind}: {exc}"

    def __getitem__(self, i: int):
        if i in self.refused:
            return i, np.zeros((3, self.size, self.size), np.float32), self.refused[i]
        return super().__getitem__(i)


@torch.no_grad()
def predict_examples(run: Run, examples: list[Example], *, batch_size: int = 64, num_workers: int = 0,
                     device: str = "auto", image_root: str | Path | None = None) -> pd.DataFrame:
    """One row per example, in order: guid, label, prob_*, error (None when fine).

    A row whose image cannot be used is still predicted from its text with a blank image
    (error says so); for an image-only model its prediction is left empty. With image_root,
    image paths resolving outside it (.., absolute, symlinks) are refused (outside_root).
    """
    dev = pick_device(device)
    model = run.model.to(dev).eval()
    tokens = tokenize(model.text_encoder.tokenizer, [e.text for e in examples], run.model_cfg.max_length,
                      normalization=run.model_cfg.text_normalization)
    pad_id = model.text_encoder.tokenizer.pad_token_id
    paths = [e.image_path for e in examples]
    images = (ImageDataset(paths, run.image_size, run.mean, run.std) if image_root is None
              else _RootedImages(paths, run.image_size, run.mean, run.std, Path(image_root)))
    probs = np.full((len(examples), len(LABELS)), np.nan, dtype=np.float32)
    errors: list[str | None] = [None] * len(examples)
    for idx, pixels, errs in progress(image_loader(images, batch_size, num_workers), desc="predicting", unit="batch"):
        ids, mask = pad_tokens([tokens[i] for i in idx.tolist()], pad_id)
        p = model(ids.to(dev), mask.to(dev), pixels.to(dev)).float().softmax(-1).cpu().numpy()
        for row, i in enumerate(idx.tolist()):
            if errs[row]:
                errors[i] = errs[row] + ("" if model.uses_text else " (no prediction: the model is image-only)")
                if not model.uses_text:
                    continue
                errors[i] += " (predicted from the text with a blank image)" if model.uses_image else ""
            probs[i] = p[row]
    labels = [LABELS[int(np.argmax(p))] if not np.isnan(p).any() else None for p in probs]
    frame = pd.DataFrame({"guid": [e.guid for e in examples], "label": labels})
    for j, col in enumerate(PROB_COLUMNS):
        frame[col] = probs[:, j]
    frame["error"] = errors
    return frame


def evaluate_examples(run: Run, examples: list[Example], **kwargs) -> tuple[dict, pd.DataFrame]:
    """Metrics over labelled rows whose image could be used; the others are counted."""
    labelled = [e for e in examples if e.label is not None]
    if not labelled:
        raise DataError("evaluation needs labelled rows; the data has none (use `mmsa predict` instead)")
    frame = predict_examples(run, labelled, **kwargs)
    ok = frame["error"].isna().to_numpy()
    y_true = [e.label for e, good in zip(labelled, ok) if good]
    y_pred = [LABELS.index(lbl) for lbl, good in zip(frame["label"], ok) if good]
    metrics = classification_metrics(y_true, y_pred)
    metrics["rows_with_errors"] = int((~ok).sum())
    return metrics, frame


def write_predictions(frame: pd.DataFrame, path: Path) -> None:
    """CSV or Parquet by extension, written to a temporary name and renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False, float_format="%.6f")
    else:
        raise DataError(f"cannot write predictions to '{path}': use a .csv or .parquet file name")
    tmp.replace(path)
