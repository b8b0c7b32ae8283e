"""What a pull (``-o``) or ``%hail push`` shows while data moves: in the cell and in the sidebar.

The transfer functions report ``on_chunk(name, done, total, transport=..., rows=...)`` (bytes
moved so far of ``total``; ``transport`` ``livy`` or ``staged``; ``rows`` when known). This turns
those reports into the cell's progress line (:class:`~.progress.Progress`: what moves, which way
and how, bytes done of total, rows, the rate over the last seconds and the time left; a plain
text line outside a kernel), redrawn and published at most every :data:`MIN_INTERVAL` seconds,
and into the record the sidebar's Running section reads (:mod:`hail_emr_lab.dashboard.transfers`).
:meth:`TransferProgress.finish` withdraws the record, also after a failure or Ctrl-C, and clears
the line (each variable's result line gives its totals and mean rate, :meth:`~TransferProgress.moved`)
or, when the transfer failed or was interrupted, leaves a record of how far it got.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from ..dashboard import transfers
from ..dashboard.payloads import Transfer
from .progress import Progress, format_elapsed
from .transfer_rate import RateMeter, human_bytes, human_rate

#: Seconds between two redraws of the line (and rewrites of the sidebar's record).
MIN_INTERVAL = 0.25
#: How each transport is named to the user.
TRANSPORTS = {"livy": "through Livy", "staged": "staged as Parquet"}


@dataclass
class _Moving:
    """One variable's transfer."""

    name: str
    meter: RateMeter
    transport: Optional[str] = None
    rows: Optional[int] = None
    finished: bool = field(default=False)


