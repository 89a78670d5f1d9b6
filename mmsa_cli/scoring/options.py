"""The options of scoring, each declared once (mmsa_cli/flags.py: option): `mmsa score`'s flags
are generated from these dataclasses and the library checks the same declarations
(check_config), so the command line and the Python API cannot drift apart.

    Columns      which input columns hold the text, the image, the id, and which to keep
    ScoreOptions everything about a job but its inputs, model and output (both engines)
    RayOptions   the Ray engine's own: the cluster, the actor pool, the image tasks

A new option is one line in one of them. Light: no pyarrow, no onnxruntime, no Ray.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..contract.images import MAX_IMAGE_BYTES
from ..errors import ConfigError, InputError
from ..flags import (DEVICE, ID_COL, IMAGE_COL, IMAGE_ROOT, NO_DECISION_RULE, OVERWRITE, TEXT_COL, check_config,
                     option)

AUTO = "auto"
# Who decodes and resizes JPEGs on a CUDA run (images/dali.py: gpu_image_path).
DECODERS = ("auto", "dali", "nvjpeg", "cpu")
# "fail" stops at an unreadable input file or row group (exit 2); "skip" skips it, lists it
# with its reason (summary, stats JSON, stderr) and counts its rows as skipped.
BAD_INPUT_CHOICES = ("fail", "skip")


def check_share(setting: float | str) -> float | str:
    """AUTO or a number in 0..1 (InputError otherwise)."""
    if isinstance(setting, str) and setting.strip().lower() == AUTO:
        return AUTO
    try:
        value = float(setting)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise InputError(f"gpu_decode_share must be 'auto' or a number from 0 to 1, not {setting!r}")
    return value


def check_decoder(requested: str) -> str:
    """One of DECODERS (ConfigError otherwise); torch-free, so any install checks the option."""
    value = str(requested).strip().lower()
    if value not in DECODERS:
        raise ConfigError(f"image_decoder must be one of {', '.join(DECODERS)}, not {requested!r}")
    return value


def parse_actors(value) -> tuple[int, int]:
    """MIN or MIN,MAX (1 <= MIN <= MAX): the scoring actor pool; MIN,MAX lets Ray grow it."""
    if isinstance(value, tuple):
        low, high = value
    else:
        parts = [p.strip() for p in str(value).split(",")]
        try:
            low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
        except ValueError:
            low, high = 0, -1
    if not 1 <= low <= high:
        raise ConfigError(f"{value!r}: expected MIN or MIN,MAX with 1 <= MIN <= MAX (e.g. 4 or 2,8)")
    return low, high


@dataclass(frozen=True)
class Columns:
    """Input column names. id=None: 'guid' when present, else the row position (column 'row')."""
    text: str = TEXT_COL()
    image: str = IMAGE_COL()
    id: str | None = ID_COL()
    keep: tuple[str, ...] = option((), "Input columns to copy to the output (comma-separated or repeated).",
                                   flag="--keep-columns")


@dataclass
class ScoreOptions:
    """Everything about a score_files() job but its inputs, model and output: `mmsa score`'s
    flags, one field each, with the same defaults."""
    columns: Columns = field(default_factory=Columns)
    image_root: str | Path | None = IMAGE_ROOT()
    allow_outside_root: bool = option(False, "Accept image paths outside --image-root ('..', absolute).")
    device: str = DEVICE()
    batch_size: int | None = option(None, "Rows per model call [default: 32 CPU, 512 CUDA].", min=1)
    row_group_size: int = option(8_192, "Rows per output row group; also the checkpoint interval for --resume.",
                                 min=1)
    workers: int | None = option(None, "Image worker processes (0: in-process) [default: CPUs-2 on CUDA, CPUs/4 on "
                                       "the CPU].", min=0)
    prefetch: int = option(4, "Batches prepared ahead of the model.", min=1)
    prep_threads: int | None = option(None, "Pixel-batch threads [default: 2 on CUDA, 1 on the CPU].", min=1,
                                      cli=False)
    gpu_decode_share: float | str = option(
        1.0, "CUDA: fraction of each batch's plain JPEGs decoded by nvJPEG on the GPU; the image workers decode and "
             "resize the rest on the CPU, in parallel (1: all on the GPU, 0: none; 1 was fastest on a 16-core H100 "
             "machine). Try lower values where the GPU is slow and cores are many. auto: balanced after every "
             "batch by the two paths' busy times. No effect on CPU runs.", parse=check_share, metavar="auto|FLOAT")
    image_decoder: str = option(
        "auto", "CUDA: who decodes and resizes the JPEGs. dali: NVIDIA DALI on the GPU's JPEG engines (pip install "
                "mmsa-tweets[gpu]); nvjpeg: torchvision's nvJPEG; cpu: the image workers, pixels uploaded; auto: dali "
                "when installed, else nvjpeg. No effect on CPU runs.", choices=DECODERS, parse=check_decoder)
    overwrite: bool = OVERWRITE(detail="or an interrupted run's parts")
    resume: bool = option(False, "Continue an interrupted run; starts fresh if there is none, does nothing if the "
                                 "output is complete.")
    progress: bool = option(True, "No progress bar or periodic progress lines.", flag="--no-progress")
    log_every_s: float = option(30.0, "Seconds between progress lines when stderr is not a terminal.", min=0.1,
                                flag="--log-every")
    max_image_bytes: int = option(MAX_IMAGE_BYTES, "Image files larger than this are error rows (too_large), "
                                                   "refused before they are read.", min=1)
    on_bad_input: str = option("fail", "An input file or row group that cannot be read: fail (exit 2), or skip it "
                                       "and list it with its reason (summary, --stats-json, stderr).",
                               choices=BAD_INPUT_CHOICES)
    decision_rule: bool = NO_DECISION_RULE(detail="the model's decision rule (the manifest's decision_offsets)")

    def check(self) -> None:
        """The declared ranges and choices (ConfigError, exit 2): the CLI's types check the
        same, and the API gets the same one-line errors."""
        check_config(self)
        check_config(self.columns)


@dataclass
class RayOptions:
    """`mmsa score --engine ray`: the cluster, the scoring actors and the image tasks."""
    address: str | None = option(None, "Ray engine: 'auto' or 'ray://HOST:10001' (or HOST:PORT) joins a cluster "
                                       "[default: start a local one].", flag="--ray-address")
    actors: tuple[int, int] = option((1, 1), "Ray engine: scoring actors, MIN or MIN,MAX (each loads the model "
                                             "once).", parse=parse_actors, metavar="MIN[,MAX]")
    gpus_per_actor: float = option(0.0, "Ray engine: GPUs per scoring actor; fractions share a GPU (0.5: two models "
                                        "per GPU). 0: the actors run on the CPU.", min=0, max=64)
    image_cpus: float = option(1.0, "Ray engine: CPUs per image-decoding task (the CPU stage before the actors).",
                               min=0.01)
    rows_per_call: int = option(1024, "Ray engine: rows per block and per actor call.", min=1,
                                flag="--ray-rows-per-call")
    rows_per_file: int = option(8192, "Rows per output part file (at most): the resume granularity; `mmsa score` "
                                      "takes --row-group-size.", min=1, cli=False)
    local_cpus: int | None = option(None, "Ray engine, local cluster only: logical CPUs it offers [default: the "
                                          "machine's].", min=1, flag="--ray-cpus")
    object_store_mb: int | None = option(None, "Ray engine, local cluster only: object store size [default: Ray's].",
                                         min=75, flag="--ray-object-store-mb")
