"""The rate and time left of a transfer, and how they are written.

Plain arithmetic on ``(time, bytes done)`` samples, no I/O: the rate is the bytes moved over
the last :data:`WINDOW` seconds (so a transfer that speeds up or stalls shows it within seconds,
unlike a mean since the start), the time left is what remains at that rate, and the mean rate
since the start is what the final record gives. Units are bytes, seconds and decimal (SI)
multiples: 1 MB = 1,000,000 bytes, as the rest of the notebook's messages count them.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional

#: Seconds of recent samples the rate is taken over.
WINDOW = 5.0


class RateMeter:
    """Bytes done over time for one transfer; call :meth:`add` with the running total.

    ``clock`` gives seconds (``time.monotonic`` by default; tests pass their own). The meter
    starts at ``(started, 0)``, by default when made.
    """

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 started: Optional[float] = None) -> None:
        if window <= 0:
            raise ValueError(f"the rate window must be positive seconds, got {window!r}")
        self.window = window
        self._clock = clock
        self.started = clock() if started is None else started
        self.done = 0
        self.total: Optional[int] = None
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def add(self, done: int, total: Optional[int] = None) -> None:
        """Record ``done`` bytes moved so far (of ``total``, when known).

        Raises ``ValueError`` for a count that goes backwards (a caller mixing two transfers).
        """
        if done < self.done:
            raise ValueError(f"bytes done went back from {self.done} to {done}")
        now = self._clock()
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        self._samples.append((now, self.done))
        # Keep one sample at or before the window's start as the anchor, drop older ones.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self) -> Optional[float]:
        """Bytes per second over the last :attr:`window` seconds (up to now, so a stall lowers it),
        or None before any time has passed."""
        now = self._clock()
        anchor_t, anchor_done = self._samples[0]
        for t, done in self._samples:  # the newest sample at or before the window's start
            if t > now - self.window:
                break
            anchor_t, anchor_done = t, done
        span = now - anchor_t
        return (self.done - anchor_done) / span if span > 0 else None

    def eta(self) -> Optional[float]:
        """Seconds left at the current :meth:`rate`; None while the total or the rate is unknown
        or the rate is zero, 0.0 when done."""
        if self.total is None:
            return None
        left = max(0, self.total - self.done)
        if left == 0:
            return 0.0
        rate = self.rate()
        return left / rate if rate else None

    def elapsed(self) -> float:
        """Seconds since the meter was made."""
        return self._clock() - self.started

    def mean_rate(self) -> Optional[float]:
        """Bytes per second since the start (the final record's figure); None before any time passed."""
        span = self.elapsed()
        return self.done / span if span > 0 else None


def human_bytes(size: float) -> str:
    """``512 B``, ``12.3 kB``, ``120.3 MB``, ``1.20 GB`` (decimal multiples)."""
    if size < 1000:
        return f"{int(size)} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12)):
        if size < scale * 1000 or unit == "TB":
            value = size / scale
            return f"{value:.2f} {unit}" if unit in ("GB", "TB") and value < 10 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: Optional[float]) -> str:
    """``8.1 MB/s`` (``… MB/s`` when unknown)."""
    if bytes_per_second is None:
        return "… MB/s"
    return f"{bytes_per_second / 1e6:.1f} MB/s" if bytes_per_second >= 1e5 else human_bytes(bytes_per_second) + "/s"
