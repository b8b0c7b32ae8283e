"""Relative names that must stay inside a root directory, symlinks included.

The one home of that rule for every place that turns an untrusted name into a local path:
plot names from the cluster (``plots/``), folders and plot names from the sidebar's requests
(``dashboard/plots``) and S3 keys restored into the home (``sync/``). Each caller raises its own
subclass of :class:`PathRefused`, so its surface reports the refusal in its own words.

Limits are Linux's (``NAME_MAX`` 255 bytes per component, ``PATH_MAX`` 4096 bytes; POSIX
``limits.h``): a longer name could never be written, so it is refused up front with a clear reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

#: Bytes in one path component (Linux NAME_MAX).
MAX_COMPONENT_BYTES = 255
#: Bytes in a whole relative name (Linux PATH_MAX).
MAX_PATH_BYTES = 4096

PathLike = Union[str, "os.PathLike[str]"]


class PathRefused(ValueError):
    """A relative name that is malformed or would lead outside its root directory."""


def unsafe_reason(rel: str) -> Optional[str]:
    """Why ``rel`` (a ``/``-separated relative name) is not a safe relative name, or None.

    Refused: empty names, NUL, backslashes, absolute paths (``/x``, ``C:x``), empty,
    ``.`` or ``..`` components, names not encodable as UTF-8, a component over 255 bytes or a
    whole name over 4096 bytes. Symlinks are not looked at here: see :func:`path_inside`.
    """
    if not isinstance(rel, str) or not rel:
        return "is empty"
    if "\x00" in rel:
        return "contains a NUL character"
    if "\\" in rel:
        return "contains a backslash"
    if rel.startswith("/"):
        return "is an absolute path"
    if len(rel) >= 2 and rel[1] == ":" and rel[0].isalpha():
        return "looks like a drive letter path"
    try:
        size = len(rel.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    for part in rel.split("/"):
        if part == "..":
            return "has a '..' path component (a name must stay inside its directory)"
        if part in ("", "."):
            return f"has a {part!r} path component" if part else "has an empty path component"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"has a path component longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def within(root_real: str, path: str) -> bool:
    """True if real (symlink-free, absolute) path ``path`` is ``root_real`` or below it."""
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def path_inside(
    root: PathLike,
    rel: str,
    *,
    follow: bool = True,
    error: type[PathRefused] = PathRefused,
    what: str = "name",
    where: Optional[str] = None,
    checked: Optional[set[str]] = None,
) -> Path:
    """The local path of ``rel`` under ``root``, refusing anything that would lead outside it.

    ``rel`` must pass :func:`unsafe_reason`. With ``follow`` (for reading) every symlink on the
    way is resolved and the real path must be ``root``'s real path or below it; the real path is
    returned. Without ``follow`` (for writing) the existing parents are resolved the same way,
    the last component must not be a symlink (a write would go through it), and the path is
    returned as ``root/rel``. Parents that do not exist yet are fine: the caller creates them
    as real directories under a parent that was checked. ``checked`` (writing only) remembers
    the parents found inside, so many names in one folder cost one ``realpath``.

    Raises ``error`` (a :class:`PathRefused` subclass): "<what> '<rel>' <reason>", the root
    named as ``where`` (default: its path).
    """
    problem = unsafe_reason(rel)
    if problem:
        raise error(_message(what, rel, problem))
    place = where or str(root)
    path = Path(root, *rel.split("/"))
    if follow:
        real = os.path.realpath(path)
        if not within(os.path.realpath(root), real):
            raise error(_message(what, rel, f"leads outside {place} (through a symlink); refused"))
        return Path(real)
    parent = str(path.parent)
    if checked is None or parent not in checked:
        if not within(os.path.realpath(root), os.path.realpath(parent)):
            raise error(_message(what, rel, f"would be written outside {place} (through a symlink); refused"))
        if checked is not None:
            checked.add(parent)
    if os.path.islink(path):
        raise error(_message(what, rel, "is a symlink locally; not writing through it"))
    return path


def _message(what: str, rel: object, reason: str) -> str:
    # repr escapes control characters and terminal escapes; keep it short.
    text = repr(rel)
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{what} {text} {reason}" if what else f"{text} {reason}"