class TransferProgress:
    """The progress of one pull or push of one or more variables.

    ``direction`` is ``pull`` or ``push``; ``names`` the variables (shown while the cluster
    prepares them); ``session_name`` the Livy session's name (for the
    sidebar); ``runtime_dir`` where the record is published (default: Jupyter's runtime dir);
    ``clock`` seconds (tests pass their own). Pass :meth:`on_chunk` to the transfer function,
    then call :meth:`finish` with how it ended.
    """

    def __init__(self, direction: str, names: Optional[list[str]] = None, session_name: Optional[str] = None,
                 runtime_dir: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
                 bar: Optional[Progress] = None) -> None:
        if direction not in ("pull", "push"):
            raise ValueError(f"direction must be pull or push, got {direction!r}")
        self.direction = direction
        self._asked_at = clock()
        self.session_name = session_name
        self.runtime_dir = runtime_dir
        self._clock = clock
        self.bar = bar if bar is not None else Progress("hail")
        self.moving: dict[str, _Moving] = {}
        self.current: Optional[_Moving] = None
        self._drawn_at: Optional[float] = None
        self._published = False
        self._publish_failed = False
        if names:  # shown from the first second while the cluster prepares the data
            doing = "pulling {}: waiting for the cluster" if direction == "pull" else "pushing {}: encoding"
            self.bar.update(None, doing.format(", ".join(names)))

    # ------------------------------------------------------------------ reports

    def on_chunk(self, name: str, done: int, total: Optional[int], transport: Optional[str] = None,
                 rows: Optional[int] = None) -> None:
        """``done`` bytes of ``name`` moved so far, of ``total`` (None when unknown)."""
        item = self.moving.get(name)
        if item is not None and done < item.meter.done:
            item = None  # counted again from the start (a new attempt): a new meter, not an error
        if item is None:
            # Data that came whole with the cluster's answer moved while it was asked for.
            started = self._asked_at if done > 0 else None
            item = self.moving[name] = _Moving(name, RateMeter(clock=self._clock, started=started))
        item.meter.add(done, total)
        item.transport = transport or item.transport
        item.rows = rows if rows is not None else item.rows
        item.finished = total is not None and done >= total
        if item.finished:
            self._asked_at = self._clock()  # the next variable's data is asked for from now
        self.current = item
        now = self._clock()
        due = self._drawn_at is None or now - self._drawn_at >= MIN_INTERVAL or item.finished
        if due:
            self._drawn_at = now
            fraction = done / total if total else None
            self.bar.update(fraction, self.line(item))
            self._publish(item)

    # ------------------------------------------------------------------ text

    def _what(self, item: _Moving) -> str:
        verb = "pulling" if self.direction == "pull" else "pushing"
        how = TRANSPORTS.get(item.transport or "", "")
        return f"{verb} {item.name}" + (f" {how}" if how else "")

    def line(self, item: _Moving) -> str:
        """``pulling x through Livy: 12.3 MB of 50.0 MB · 200,000 rows · 8.1 MB/s · 5 s left``."""
        meter = item.meter
        amount = human_bytes(meter.done) + (f" of {human_bytes(meter.total)}" if meter.total is not None else "")
        parts = [amount]
        if item.rows is not None:
            parts.append(f"{item.rows:,} rows")
        parts.append(human_rate(meter.rate()))
        eta = meter.eta()
        if eta is not None and not item.finished:
            parts.append(f"{format_elapsed(math.ceil(eta))} left")  # rounded up: never "0 s left" while moving
        return f"{self._what(item)}: " + " · ".join(parts)

    def moved(self, name: str) -> Optional[str]:
        """``50.0 MB in 6.1 s, mean 8.2 MB/s`` for variable ``name`` (None if nothing was reported):
        the totals the variable's own result line ends with."""
        item = self.moving.get(name)
        if item is None:
            return None
        meter = item.meter
        return (f"{human_bytes(meter.done)} in {format_elapsed(meter.elapsed(), tenths=True)}, "
                f"mean {human_rate(meter.mean_rate())}")

    def summary(self) -> str:
        """``pulled x through Livy: 50.0 MB, 2,000,000 rows in 6.1 s (mean 8.2 MB/s)``, one per variable."""
        verb = "pulled" if self.direction == "pull" else "pushed"
        out = []
        for item in self.moving.values():
            meter = item.meter
            how = TRANSPORTS.get(item.transport or "", "")
            rows = f", {item.rows:,} rows" if item.rows is not None else ""
            out.append(f"{verb} {item.name}" + (f" {how}" if how else "")
                       + f": {human_bytes(meter.done)}{rows} in {format_elapsed(meter.elapsed(), tenths=True)}"
                       + f" (mean {human_rate(meter.mean_rate())})")
        return "; ".join(out)

    # ------------------------------------------------------------------ sidebar

    def record(self, item: _Moving) -> Transfer:
        """The sidebar's record of ``item`` (see :class:`~hail_emr_lab.dashboard.payloads.Transfer`)."""
        from ..session_names import kernel_notebook

        meter = item.meter
        return Transfer(
            kernel_pid=os.getpid(), notebook=kernel_notebook(), session_name=self.session_name,
            direction=self.direction, name=item.name, transport=item.transport, done_bytes=meter.done,
            total_bytes=meter.total, rows=item.rows, rate=meter.rate(), eta=meter.eta(),
            elapsed=round(meter.elapsed(), 3),
        )

    def _publish(self, item: _Moving) -> None:
        if self._publish_failed:
            return
        try:
            transfers.publish(self.record(item), self.runtime_dir)
            self._published = True
        except OSError as exc:  # the cell goes on; the sidebar just cannot show this transfer
            self._publish_failed = True
            warnings.warn(f"hail: the sidebar cannot show this transfer ({exc})", stacklevel=2)

    # ------------------------------------------------------------------ end

    def finish(self, outcome: str) -> None:
        """End the transfer: ``outcome`` ``ok``, ``error`` or ``interrupted``. A transfer that
        ended well clears its line (each variable's result line then gives its totals and mean
        rate, see :meth:`moved`); one that did not leaves a record of how far it got. The
        sidebar's record is withdrawn."""
        try:
            if self._published:
                transfers.withdraw(self.runtime_dir)
        finally:
            if outcome == "ok" or not self.moving:
                self.bar.close()
            else:
                what = "failed" if outcome == "error" else "was interrupted"
                self.bar.finish(f"{self.direction} {what}; so far {self.summary()}",
                                "error" if outcome == "error" else "cancelled")


@contextmanager
def finishing(moving: TransferProgress) -> Iterator[TransferProgress]:
    """Run a transfer and :meth:`~TransferProgress.finish` it however it ends (Ctrl-C, a
    ``StatementInterrupted``, is ``interrupted``; any other exception ``error``)."""
    try:
        yield moving
    except KeyboardInterrupt:
        moving.finish("interrupted")
        raise
    except BaseException:
        moving.finish("error")
        raise
    moving.finish("ok")
