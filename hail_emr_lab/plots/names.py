"""Plot names: which names from the cluster may become files under ``plots/``, and their kind.

Names from the cluster are untrusted. The rules of every relative name come from
:func:`hail_emr_lab.paths.unsafe_reason`; plots add a character set, a depth limit and no
hidden files, so a name is also safe to show in a message, a caption or an HTML attribute.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..paths import unsafe_reason
from .errors import UnsafePlotName

#: Characters besides letters and digits a name may use (spaces only inside a component).
NAME_EXTRA = frozenset("._-+=,@()[]~# ")
#: Characters in a whole name.
MAX_NAME = 1024
#: '/'-separated components (the cluster side walks as deep).
MAX_DEPTH = 4

#: Plot kinds by file suffix (the cluster side pulls these suffixes automatically).
_KINDS = {".html": "html", ".htm": "html", ".png": "png", ".svg": "svg", ".jpg": "jpeg", ".jpeg": "jpeg",
          ".gif": "gif", ".pdf": "pdf"}


def check_name(name: Any) -> str:
    """Return ``name`` if it is a safe relative plot name, else raise :class:`UnsafePlotName`.

    The rules of every relative name (:func:`hail_emr_lab.paths.unsafe_reason`: no NUL,
    backslash, absolute path, empty, '.' or '..' component, component over 255 bytes), and for
    plots: at most 1024 characters in at most 4 '/'-separated components of letters, digits,
    spaces inside, and ``._-+=,@()[]~#``; no component starting with '.'.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePlotName(f"{name!r}: not a non-empty string")
    if len(name) > MAX_NAME:
        raise UnsafePlotName(f"{name[:60]!r}...: longer than {MAX_NAME} characters")
    problem = unsafe_reason(name)
    if problem:
        raise UnsafePlotName(f"{name!r}: {problem}")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafePlotName(f"{name!r}: nested deeper than {MAX_DEPTH} levels")
    for part in parts:
        if part.startswith("."):
            raise UnsafePlotName(f"{name!r}: hidden file name (starts with '.')")
        if part != part.strip():
            raise UnsafePlotName(f"{name!r}: leading or trailing space")
        odd = [ch for ch in part if not (ch.isalnum() or ch in NAME_EXTRA)]
        if odd:
            raise UnsafePlotName(f"{name!r}: unexpected character(s) {''.join(sorted(set(odd)))!r}")
    return name


def kind_of(name: str) -> str:
    """'html', 'png', 'svg', 'jpeg', 'gif', 'pdf' or 'other', from the name's suffix."""
    return _KINDS.get(PurePosixPath(name).suffix.lower(), "other")


def printable(name: Any) -> str:
    """``name`` for a message: repr (escapes control characters and terminal escapes), short."""
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."
