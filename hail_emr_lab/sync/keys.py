"""Safe mapping between S3 keys under the user's prefix and paths under the home.

Every key the sync writes is built by :func:`key_for`, so it can only write under its own
prefix. Every key read back is checked by :func:`rel_for_key` before it becomes a path, so a
key crafted by someone else (``..``, absolute paths, backslashes, NUL, our own state
directory) can never make a restore write outside the home.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Directory (relative to the home) holding the state, lock and download staging area.
#: Inside the home on purpose: on a notebook instance only the home survives a restart, and
#: a temp file must be on the same filesystem for an atomic rename. Always excluded.
STATE_DIRNAME = ".hail-emr-lab-sync"
#: Remote "trash" folder under the user's prefix (``--delete`` moves objects there).
TRASH_DIRNAME = ".hail-emr-lab-trash"
#: Top-level names that never sync, whatever the excludes say.
RESERVED = frozenset({STATE_DIRNAME, TRASH_DIRNAME})


class UnsafeKey(ValueError):
    """A key (or local name) that cannot be mapped to a path inside the home."""


def normalize_prefix(prefix: str) -> str:
    """``/alice/`` -> ``alice``; refuse empty or traversal prefixes."""
    text = str(prefix or "").strip().strip("/")
    reason = unsafe_reason(text) if text else "it is empty"
    if reason:
        raise UnsafeKey(f"prefix {prefix!r} is not usable ({reason})")
    return text


def unsafe_reason(rel: str) -> str | None:
    """Why ``rel`` (a ``/``-separated relative name) is unsafe, or None if it is fine."""
    if not rel:
        return "empty name"
    if "\x00" in rel:
        return "contains a NUL character"
    if "\\" in rel:
        return "contains a backslash"
    if rel.startswith("/"):
        return "is an absolute path"
    if len(rel) >= 2 and rel[1] == ":" and rel[0].isalpha():
        return "looks like a drive letter path"
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            return f"has a {part or 'empty'!r} path component" if part else "has an empty path component"
    return None


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


def within(root_real: str, path: str) -> bool:
    """True if real path ``path`` is ``root_real`` or below it."""
    return path == root_real or path.startswith(root_real.rstrip("/") + "/")


def safe_local_path(home: Path, rel: str) -> Path:
    """The local path for ``rel``, refusing anything whose existing parents escape the home.

    Parents that already exist are resolved (symlinks included) and must stay inside the
    real home; the final component must not be a symlink.
    """
    reason = unsafe_reason(rel)
    if reason:
        raise UnsafeKey(f"{rel!r} {reason}")
    root = os.path.realpath(home)
    path = Path(home, *rel.split("/"))
    parent = os.path.realpath(path.parent)
    if not within(root, parent):
        raise UnsafeKey(f"{rel!r} would be written outside the home (through a symlink)")
    if os.path.islink(path):
        raise UnsafeKey(f"{rel!r} is a symlink locally; not writing through it")
    return path


class PathGuard:
    """:func:`safe_local_path` for many names: parents already checked are remembered.

    One guard per run; directories it creates (:meth:`make_parent`) are real directories,
    so a checked parent stays safe for the rest of the run.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.root = os.path.realpath(home)
        self._checked: set[str] = set()
        self._made: set[str] = set()

    def path(self, rel: str) -> Path:
        reason = unsafe_reason(rel)
        if reason:
            raise UnsafeKey(f"{rel!r} {reason}")
        path = Path(self.home, *rel.split("/"))
        parent = str(path.parent)
        if parent not in self._checked:
            if not within(self.root, os.path.realpath(parent)):
                raise UnsafeKey(f"{rel!r} would be written outside the home (through a symlink)")
            self._checked.add(parent)
        if os.path.islink(path):
            raise UnsafeKey(f"{rel!r} is a symlink locally; not writing through it")
        return path

    def make_parent(self, path: Path) -> None:
        parent = str(path.parent)
        if parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
