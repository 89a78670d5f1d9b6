"""Progress while scoring and the final summary (printed, and written by --stats-json)."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TextIO

# Busy seconds per stage. Stages overlap, so they can add up to more than the wall time;
# decode_cpu is summed over worker processes. infer_waiting is the time the model waited
# for inputs: near zero means the model is the bottleneck, large means preprocessing is.
STAGES = ("read", "tokenize", "decode_cpu", "decode_gpu", "infer", "write", "infer_waiting")


@dataclass
class ScoreSummary:
    """What a score_files() job did: the lines `mmsa score` prints (lines()) and the JSON of
    --stats-json (to_dict())."""
    status: str                              # "done" or "already_complete" ("failed", "interrupted": cli.py)
    output: str
    rows: int                                # rows in the output file
    rows_this_run: int                       # scored by this process (less after --resume)
    resumed_from_row: int
    rows_with_errors: int
    errors_by_kind: dict[str, int]
    rows_without_prediction: int
    seconds: float
    rows_per_second: float
    stage_seconds: dict[str, float]
    device: str
    provider: str
    model: dict
    workers: int = 0
    batch_size: int = 0
    warnings: list[str] = field(default_factory=list)
    # how images were prepared: nvjpeg (decoded on the GPU), cpu (decoded + resized by the CPU
    # workers), nvjpeg_rejected (refused by nvJPEG, then CPU-prepared: also in cpu), and the
    # GPU decode share used (None when nothing is decoded on the GPU); empty without images
    images: dict = field(default_factory=dict)
    # --on-bad-input skip: each input file or row group left out, {"file", "row_group" (None:
    # the whole file), "rows" (None: unknown, the footer is unreadable), "reason"}
    skipped_inputs: list[dict] = field(default_factory=list)
    rows_skipped: int = 0
    # seconds this call spent loading the model and warming it up (part of `seconds`; 0 when
    # the caller passed a loaded scorer)
    model_load_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def lines(self) -> list[str]:
        if self.status == "already_complete":
            return [f"{self.output} is already complete for this job ({self.rows} rows): nothing to do "
                    f"(use --overwrite to score again)"]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_kind.items())) or "none"
        stages = "  ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        out = [f"scored {self.rows_this_run} rows in {self.seconds:.1f}s ({self.rows_per_second:,.0f} rows/s) on "
               f"{self.provider} -> {self.output} ({self.rows} rows"
               + (f", resumed at row {self.resumed_from_row}" if self.resumed_from_row else "") + ")"
               + (f"; model load + warm-up {self.model_load_seconds:.1f}s of it" if self.model_load_seconds else ""),
               f"rows with errors: {self.rows_with_errors} ({kinds}); without prediction: {self.rows_without_prediction}",
               f"stage busy time: {stages}"]
        if self.images:
            gpu = ("DALI", "dali") if "dali" in self.images else ("nvJPEG", "nvjpeg")
            line = f"images: {self.images.get(gpu[1], 0):,} decoded by {gpu[0]}, {self.images.get('cpu', 0):,} on the CPU"
            if self.images.get("gpu_decode_share") is not None:
                line += (f" (gpu decode share {self.images['gpu_decode_share']}: mean {self.images['share_mean']:.2f},"
                         f" last {self.images['share_last']:.2f})")
            out.append(line)
        if self.skipped_inputs:
            out.append(f"skipped input: {len(self.skipped_inputs)} unreadable file(s) or row group(s), "
                       f"{self.rows_skipped} rows (--on-bad-input skip)")
        out += [f"WARNING: {w}" for w in self.warnings]
        return out

    def skipped_lines(self) -> list[str]:
        """One line per skipped input file or row group, with its reason (for stderr)."""
        lines = []
        for s in self.skipped_inputs:
            where = s["file"] if s["row_group"] is None else f"{s['file']} row group {s['row_group']}"
            rows = "rows unknown" if s["rows"] is None else f"{s['rows']} rows"
            lines.append(f"skipped unreadable input {where} ({rows}): {s['reason']}")
        return lines


class RowProgress:
    """tqdm bar on a terminal; otherwise one plain line every `every_s` seconds (cron logs)."""

    def __init__(self, total: int, initial: int = 0, *, enabled: bool | None = None, every_s: float = 30.0,
                 stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total, self.done, self.errors = total, initial, 0
        self.every_s, self.start = every_s, time.perf_counter()
        self.last = self.start
        self._initial = initial
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = True if enabled is None else enabled
        self.bar = None
        if self.enabled and tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="rows", unit_scale=True, desc="mmsa score",
                            file=self.stream, dynamic_ncols=True)

    def update(self, rows: int, errors: int = 0) -> None:
        self.done += rows
        self.errors += errors
        if self.bar is not None:
            self.bar.update(rows)
            if self.errors:
                self.bar.set_postfix(errors=self.errors, refresh=False)
        elif self.enabled and time.perf_counter() - self.last >= self.every_s:
            self.last = time.perf_counter()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        eta = f", ETA {_duration((self.total - self.done) / rate)}" if rate > 0 and self.total else ""
        return (f"mmsa score: {self.done}/{self.total} rows{pct}, {rate:,.0f} rows/s{eta}, "
                f"{self.errors} rows with errors")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done > self._initial:
            print(self.line() + " - done", file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
