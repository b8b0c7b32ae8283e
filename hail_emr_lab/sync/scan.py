"""Walking the home (no S3 here): which files exist, which changed, and their hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .excludes import Excludes
from .keys import UnsafeKey, rel_of_path, unsafe_reason, within

_KIND = {
    stat_mod.S_IFIFO: "a FIFO",
    stat_mod.S_IFSOCK: "a socket",
    stat_mod.S_IFCHR: "a character device",
    stat_mod.S_IFBLK: "a block device",
}


@dataclass
class Scan:
    """Result of walking the home: regular files with their stat, plus notes and errors."""

    files: dict[str, os.stat_result] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


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
        with it:
            for entry in it:
                rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
                try:
                    _visit(entry, rel, root_real, excludes, scan, stack)
                except OSError as exc:
                    scan.errors.append({"path": rel, "error": f"cannot read: {exc.strerror}"})
    return scan


def _visit(entry: os.DirEntry, rel: str, root_real: str, excludes: Excludes, scan: Scan,
           stack: list[tuple[str, str]]) -> None:
    if entry.is_dir(follow_symlinks=False):
        if not excludes.match(rel, True):
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
    """(rel, stat or None, problem) for one path, as :func:`scan_home` would see it."""
    rel = rel_of_path(home, path)
    if excludes.excluded(rel):
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
