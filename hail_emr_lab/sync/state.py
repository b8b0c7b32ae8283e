"""The local sqlite state: what each file looked like when we last synced it.

A row per synced file: its stat signature (size, mtime_ns, inode, ctime_ns), md5 and the ETag
of the object it matches. A backup compares ``os.stat`` against these rows and only hashes files
whose signature changed, so a backup with nothing to do reads no file and sends no request.
Also kept: run metadata (last backup/restore, last errors), conflicts, and seeded files.
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
            self._rows = []

    def forget(self, rel: str) -> None:
        self._flush()
        self.db.execute("DELETE FROM files WHERE rel = ?", (rel,))

    def commit(self) -> None:
        self._flush()
        self.db.commit()

    # meta --------------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # conflicts ---------------------------------------------------------------------------
    def add_conflict(self, path: str, copy: str, when: str, reason: str) -> None:
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
