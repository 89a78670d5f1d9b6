"""Progress for long work: a tqdm bar on a terminal, plain periodic log lines otherwise
(cron, Airflow and CI logs must not fill with carriage-return bar redraws)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class LogProgress:
    """The subset of tqdm's interface mmsa uses, printing one line every `every_s` seconds."""

    def __init__(self, iterable: Iterable[T], desc: str, total: int | None, unit: str, every_s: float):
        self.iterable, self.desc, self.unit, self.every_s = iterable, desc, unit, every_s
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix, self.disable = 0, "", True

    def set_postfix(self, **kwargs) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def _line(self, start: float) -> str:
        elapsed = time.perf_counter() - start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        eta = f", ETA {(self.total - self.n) / rate:.0f}s" if self.total and rate > 0 else ""
        return f"{self.desc}: {done} {self.unit} ({rate:.3g} {self.unit}/s{eta})" + (f" {self.postfix}" if self.postfix else "")

    def __iter__(self) -> Iterator[T]:
        start = last = time.perf_counter()
        printed = 0  # the count the last line showed
        for item in self.iterable:
            yield item
            self.n += 1
            if time.perf_counter() - last >= self.every_s:
                last, printed = time.perf_counter(), self.n
                print(self._line(start), file=sys.stderr, flush=True)
        # The closing line, unless the last periodic one already showed the end (no repeated line).
        if self.n and self.n != printed and time.perf_counter() - start >= self.every_s:
            print(self._line(start) + " done", file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it",
             leave: bool = True, every_s: float = 30.0):
    """every_s=math.inf: no lines in logs at all (the caller prints its own, e.g. one per epoch)."""
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave)
    return LogProgress(iterable, desc, total, unit, every_s)
