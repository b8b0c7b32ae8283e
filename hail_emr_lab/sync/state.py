"""The local sqlite state: what each file looked like when we last synced it.

A row per synced file: its stat signature (size, mtime_ns, inode, ctime_ns), md5 and the ETag
of the object it matches. A backup compares ``os.stat`` against these rows and only hashes files
whose signature changed, so a backup with nothing to do reads no file and sends no request.
Also kept: run metadata (last backup/restore, last errors), conflicts, and seeded files.

Crash safety: file rows are buffered and committed in batches, so a run killed with ``kill -9``
loses the rows of its last files. What it was doing survives as *intents*, committed before the
act: ``placed`` (a restore is about to put these bytes, S3's object ``etag``, at ``rel``) and
``upload`` (a backup is sending these bytes to ``rel``'s key). The next run settles them: a file
whose bytes are those of a ``placed`` intent came from S3 and is not a local edit; a file whose
``upload`` intent has the same bytes may already be in S3 (one HEAD, not a second upload).
Recording a file's row drops its intents in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    rel TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER,
    md5 TEXT, etag TEXT, synced_at REAL, ctime_ns INTEGER);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT, conflict_copy TEXT, time TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS intents (
    rel TEXT, kind TEXT, md5 TEXT, etag TEXT, size INTEGER, at REAL, PRIMARY KEY (rel, kind));
CREATE TABLE IF NOT EXISTS seeded (
    rel TEXT PRIMARY KEY, source_key TEXT, etag TEXT, md5 TEXT, size INTEGER, mtime_ns INTEGER,
    ino INTEGER, offered_etag TEXT, ctime_ns INTEGER);
"""
#: Columns added after the first release: (table, column), added to older state files on open.
_ADDED = (("files", "ctime_ns"), ("seeded", "ctime_ns"))


def signature(st: Any) -> tuple[int, int, int, int]:
    """(size bytes, mtime ns, inode, ctime ns): a file whose signature is unchanged is unchanged.

    ``ctime`` is in it because tools that keep timestamps (``cp -p``, ``rsync -t``, ``tar x``,
    ``touch -r``) set the mtime back after writing; no user-space call can set the ctime back
    (POSIX ``stat``: ctime is updated by every write and every ``utimes``).
    """
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@dataclass(frozen=True)
class FileState:
    """What a file looked like when it was last synced."""

    rel: str
    size: int
    mtime_ns: int
    ino: int
    md5: str
    etag: str
    ctime_ns: int | None = None  # None in rows written before ctime was kept: hashed once

    def same_stat(self, st: Any) -> bool:
        return signature(st) == (self.size, self.mtime_ns, self.ino, self.ctime_ns)


@dataclass(frozen=True)
class Intent:
    """What a run was about to do to ``rel`` when it last ran (see the module docstring).

    ``kind`` is ``"placed"`` or ``"upload"``; ``md5`` (hex) and ``size`` (bytes) describe the
    bytes, ``etag`` the S3 object they are (or will be); ``at`` is a Unix time in seconds."""

    rel: str
    kind: str
    md5: str
    etag: str
    size: int
    at: float


