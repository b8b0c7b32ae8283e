"""One sync run's shared state, and how a run puts downloaded bytes in place locally.

Used by the backup and restore decisions (:mod:`.engine`), empty-directory markers
(:mod:`.markers`) and the first-start seed (:mod:`.seed`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from .keys import PathGuard
from .progress import Progress
from .report import SyncReport
from .state import State, signature
from .target import SyncTarget

#: Commit the state every this many files, so a crash loses little bookkeeping.
COMMIT_EVERY = 200


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Run:
    """State shared by the steps of one run."""

    def __init__(self, target: SyncTarget, state: State, report: SyncReport,
                 progress: Callable[[str, int, int], Progress] | None) -> None:
        self.target = target
        self.state = state
        self.report = report
        self.progress_factory = progress
        self.pending_commits = 0
        self.tmp_seq = 0
        self.guard = PathGuard(target.home)
        origin = state.meta("origin")
        if not origin:  # identifies objects uploaded from this home, so our own writes are no conflict
            origin = uuid.uuid4().hex
            state.set_meta("origin", origin)
            state.commit()  # before any upload carries it
        self.origin: str = origin

    def upload_meta(self, st: Any, md5: str) -> dict[str, str]:
        # md5: lets a HEAD recognise our bytes where the ETag is not their md5 (multipart, KMS).
        # mtime (seconds.nanoseconds): rclone's name for it; rclone serve s3 keeps it as the file's
        # modification time, the one piece of metadata it keeps across a restart.
        ns = st.st_mtime_ns
        return {"mtime-ns": str(ns), "origin": self.origin, "md5": md5, "mtime": f"{ns // 10**9}.{ns % 10**9:09d}"}

    def record(self, rel: str, st: Any, md5: str, etag: str) -> None:
        self.state.put(rel, st, md5, etag)
        self.pending_commits += 1
        if self.pending_commits >= COMMIT_EVERY:
            self.state.commit()
            self.pending_commits = 0

    def remote_kept(self, rel: str, etag: str) -> None:
        """The remote version ``etag`` of ``rel`` is now kept beside it as a conflict copy, so
        the local file is its successor: the next backup replaces it, no second copy."""
        self.state.remote_kept(rel, etag)

    def progress(self, action: str, files: int, nbytes: int) -> Progress:
        if self.progress_factory is None:
            return Progress(action, files, nbytes, enabled=False)
        return self.progress_factory(action, files, nbytes)

    def tmp_path(self) -> str:
        self.tmp_seq += 1
        return str(self.target.tmp_dir / f"{os.getpid()}-{self.tmp_seq}.part")

    def error(self, rel: str, text: str) -> None:
        self.report.errors.append({"path": rel, "error": text})


def clean_tmp(target: SyncTarget) -> None:
    """Remove staging files left by a killed run (we hold the lock, so none are live)."""
    if target.tmp_dir.is_dir():
        shutil.rmtree(target.tmp_dir, ignore_errors=True)


def lstat_or_none(path: Path) -> Any:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def same_file(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return signature(a) == signature(b)


def apply_mtime(tmp: str, metadata: dict[str, str] | None, last_modified: Any) -> None:
    """Give the file its original mtime (kept in object metadata), else S3's LastModified."""
    ns = None
    secs, _, frac = str((metadata or {}).get("mtime", "")).partition(".")
    if metadata and str(metadata.get("mtime-ns", "")).isdigit():
        ns = int(metadata["mtime-ns"])
    elif secs.isdigit() and (frac.isdigit() or not frac):
        ns = int(secs) * 10**9 + int((frac or "0")[:9].ljust(9, "0"))
    elif last_modified is not None and hasattr(last_modified, "timestamp"):
        ns = int(last_modified.timestamp() * 1e9)
    if ns is not None:
        os.utime(tmp, ns=(ns, ns))


def place_new(run: Run, tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path``, which must not exist (no clobbering, even in a race)."""
    run.guard.make_parent(path)
    try:
        os.link(tmp, path)  # fails if path appeared meanwhile: never clobbers
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(str(path)) from None
        os.replace(tmp, path)  # filesystems without hard links
        return
    os.unlink(tmp)
