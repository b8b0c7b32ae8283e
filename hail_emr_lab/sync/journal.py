"""The journal of this home's multipart uploads, so a killed run's parts can be aborted.

A multipart upload killed half-way leaves parts S3 keeps (and bills) until the upload is
aborted. :class:`UploadJournal` records each one as it starts and ends; the next run, holding
the sync lock (so no live upload of this home is in it), aborts what was never ended
(:meth:`.remote.Remote.abort_interrupted_uploads`). No boto3 here: a backup with nothing to
do checks the journal without importing it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .target import SyncTarget


def journal_path(target: SyncTarget) -> Path:
    """Where the journal of ``target`` lives: beside its state, never synced."""
    return Path(target.state_dir) / f"uploads-{target.ident}.jsonl"


class UploadJournal:
    """Append-only record of this home's multipart uploads: ``<state_dir>/uploads-<id>.jsonl``.

    One JSON line per event: ``{"op": "create", "key": K}`` before CreateMultipartUpload is sent,
    ``{"op": "start", "key": K, "id": U}`` when S3 answers with the upload id, ``{"op": "end",
    ...}`` once it is completed or aborted. Lines are single ``O_APPEND`` writes, so a process
    killed at any moment leaves whole lines; what was started and never ended is
    :meth:`pending`. Thread-safe (s3transfer's threads write it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _write(self, entry: dict[str, str]) -> None:
        line = (json.dumps(entry) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, line)

    def creating(self, key: str) -> None:
        self._write({"op": "create", "key": key})

    def started(self, key: str, upload_id: str) -> None:
        self._write({"op": "start", "key": key, "id": upload_id})

    def ended(self, key: str, upload_id: str) -> None:
        self._write({"op": "end", "key": key, "id": upload_id})

    def refused(self, key: str) -> None:
        """S3 answered the create request with an error: no upload exists."""
        self._write({"op": "refused", "key": key})

    def pending(self) -> tuple[list[tuple[str, str]], list[str]]:
        """``(uploads started and not ended as (key, upload id), keys whose create request was
        sent but whose upload id never came back)``."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        started: dict[tuple[str, str], None] = {}
        creates: dict[str, int] = {}
        for line in text.splitlines():
            try:
                e = json.loads(line)
                op, key = e["op"], e["key"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a killed process
            if op == "create":
                creates[key] = creates.get(key, 0) + 1
            elif op == "start":
                creates[key] = creates.get(key, 0) - 1
                started[(key, e.get("id", ""))] = None
            elif op == "refused":
                creates[key] = creates.get(key, 0) - 1
            elif op == "end":
                started.pop((key, e.get("id", "")), None)
        return list(started), sorted(k for k, n in creates.items() if n > 0)

    def rewrite(self, uploads: list[tuple[str, str]], creating: list[str]) -> None:
        """Keep only what is still open (nothing: the file is removed)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if not uploads and not creating:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                return
            tmp = self.path.with_suffix(".tmp")
            lines = [json.dumps({"op": "create", "key": k}) for k in creating]
            for key, upload_id in uploads:
                lines += [json.dumps({"op": "create", "key": key}), json.dumps({"op": "start", "key": key, "id": upload_id})]
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(tmp, self.path)

    def compact(self) -> None:
        """Drop what has ended (at the end of a run: normally the file goes away)."""
        self.rewrite(*self.pending())
