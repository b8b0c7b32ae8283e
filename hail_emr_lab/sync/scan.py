"""Walking the home (no S3 here): which files exist, which changed, and their hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..paths import unsafe_reason, within
from .excludes import KINDS, Excludes
from .keys import UnsafeKey, rel_of_path

_KIND = {
    stat_mod.S_IFIFO: "a FIFO",
    stat_mod.S_IFSOCK: "a socket",
    stat_mod.S_IFCHR: "a character device",
    stat_mod.S_IFBLK: "a block device",
}


@dataclass
class Scan:
    """Result of walking the home: regular files with their stat, plus notes and errors.

    ``dirs``: empty directories (kept as folder markers, so an empty ``results/`` comes back on
    restore). ``skipped``: kind (``environments``, ``node_modules``,
    ...) -> directories not walked because they hold environments or caches, not work.
    """

    files: dict[str, os.stat_result] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    dirs: dict[str, os.stat_result] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    _tops: set[str] | None = field(default=None, init=False, repr=False, compare=False)

    def skipped_counts(self) -> dict[str, int]:
        """``{"environments": 2, "node_modules": 1}`` in :data:`~.excludes.KINDS` order."""
        return {k: len(self.skipped[k]) for k in KINDS if self.skipped.get(k)}

    def in_skipped(self, rel: str) -> bool:
        """Is ``rel`` inside a directory skipped as an environment or cache?"""
        if not self.skipped:
            return False
        if self._tops is None:
            self._tops = {d for dirs in self.skipped.values() for d in dirs}
        parts = rel.rstrip("/").split("/")
        return any("/".join(parts[:i]) in self._tops for i in range(1, len(parts)))


def gone_locally(scan: Scan, home: Path, excludes: Excludes, rel: str) -> bool:
    """Was ``rel`` (a state row: a file, or ``dir/`` for a folder marker) deleted locally?

    Not if it is excluded or inside a skipped environment (it is still there, just not
    backed up any more); a marker only when its directory no longer exists.
    """
    if rel.endswith("/"):
        d = rel[:-1]
        return d not in scan.dirs and not excludes.excluded(d, True) and not scan.in_skipped(d) \
            and not os.path.isdir(os.path.join(home, d))
    return rel not in scan.files and not excludes.excluded(rel) and not scan.in_skipped(rel)


def skipped_text(counts: dict[str, int]) -> str:
    """``"2 environments, 1 node_modules"`` (empty if nothing was skipped)."""
    def one(kind: str, n: int) -> str:
        return f"{n} {kind[:-1]}" if n == 1 and kind in ("environments", "caches") else f"{n} {kind}"

    return ", ".join(one(k, n) for k, n in counts.items())


def _note(scan: Scan, rel: str, text: str) -> None:
    scan.notes.append({"path": rel, "note": text})


def scan_home(home: Path, excludes: Excludes) -> Scan:
    """Walk ``home`` without following directory symlinks (so loops cannot trap us)."""
    scan = Scan()
    root_real = os.path.realpath(home)
    stack = [(str(home), "")]
    while stack:
        dir_path, dir_rel = stack.pop()
        try:
            it = os.scandir(dir_path)
        except OSError as exc:
            scan.errors.append({"path": dir_rel or ".", "error": f"cannot list directory: {exc.strerror}"})
            continue
        empty = True
        with it:
            for entry in it:
                empty = False
                rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
                try:
                    _visit(entry, rel, root_real, excludes, scan, stack)
                except OSError as exc:
                    scan.errors.append({"path": rel, "error": f"cannot read: {exc.strerror}"})
        if dir_rel and empty:
            try:
                scan.dirs[dir_rel] = os.lstat(dir_path)
            except OSError as exc:
                scan.errors.append({"path": dir_rel, "error": f"cannot read: {exc.strerror}"})
    return scan


def _visit(entry: os.DirEntry, rel: str, root_real: str, excludes: Excludes, scan: Scan,
           stack: list[tuple[str, str]]) -> None:
    """Look at one entry: a file to back up, a directory to walk, or a note or error."""
    if entry.is_dir(follow_symlinks=False):
        skip, kind = excludes.skip_dir(rel, entry.path)
        if kind:
            scan.skipped.setdefault(kind, []).append(rel)
        if skip:
            return
        reason = _name_problem(rel)
        if reason:
            scan.errors.append({"path": rel, "error": f"cannot back up: the name {reason}; rename it"})
            return
        stack.append((entry.path, rel))
        return
    if excludes.match(rel, False):
        return
    reason = _name_problem(rel)
    if reason:
        scan.errors.append({"path": rel, "error": f"cannot back up: the name {reason}; rename it"})
        return
    if entry.is_symlink():
        try:  # first: a link to nothing is broken wherever it points
            st = os.stat(entry.path)
        except OSError as exc:
            _note(scan, rel, _dangling(exc))
            return
        if not within(root_real, os.path.realpath(entry.path)):
            _note(scan, rel, "symlink to outside the home: not followed")
            return
        if stat_mod.S_ISDIR(st.st_mode):
            _note(scan, rel, "symlink to a directory: not followed (its target is backed up in place)")
            return
        if not stat_mod.S_ISREG(st.st_mode):
            _note(scan, rel, "symlink to a special file: skipped")
            return
        scan.files[rel] = st
        return
    st = entry.stat(follow_symlinks=False)
    if stat_mod.S_ISREG(st.st_mode):
        scan.files[rel] = st
    else:
        _note(scan, rel, f"{_KIND.get(stat_mod.S_IFMT(st.st_mode), 'not a regular file')}: skipped")


def _dangling(exc: OSError) -> str:
    """The note for a symlink that cannot be followed (``os.stat`` failed on it)."""
    if exc.errno == errno.ELOOP:
        return "symlink loop: skipped"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "broken symlink (it points at nothing): skipped"
    return f"symlink that cannot be followed: skipped ({exc.strerror})"


def _name_problem(rel: str) -> str | None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return unsafe_reason(rel)


def stat_one(home: Path, path: Path, excludes: Excludes) -> tuple[str, Any, str | None]:
    """(rel, stat or None, problem) for one path, as :func:`scan_home` would see it.

    A directory that is walked gives its stat with the problem ``"directory"``.
    """
    rel = rel_of_path(home, path)
    if excludes.excluded_on_disk(str(home), rel):
        return rel, None, "excluded"
    parent = os.path.realpath(Path(path).parent)
    if not within(os.path.realpath(home), parent):
        raise UnsafeKey(f"{rel!r} is reached through a symlink to outside the home")
    try:
        st = os.stat(path)
    except OSError as exc:
        if not os.path.islink(path):
            if isinstance(exc, FileNotFoundError):
                return rel, None, "missing"
            raise
        return rel, None, _dangling(exc)
    if os.path.islink(path) and not within(os.path.realpath(home), os.path.realpath(path)):
        return rel, None, "symlink to outside the home: not followed"
    if stat_mod.S_ISDIR(st.st_mode):
        if os.path.islink(path):
            return rel, None, "symlink to a directory: not followed (its target is backed up in place)"
        if excludes.skip_dir(rel, str(path))[0]:
            return rel, None, "excluded"
        return rel, st, "directory"
    if not stat_mod.S_ISREG(st.st_mode):
        return rel, None, "not a regular file"
    return rel, st, None


def hash_file(path: Path | str, part_size: int, multipart_threshold: int) -> tuple[str, str]:
    """(md5 hex of the content, the ETag S3 gives it when uploaded by the transfer manager).

    One pass: for a file uploaded in parts the ETag is the md5 of the parts' md5s, ``-N``.
    """
    whole = hashlib.md5(usedforsecurity=False)
    parts: list[bytes] = []
    part = hashlib.md5(usedforsecurity=False)
    in_part = 0
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1024 * 1024)
            if not chunk:
                break
            whole.update(chunk)
            size += len(chunk)
            view = memoryview(chunk)
            while view:
                take = min(len(view), part_size - in_part)
                part.update(view[:take])
                in_part += take
                view = view[take:]
                if in_part == part_size:
                    parts.append(part.digest())
                    part = hashlib.md5(usedforsecurity=False)
                    in_part = 0
    if in_part:
        parts.append(part.digest())
    md5 = whole.hexdigest()
    if size < multipart_threshold:
        return md5, f'"{md5}"'
    composite = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
    return md5, f'"{composite}-{len(parts)}"'


def iter_chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
