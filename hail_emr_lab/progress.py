"""A progress display updated in place: an ipywidgets bar in a kernel, text elsewhere.

The text form uses an IPython display handle (``update``), so the line is rewritten rather
than appended; outside IPython it writes a carriage-return line to stderr.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, Optional


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def text_bar(fraction: Optional[float], label: str, width: int = 30) -> str:
    """``[#######.......]  42%  label`` (no percentage when the fraction is unknown)."""
    if fraction is None:
        return label
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%  {label}"


class Progress:
    """Shows once :meth:`update` is first called; ``widgets=None`` picks the best form."""

    def __init__(self, description: str = "", widgets: Optional[bool] = None):
        self.description = description
        self.widgets = _in_kernel() if widgets is None else widgets
        self.started = time.monotonic()
        self._bar: Any = None
        self._label: Any = None
        self._handle: Any = None
        self._shown = False
        self._last_text = ""
        self._note: Optional[str] = None  # e.g. "Livy answered 502, retrying (3)", see note()
        self._last_update: tuple[Optional[float], str] = (None, "")

    def _show(self) -> None:
        self._shown = True
        if self.widgets:
            try:
                import ipywidgets as w
                from IPython.display import display

                self._bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description=self.description,
                                            layout=w.Layout(width="50%"))
                self._label = w.Label(value="")
                self._handle = w.HBox([self._bar, self._label])
                display(self._handle)
                return
            except ImportError:
                self.widgets = False
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self._handle = display({"text/plain": ""}, raw=True, display_id=uuid.uuid4().hex)
        except ImportError:
            self._handle = None

    def update(self, fraction: Optional[float], label: str = "") -> None:
        """Show ``fraction`` (0..1, or None if unknown) with ``label``."""
        if not self._shown:
            self._show()
        self._last_update = (fraction, label)
        if self._note:
            label = f"{label} | {self._note}" if label else self._note
        elapsed = time.monotonic() - self.started
        text = f"{label}  ({elapsed:.0f} s)" if label else f"{elapsed:.0f} s"
        if self._bar is not None:
            self._bar.value = 0.0 if fraction is None else min(1.0, max(0.0, fraction))
            self._label.value = text
            return
        line = text_bar(fraction, text)
        if line == self._last_text:
            return
        self._last_text = line
        if self._handle is not None:
            self._handle.update({"text/plain": line}, raw=True)
        else:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()

    def note(self, text: Optional[str]) -> None:
        """Show ``text`` after the label until cleared with None (e.g. why nothing moves)."""
        if text == self._note:
            return
        self._note = text
        if text or self._shown:
            self.update(*self._last_update)

    def close(self, keep: bool = False) -> None:
        """Remove the display (or leave it with its last state when ``keep``)."""
        if not self._shown:
            return
        if self._bar is not None:
            if not keep:
                self._handle.close()
        elif self._handle is not None:
            if not keep:
                self._handle.update({"text/plain": ""}, raw=True)
        else:
            sys.stderr.write("\n")
        self._shown = keep