class State:
    """Thin wrapper over one sqlite file (WAL mode; commits are batched by the caller)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        for table, column in _ADDED:
            if column not in {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
        self._rows: list[tuple[Any, ...]] = []  # file rows not yet written (see put)

    def close(self) -> None:
        self.commit()
        self.db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # files -------------------------------------------------------------------------------
    def all_files(self) -> dict[str, FileState]:
        self._flush()
        rows = self.db.execute("SELECT rel, size, mtime_ns, ino, md5, etag, ctime_ns FROM files")
        return {r[0]: FileState(*r) for r in rows}

    def get(self, rel: str) -> FileState | None:
        self._flush()
        row = self.db.execute(
            "SELECT rel, size, mtime_ns, ino, md5, etag, ctime_ns FROM files WHERE rel = ?", (rel,)
        ).fetchone()
        return FileState(*row) if row else None

    def put(self, rel: str, st: Any, md5: str, etag: str) -> None:
        """Record a synced file (buffered; written by the next read or :meth:`commit`)."""
        self._rows.append((rel, st.st_size, st.st_mtime_ns, st.st_ino, md5, etag, time.time(), st.st_ctime_ns))

    def _flush(self) -> None:
        if self._rows:
            self.db.executemany(
                "INSERT OR REPLACE INTO files (rel, size, mtime_ns, ino, md5, etag, synced_at, ctime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._rows)
            self.db.executemany("DELETE FROM intents WHERE rel = ?", [(r[0],) for r in self._rows])
            self._rows = []

    def forget(self, rel: str) -> None:
        self._flush()
        self.db.execute("DELETE FROM files WHERE rel = ?", (rel,))
        self.db.execute("DELETE FROM intents WHERE rel = ?", (rel,))

    def remote_kept(self, rel: str, etag: str) -> None:
        """S3's version ``etag`` of ``rel`` is kept beside it (a conflict copy): remember it as
        the version the local file follows, so the next backup replaces it (``If-Match``)
        instead of finding a conflict again. A file never synced gets a row no stat matches."""
        self._flush()
        cur = self.db.execute("UPDATE files SET etag = ? WHERE rel = ?", (etag, rel))
        if cur.rowcount == 0:
            self.db.execute("INSERT INTO files (rel, size, mtime_ns, ino, md5, etag, synced_at, ctime_ns) "
                            "VALUES (?, -1, 0, 0, '', ?, ?, 0)", (rel, etag, time.time()))

    def commit(self) -> None:
        self._flush()
        self.db.commit()

    # intents ------------------------------------------------------------------------------
    def put_intents(self, kind: str, items: Iterable[tuple[str, str, str, int]]) -> None:
        """Record ``(rel, md5, etag, size)`` intents of ``kind`` and commit them at once: the
        caller acts only after this returns."""
        now = time.time()
        self._flush()
        self.db.executemany(
            "INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?, ?, ?)",
            [(rel, kind, md5, etag, size, now) for rel, md5, etag, size in items],
        )
        self.db.commit()

    def intents(self, kind: str) -> dict[str, Intent]:
        """The intents of ``kind`` left by earlier runs (and this one), by ``rel``."""
        self._flush()
        rows = self.db.execute("SELECT rel, kind, md5, etag, size, at FROM intents WHERE kind = ?", (kind,))
        return {r[0]: Intent(*r) for r in rows}

    def drop_intent(self, rel: str, kind: str) -> None:
        self.db.execute("DELETE FROM intents WHERE rel = ? AND kind = ?", (rel, kind))

    # meta --------------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # conflicts ---------------------------------------------------------------------------
    def add_conflict(self, path: str, copy: str, when: str, reason: str) -> None:
        """Remember a conflict (once per file and copy)."""
        if self.db.execute("SELECT 1 FROM conflicts WHERE path = ? AND conflict_copy = ?", (path, copy)).fetchone():
            return
        self.db.execute(
            "INSERT INTO conflicts (path, conflict_copy, time, reason) VALUES (?, ?, ?, ?)",
            (path, copy, when, reason),
        )

    def conflicts(self, limit: int = 100) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT path, conflict_copy, time, reason FROM conflicts ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [{"path": p, "conflict_copy": c, "time": t, "reason": r} for p, c, t, r in rows]

    # seeded ------------------------------------------------------------------------------
    def seeded(self, rel: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM seeded WHERE rel = ?", (rel,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    def put_seeded(self, rel: str, source_key: str, etag: str, md5: str, st: Any, offered: str = "") -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO seeded (rel, source_key, etag, md5, size, mtime_ns, ino, offered_etag, "
            "ctime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rel, source_key, etag, md5, st.st_size, st.st_mtime_ns, st.st_ino, offered, st.st_ctime_ns),
        )

    def set_offered(self, rel: str, etag: str) -> None:
        self.db.execute("UPDATE seeded SET offered_etag = ? WHERE rel = ?", (etag, rel))


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
