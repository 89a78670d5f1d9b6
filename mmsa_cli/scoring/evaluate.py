"""`mmsa evaluate` and `mmsa predict`: a run folder's PyTorch model through the scoring
pipeline (TorchModel in the table Scorer), so they tokenize, prepare images and treat bad rows
exactly as `mmsa score` does with the exported model, and their outputs have its columns."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from .. import LABELS
from ..data import Example
from ..errors import DataError
from .inputs import Columns


def table_image_root(data: str | Path, image_root: str | Path | None = None) -> Path | None:
    """The folder a table's image paths must stay inside (--image-root, else the table's
    folder); None for an MVSA folder, whose image names are checked guids."""
    if Path(data).is_dir():
        return None
    return Path(image_root) if image_root else Path(data).parent


def predict_examples(run, examples: list[Example], *, batch_size: int | None = None, device: str = "auto",
                     image_root: str | Path | None = None) -> pd.DataFrame:
    """One row per example, in order: guid and the output columns of `mmsa score` (label,
    prob_*, error, error_kind, predicted_from). With image_root, image paths resolving outside
    it (.., absolute, symlinks) are refused (outside_root), as score refuses them."""
    from .scorer import Scorer
    from .torch_model import TorchModel

    scorer = Scorer(TorchModel.from_run(run, device, batch_size=batch_size))
    table = pa.table({"guid": [e.guid for e in examples], "text": [e.text for e in examples],
                      "image": [str(Path(e.image_path).absolute()) if str(e.image_path) else None for e in examples]})
    root = Path(image_root).resolve() if image_root is not None else None
    scored = scorer.score_batch(table, Columns(id="guid"), image_root=root or "/", allow_outside_root=root is None)
    return scored.to_pandas()


def evaluate_examples(run, examples: list[Example], **kwargs) -> tuple[dict, pd.DataFrame]:
    """Metrics over the labelled rows that got a prediction (rows predicted from one modality
    count, as `mmsa score` would label them); rows with errors and rows without a prediction
    are counted in the metrics, never dropped silently."""
    from ..contract.metrics import classification_metrics

    labelled = [e for e in examples if e.label is not None]
    if not labelled:
        raise DataError("evaluation needs labelled rows; the data has none (use `mmsa predict` instead)")
    frame = predict_examples(run, labelled, **kwargs)
    predicted = frame["label"].notna().to_numpy()
    y_true = [e.label for e, ok in zip(labelled, predicted) if ok]
    y_pred = [LABELS.index(label) for label, ok in zip(frame["label"], predicted) if ok]
    metrics = classification_metrics(y_true, y_pred)
    metrics["rows_with_errors"] = int(frame["error"].notna().sum())
    metrics["rows_without_prediction"] = int((~predicted).sum())
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
