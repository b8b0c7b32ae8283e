"""How a failed ``%hail`` command or cell is shown: one paragraph, no local traceback.

The errors still fail the cell (so "Run All" stops); IPython shows the lines of
``_render_traceback_`` instead of a traceback.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ...livy import StatementInterrupted


class HailMagicError(Exception):
    """A failed ``%hail`` command or cell, shown as its message only (no local traceback)."""

    def __init__(self, message: str, lines: Optional[list[str]] = None):
        super().__init__(message)
        self.lines = lines if lines is not None else [message]

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return ["\x1b[0;31m" + line + "\x1b[0m" if i == 0 else line for i, line in enumerate(self.lines)]


class HailInterrupted(KeyboardInterrupt):
    """Ctrl-C during a ``%hail`` command: shown as its message only, still a KeyboardInterrupt."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0])
        self.lines = lines

    _render_traceback_ = HailMagicError._render_traceback_


def interrupted(exc: BaseException, what: str = "the cell") -> HailInterrupted:
    """The one message shown after Ctrl-C: was the statement cancelled, or does it go on?"""
    if not isinstance(exc, StatementInterrupted):
        return HailInterrupted([f"Interrupted. If {what} had already reached the cluster it may still run there: "
                                "%hail cancel stops it."])
    where = f"statement {exc.statement_id} of session {exc.session_id}"
    if exc.cancelled:
        return HailInterrupted([f"Interrupted: {what} was cancelled on the cluster ({where}; remote variables "
                                "are kept)."])
    return HailInterrupted([
        f"Interrupted, but {what} continues on the cluster ({where}): the cancel request failed.",
        f"Cancel request: {exc.problem}",
        "%hail cancel stops it once Livy answers; otherwise the next cell runs after it.",
    ])


def user_frames(traceback_lines: list[str], library_frames: int = 1) -> list[str]:
    """The frames of the user's own code in a remote traceback (cell code, not libraries).

    When the error was raised inside a library (Hail, Spark), its innermost ``library_frames``
    frames follow: often they are the only ones that say what went wrong (an ``assert`` in Hail).
    Our own helpers' frames are never shown.
    """
    text = "".join(traceback_lines)
    frames = re.split(r"(?m)^(?=  File \")", text)
    body = [f for f in frames[1:]]
    mine = [f for f in body if re.match(r'  File "<(?!hail_emr_lab|hail-emr-lab|frozen)[^"]*>"', f)]
    keep = mine or body[-1:]
    if mine and body[-1] is not mine[-1]:
        inner = [f for f in body[body.index(mine[-1]) + 1:] if not re.match(r'  File "<(hail_emr_lab|hail-emr-lab)', f)]
        shown = inner[-library_frames:] if library_frames > 0 else []
        if len(inner) > len(shown):
            keep = keep + [f"  ... {len(inner) - len(shown)} more frame(s) inside libraries ...\n"]
        keep = keep + shown
    out = []
    for frame in keep:
        lines = frame.rstrip("\n").splitlines()
        # A frame is 'File ..., line N, in f' plus its code line; the last one also has the error.
        out.extend(line for line in lines[:2] if line.strip())
    return out


def remote_error(output: Any, what: str = "The cell failed on the cluster") -> HailMagicError:
    """A one-paragraph error for a failed statement (a Livy statement output), with the user's frames."""
    ename, evalue = output.ename or "Error", (output.evalue or "").strip()
    lines = [f"{what}: {ename}: {evalue}"]
    # Without a message, the frames where it was raised are all there is to explain it.
    frames = user_frames(output.traceback, library_frames=1 if evalue else 3)
    if frames:
        lines += ["Remote traceback (your code):"] + frames
    if ename == "NameError":
        match = re.search(r"name '([^']+)' is not defined", evalue)
        var = match.group(1) if match else "it"
        lines.append(
            f"Names live on the cluster: define {var} in a %%hail cell, or send a local value with "
            f"%hail push {var}. If you reconnected, the old session's variables are gone."
        )
    return HailMagicError(lines[0], lines)
