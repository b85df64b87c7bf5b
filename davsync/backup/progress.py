"""Progress of a backup or restore: a tqdm bar on a terminal, plain lines otherwise.

Workers call `advance` from several threads; everything here is behind one lock.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 5.0,
                 enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self.files_total = 0
        self.files_done = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self._start = time.monotonic()
        self._last_line = 0.0

    def start(self, files: int, nbytes: int) -> None:
        self.files_total, self.bytes_total = files, nbytes
        self._start = time.monotonic()
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm  # only on a terminal: importing it costs 40 ms per run

            self._bar = tqdm(total=nbytes, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=self.label, file=self.stream, dynamic_ncols=True)
            self._bar.set_postfix_str(f"0/{files} files")

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_done += nbytes
            if self._bar is not None:
                self._bar.update(nbytes)
            else:
                self._maybe_line()

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.files_done}/{self.files_total} files",
                                          refresh=False)
            else:
                self._maybe_line()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = self.bytes_done / elapsed
        left = self.bytes_total - self.bytes_done
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and left > 0 else ""
        return (f"{self.label}: {self.files_done}/{self.files_total} files, "
                f"{human_bytes(self.bytes_done)}/{human_bytes(self.bytes_total)}, "
                f"{human_bytes(rate)}/s{eta}")

    def _maybe_line(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last_line >= self.interval:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.files_done}/{self.files_total} files")
                self._bar.close()
                self._bar = None
            elif self.enabled and self.files_total:
                print(self.line(), file=self.stream, flush=True)
