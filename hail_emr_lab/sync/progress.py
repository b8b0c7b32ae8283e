"""A one-line progress bar on a terminal; silent under cron (``--quiet`` or no TTY)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Thread-safe counters rendered at most 10 times a second to ``stream``."""

    def __init__(self, action: str, files: int, nbytes: int, enabled: bool,
                 stream: TextIO | None = None) -> None:
        self.action = action
        self.total_files = files
        self.total_bytes = nbytes
        self.enabled = enabled and files > 0
        self.stream = stream or sys.stderr
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = 0.0

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n
        self._render()

    def file_done(self) -> None:
        with self._lock:
            self.files += 1
        self._render()

    def _render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-6)
        frac = self.bytes / self.total_bytes if self.total_bytes else self.files / max(self.total_files, 1)
        bar = "#" * int(24 * min(frac, 1.0))
        self.stream.write(
            f"\r{self.action} [{bar:<24}] {self.files}/{self.total_files} files "
            f"{self.bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB {self.bytes / 1e6 / elapsed:.1f} MB/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._render(force=True)
            self.stream.write("\n")
            self.stream.flush()


def want_progress(quiet: bool, stream: TextIO | None = None) -> bool:
    """Show a progress bar only on an interactive terminal and when not ``--quiet``."""
    stream = stream or sys.stderr
    return not quiet and hasattr(stream, "isatty") and stream.isatty()
