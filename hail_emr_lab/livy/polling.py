"""Polling Livy: the intervals between polls, and riding out a Livy that does not answer.

Every wait that polls Livy (a session starting, a statement running, a lost submit being
reconciled) rides out transient failures the same way, here: 502/503/504 from a gateway,
connection resets and timeouts (``errors.transient_reason``) are retried with backoff, each
reported to an ``on_retry`` callback, until the caller's ``give_up`` says the outage lasted
too long.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Optional, TypeVar

from .errors import LivyError, transient_reason

T = TypeVar("T")

FIRST_POLL = 0.002
POLL_GROWTH = 1.2
MAX_POLL = 0.5
#: Backoff between attempts while Livy does not answer: first, factor, cap (seconds).
OUTAGE_BACKOFF = (0.5, 2.0, 5.0)

#: ``on_retry(failures, error, seconds)``: a poll failed transiently (``failures`` in a row, for
#: ``seconds`` so far); called with ``(0, None, 0.0)`` once Livy answers again.
RetryCallback = Callable[[int, Optional[LivyError], float], None]


def poll_intervals(first: float = FIRST_POLL, growth: float = POLL_GROWTH, cap: float = MAX_POLL) -> Iterator[float]:
    """Sleep intervals in seconds: ``first``, then growing by ``growth`` up to ``cap``, forever."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * growth)


class Outage:
    """Consecutive transient failures: how many, why, since when, and the pause before the next try."""

    def __init__(self, started: float, backoff: tuple[float, float, float] = OUTAGE_BACKOFF) -> None:
        self.started = started  # when the first failed attempt was sent (time.monotonic())
        self.failures = 0
        self.reason = ""  # the last failure, as ``transient_reason`` words it ("answered 502" ...)
        self._delays = poll_intervals(*backoff)

    def failed(self, reason: str) -> float:
        """Record one failure; returns the seconds to wait before the next attempt."""
        self.failures += 1
        self.reason = reason
        return next(self._delays)

    @property
    def seconds(self) -> float:
        """Seconds since the first failed attempt."""
        return time.monotonic() - self.started


GiveUp = Callable[[Outage, LivyError], Optional[Exception]]


def give_up_after(patience: float, error: Callable[[Outage, LivyError], Exception]) -> GiveUp:
    """A ``give_up`` for :func:`ride_out`: ``error(outage, last_error)`` once the outage lasted
    longer than ``patience`` seconds, else None (ask again)."""
    return lambda outage, exc: error(outage, exc) if outage.seconds > patience else None


def ride_out(
    fetch: Callable[[], T],
    give_up: GiveUp,
    on_retry: Optional[RetryCallback] = None,
    backoff: tuple[float, float, float] = OUTAGE_BACKOFF,
) -> T:
    """``fetch()``'s answer, asking again while Livy fails transiently.

    After each transient failure ``on_retry`` is told, then ``give_up(outage, error)`` is asked:
    an exception it returns is raised (``from None``), else the next attempt follows after the
    ``backoff`` pause (first, factor, cap in seconds). Any other error from ``fetch`` (e.g.
    ``LivyNotFound``) is raised at once. ``on_retry(0, None, 0.0)`` marks Livy answering again.
    """
    outage: Optional[Outage] = None
    while True:
        attempt = time.monotonic()
        try:
            answer = fetch()
        except LivyError as exc:
            reason = transient_reason(exc)
            if reason is None:
                raise
            outage = outage or Outage(attempt, backoff)
            pause = outage.failed(reason)
            if on_retry:
                on_retry(outage.failures, exc, outage.seconds)
            stop = give_up(outage, exc)
            if stop is not None:
                raise stop from None
            time.sleep(pause)
            continue
        if outage is not None and on_retry:
            on_retry(0, None, 0.0)
        return answer
