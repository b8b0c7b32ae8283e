"""One sync at a time per home/bucket/prefix: an ``fcntl.flock`` on a file beside the state.

The kernel drops the lock when the process dies (even by ``kill -9``), so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import HailEmrLabError
from .report import shown


class SyncBusy(HailEmrLabError):
    """Another sync holds the lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class SyncLock:
    """Context manager; waits up to ``wait`` seconds, then raises :class:`SyncBusy`."""

    def __init__(self, path: Path, wait: float = 10.0) -> None:
        self.path = Path(path)
        self.wait = wait
        self._fd: int | None = None
        #: When this process got the lock (Unix time, seconds): whatever a sync of this home
        #: left in S3 before then (an interrupted multipart upload) belongs to a dead run.
        self.acquired_at: float | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + max(self.wait, 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    raise SyncBusy(
                        f"another sync is running for this home (pid {holder or 'unknown'}, lock "
                        f"{shown(self.path)}); it was still running after {self.wait:g} s. Try again when it "
                        "finishes, or pass --wait SECONDS to wait longer."
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        self.acquired_at = time.time()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""


def is_locked(path: Path) -> bool:
    """True if some process holds the lock right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
