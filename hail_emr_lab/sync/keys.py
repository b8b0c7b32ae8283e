"""Safe mapping between S3 keys under the user's prefix and paths under the home.

Every key the sync writes is built by :func:`key_for`, so it can only write under its own
prefix. Every key read back is checked by :func:`rel_for_key` before it becomes a path, so a
key crafted by someone else (``..``, absolute paths, backslashes, NUL, our own state
directory) can never make a restore write outside the home.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import PathRefused, path_inside, unsafe_reason

#: Directory (relative to the home) holding the state, lock and download staging area.
#: Inside the home on purpose: on a notebook instance only the home survives a restart, and
#: a temp file must be on the same filesystem for an atomic rename. Always excluded.
STATE_DIRNAME = ".hail-emr-lab-sync"
#: Remote "trash" folder under the user's prefix (``--delete`` moves objects there).
TRASH_DIRNAME = ".hail-emr-lab-trash"
#: Top-level names that never sync, whatever the excludes say.
RESERVED = frozenset({STATE_DIRNAME, TRASH_DIRNAME})


class UnsafeKey(PathRefused):
    """A key (or local name) that cannot be mapped to a path inside the home."""


def normalize_prefix(prefix: str) -> str:
    """``/alice/`` -> ``alice``; refuse empty or traversal prefixes."""
    text = str(prefix or "").strip().strip("/")
    reason = unsafe_reason(text) if text else "it is empty"
    if reason:
        raise UnsafeKey(f"prefix {prefix!r} is not usable ({reason})")
    return text


def key_for(prefix: str, rel: str) -> str:
    """The S3 key of home-relative name ``rel`` (always under ``prefix/``).

    ``rel`` ending in ``/`` names a directory: its key is the zero-byte folder marker, as the
    S3 console makes one.
    """
    reason = unsafe_reason(rel[:-1] if rel.endswith("/") else rel)
    if reason:
        raise UnsafeKey(f"{rel!r} {reason}")
    return f"{prefix}/{rel}"


def rel_for_key(prefix: str, key: str) -> str:
    """The home-relative name of ``key``; :class:`UnsafeKey` if it must not be restored."""
    head = prefix + "/"
    if not key.startswith(head):
        raise UnsafeKey(f"key {key!r} is not under {head!r}")
    rel = key[len(head) :]
    reason = unsafe_reason(rel)
    if reason:
        raise UnsafeKey(f"key {key!r} {reason}")
    if rel.split("/", 1)[0] in RESERVED:
        raise UnsafeKey(f"key {key!r} is inside the sync's own reserved folder")
    return rel


def rel_of_path(home: Path, path: Path) -> str:
    """Home-relative ``/`` name of ``path`` (not resolving symlinks); UnsafeKey if outside."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(home)).as_posix()
    except ValueError:
        raise UnsafeKey(f"{path} is not inside {home}") from None
    if rel == ".":
        raise UnsafeKey(f"{path} is the home itself")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeKey(f"{path!s} has a name that is not valid UTF-8; rename it to back it up") from None
    reason = unsafe_reason(rel)
    if reason:
        raise UnsafeKey(f"{rel!r} {reason}; rename it to back it up")
    return rel


class PathGuard:
    """The local path of each home-relative name a restore writes, refusing any that would land
    outside the home (``..``, a symlinked parent, a symlink as the file itself): see
    :func:`hail_emr_lab.paths.path_inside`.

    One guard per run; parents already checked are remembered, and directories it creates
    (:meth:`make_parent`) are real directories, so a checked parent stays safe for the run.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self._checked: set[str] = set()
        self._made: set[str] = set()

    def path(self, rel: str) -> Path:
        """``home/rel``; :class:`UnsafeKey` if writing it could leave the home."""
        return path_inside(self.home, rel, follow=False, error=UnsafeKey, what="", where="the home",
                           checked=self._checked)

    def make_parent(self, path: Path) -> None:
        parent = str(path.parent)
        if parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
