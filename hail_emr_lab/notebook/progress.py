"""A progress line updated in place, from the first second, that leaves a plain record behind.

In a kernel the line is one display output (``text/html`` with a ``text/plain`` twin) rewritten
through its display id (Jupyter messaging: ``update_display_data``); outside a kernel it is a
carriage-return line on stderr. No ipywidgets: a saved notebook holds only the last text, so it
reads the same after reopening, on GitHub and in nbviewer (a widget would show "Error
displaying widget: model not found" once its kernel is gone).

A ticker thread redraws the line every :data:`TICK` seconds, so the elapsed time moves even
while the work reports nothing (a statement sitting at 0 %); :meth:`Progress.finish` stops it
and replaces the line with the final record.
"""

from __future__ import annotations

import html
import sys
import threading
import time
import uuid
from typing import Any, Callable, Optional

#: Seconds between redraws of the elapsed time.
TICK = 1.0
#: Work shorter than this shows no line at all (a trivial cell stays quiet).
SHOW_AFTER = 0.5


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def text_bar(fraction: Optional[float], label: str, width: int = 30) -> str:
    """``[#######.......]  42%  label`` (no bar when the fraction is unknown)."""
    if fraction is None:
        return label
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%  {label}"


def format_elapsed(seconds: float, tenths: bool = False) -> str:
    """``7 s`` (``7.3 s`` with ``tenths``), ``2 min 05 s``, ``1 h 02 min``."""
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if tenths else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def html_line(fraction: Optional[float], text: str, detail: str = "", state: str = "running") -> str:
    """The HTML form of a progress line: a bar (when the fraction is known), the text, the detail."""
    color = {"ok": "#2e7d32", "error": "#c62828", "cancelled": "#8d6e63"}.get(state, "#1976d2")
    bar = ""
    if fraction is not None:
        pct = round(min(1.0, max(0.0, fraction)) * 100)
        bar = (
            '<span style="display:inline-block; vertical-align:middle; width:160px; height:10px; '
            'background:#ddd; border-radius:3px; margin-right:6px;">'
            f'<span style="display:block; height:100%; width:{pct}%; background:{color}; '
            f'border-radius:3px;"></span></span><b>{pct}%</b> '
        )
    more = (
        f'<div style="color: var(--jp-ui-font-color2, #666); margin-left:2px;">{html.escape(detail)}</div>'
        if detail
        else ""
    )
    return (
        f'<div class="hail-emr-lab-progress" data-state="{html.escape(state)}" '
        f'style="font-family: var(--jp-code-font-family, monospace); font-size: 90%;">'
        f"{bar}<span>{html.escape(text)}</span>{more}</div>"
    )


class Progress:
    """One progress line: call :meth:`start` (or just :meth:`update`), then :meth:`finish` or :meth:`close`.

    ``detail_source`` (optional) is called every ``detail_every`` seconds in a thread of its own
    and returns a second line (e.g. the Spark job and stage) or None; its errors blank the line.
    """

    def __init__(
        self,
        description: str = "",
        detail_source: Optional[Callable[[], Optional[str]]] = None,
        detail_every: float = 2.0,
        show_after: float = SHOW_AFTER,
        tick: float = TICK,
    ):
        self.description = description
        self.started = time.monotonic()
        self.fraction: Optional[float] = None
        self.label = ""
        self.detail = ""
        self._note = ""  # e.g. "Livy answered 502, retrying (3)", see note()
        self.kernel = _in_kernel()
        self._detail_source = detail_source
        self._detail_every = detail_every
        self._show_after = show_after
        self._tick = tick
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handle: Any = None
        self._shown = False
        self._finished = False
        self._last: Any = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Progress:
        """Start the clock: the line appears after ``show_after`` seconds and then ticks."""
        if not self._threads:
            self._spawn(self._tick_loop, "hail-progress-tick")
            if self._detail_source is not None:
                self._spawn(self._detail_loop, "hail-progress-detail")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def update(self, fraction: Optional[float], label: str = "") -> None:
        """Set the fraction done (0..1, None if unknown) and the label; redraw if shown."""
        with self._lock:
            self.fraction = fraction
            self.label = label
        self.start()
        if time.monotonic() - self.started >= self._show_after:
            self._render()

    def note(self, text: Optional[str]) -> None:
        """Show ``text`` after the label until cleared with None or '' (e.g. why nothing moves)."""
        with self._lock:
            if (text or "") == self._note:
                return
            self._note = text or ""
        if self._shown:
            self._render()

    def finish(self, record: str, state: str = "ok", keep: bool = True) -> None:
        """Stop ticking and replace the line with ``record`` (``state``: ok, error or cancelled).

        Work that finished before the line appeared leaves nothing; ``keep=False`` clears a
        shown line instead of leaving the record.
        """
        self._stop.set()
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if not self._shown:
                return
            if not keep:
                self._write({"text/plain": ""}, "")
                return
            fraction = 1.0 if state == "ok" and self.fraction is not None else self.fraction
            record = f"{self.description}: {record}" if self.description else record
            # The detail line is a live view (e.g. "Spark job 6 running: 0/2 tasks"): kept in a
            # record it would describe work that is over as still running.
            plain = text_bar(fraction, record)
            self._write({"text/plain": plain, "text/html": html_line(fraction, record, "", state)}, plain,
                        final=True)

    def close(self, keep: bool = False) -> None:
        """Stop ticking; clear the line (or leave its last state when ``keep``)."""
        if keep:
            self._stop.set()
            with self._lock:
                self._finished = True
                if self._shown and not self.kernel:
                    sys.stderr.write("\n")
            return
        self.finish("", keep=False)

    @property
    def elapsed(self) -> float:
        """Seconds since the progress was created."""
        return time.monotonic() - self.started

    # ------------------------------------------------------------------ drawing

    def _text(self) -> str:
        parts = [p for p in (self.description, self.label) if p]
        text = ": ".join(parts) if parts else ""
        text = f"{text}, {format_elapsed(self.elapsed)}" if text else format_elapsed(self.elapsed)
        return f"{text} | {self._note}" if self._note else text

    def _render(self) -> None:
        with self._lock:
            if self._finished:
                return
            text = self._text()
            plain = text_bar(self.fraction, text) + (f"\n  {self.detail}" if self.detail else "")
            self._write({"text/plain": plain, "text/html": html_line(self.fraction, text, self.detail)}, plain)

    def _write(self, bundle: dict[str, str], plain: str, final: bool = False) -> None:
        if bundle == self._last:
            return
        self._last = bundle
        if not self.kernel:
            if plain or self._shown:
                sys.stderr.write("\r" + plain.replace("\n", " ") + ("\n" if final else ""))
                sys.stderr.flush()
            self._shown = True
            return
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=uuid.uuid4().hex)
        else:
            self._handle.update(bundle, raw=True)
        self._shown = True

    def _tick_loop(self) -> None:
        if self._stop.wait(max(0.0, self._show_after - self.elapsed)):
            return
        while not self._stop.is_set():
            self._render()
            self._stop.wait(self._tick)

    def _detail_loop(self) -> None:
        while not self._stop.wait(self._detail_every):
            try:
                text = self._detail_source() or ""  # type: ignore[misc]
            except Exception as exc:  # a detail that cannot be fetched must not stop the work
                text = f"(detail unavailable: {type(exc).__name__})"
            with self._lock:
                changed = text != self.detail
                self.detail = text
            if changed and self._shown:
                self._render()
