"""Pulled plots on disk: byte-identical copies under ``plots/`` and the index beside them.

Writes never follow symlinks: each file is streamed to a temporary file in its folder,
hashed as it goes, checked against the cluster's sha256 and renamed into place
(``os.replace`` swaps the directory entry, so a symlink at the name is replaced, not
followed). The index (``.hail-plots-index.json``) is rewritten atomically under a lock, so
kernels sharing a folder do not lose each other's entries.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from ..paths import path_inside
from .errors import PlotError, ShaMismatch, UnsafePlotName
from .names import check_name, kind_of

INDEX_NAME = ".hail-plots-index.json"
LOCK_NAME = ".hail-plots-index.lock"
#: Largest plot file pulled, in bytes.
MAX_PLOT_BYTES = 1024 * 1024 * 1024


@dataclass
class LocalPlot:
    """A pulled plot: a byte-identical copy of the remote file under ``plots/``.

    ``size`` in bytes, ``mtime`` the remote file's (epoch seconds), ``pulled_at`` ISO time (UTC).
    """

    name: str
    path: Path
    size: int
    sha256: str
    mtime: float
    remote_path: str
    pulled_at: str

    @property
    def kind(self) -> str:
        """'html', 'png', 'svg', 'jpeg', 'gif', 'pdf' or 'other'."""
        return kind_of(self.path.name)


def target(local_dir: Path, name: str) -> Path:
    """The local path for ``name``, creating its folders; refuses symlinked folders or escapes
    (:class:`UnsafePlotName`)."""
    check_name(name)
    root = local_dir.resolve()
    folder = root
    for part in name.split("/")[:-1]:
        folder = folder / part
        if not os.path.lexists(folder):
            folder.mkdir()
            continue
        if folder.is_symlink() or not folder.is_dir():
            raise UnsafePlotName(f"{name!r}: local folder {folder} is a symlink or not a directory")
    if "/" in name:  # the folders' real path, symlinks included, stays inside plots/
        path_inside(root, name.rsplit("/", 1)[0], error=UnsafePlotName, what="plot folder of")
    # A symlink as the file itself is fine: the write replaces it (os.replace), never follows it.
    final = folder / name.split("/")[-1]
    if final.is_dir() and not final.is_symlink():
        raise UnsafePlotName(f"{name!r}: a directory of that name exists in {root}")
    return final


class Writer:
    """Streams bytes to a temporary file next to the target, hashing; ``commit`` renames it in place."""

    def __init__(self, target: Path):
        self.target = target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def commit(self, sha256: str, what: str) -> None:
        """Rename into place if the bytes hash to ``sha256``; else :class:`ShaMismatch`, nothing left."""
        self.file.close()
        if self.hash.hexdigest() != sha256:
            self.abort()
            raise ShaMismatch(
                f"{what}: the copy's sha256 does not match the cluster's file (it changed while pulling?)"
            )
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def save(
    local_dir: Path,
    name: str,
    parts: Iterable[bytes],
    sha256: str,
    mtime: float,
    remote_path: str,
    max_bytes: int = MAX_PLOT_BYTES,
) -> LocalPlot:
    """Write ``parts`` as plot ``name`` (verified against ``sha256``) and record it in the index.

    Raises :class:`PlotError` over ``max_bytes``, :class:`ShaMismatch`, :class:`UnsafePlotName`;
    on any error nothing is left behind.
    """
    local_dir.mkdir(parents=True, exist_ok=True)
    path = target(local_dir, name)
    writer = Writer(path)
    try:
        for data in parts:
            writer.write(data)
            if writer.size > max_bytes:
                raise PlotError(f"{name!r} is larger than the {max_bytes / 1e6:.0f} MB limit for plots")
        writer.commit(sha256, f"pulling {name!r}")
    except BaseException:
        writer.abort()
        raise
    plot = LocalPlot(name=name, path=path, size=writer.size, sha256=sha256, mtime=mtime, remote_path=remote_path,
                     pulled_at=_now())
    record(local_dir, plot)
    return plot


# ---------------------------------------------------------------------------- index


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _locked(local_dir: Path) -> Iterator[None]:
    """Serialise index updates between kernels sharing a folder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(local_dir / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_index(local_dir: Path) -> list[dict[str, Any]]:
    """The raw index entries (dicts with a string ``name``); [] when missing or damaged."""
    path = local_dir / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []  # a damaged index is rebuilt from the next pulls; the plot files themselves are intact
    items = data.get("plots") if isinstance(data, dict) else None
    return [p for p in items or [] if isinstance(p, dict) and isinstance(p.get("name"), str)]


def read_index(local_dir: Path) -> list[dict[str, Any]]:
    """The pulled plots recorded in ``local_dir``'s index, newest first.

    Each dict has ``name``, ``remote_path``, ``pulled_at`` (ISO time), ``mtime`` (remote, epoch
    seconds), ``size`` (bytes), ``sha256``, ``kind`` and ``local_path`` (absolute). Entries whose
    name is unsafe or whose file is gone are left out, so a tampered index cannot point outside.
    """
    local_dir = Path(local_dir)
    out = []
    for entry in load_index(local_dir):
        path = _safe_existing(local_dir, entry["name"])
        if path is None:
            continue
        item = dict(entry)
        item["local_path"] = str(path)
        out.append(item)
    out.sort(key=lambda e: str(e.get("pulled_at", "")), reverse=True)
    return out


def _safe_existing(local_dir: Path, name: str) -> Optional[Path]:
    """The regular file ``name`` inside ``local_dir`` (no symlinks on the way out), else None."""
    try:
        check_name(name)
        path_inside(local_dir, name, error=UnsafePlotName, what="plot")
    except UnsafePlotName:
        return None
    plain = local_dir.resolve().joinpath(*name.split("/"))
    return plain if plain.is_file() and not plain.is_symlink() else None


def record(local_dir: Path, plot: LocalPlot) -> None:
    """Add or replace ``plot`` in the index (atomic rewrite under a lock)."""
    with _locked(local_dir):
        items = [p for p in load_index(local_dir) if p.get("name") != plot.name]
        entry = asdict(plot)
        entry["local_path"] = plot.name  # relative to the index's folder (stays valid if the folder moves)
        entry.pop("path", None)
        entry["kind"] = plot.kind
        items.append(entry)
        body = json.dumps({"version": 1, "plots": items}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=local_dir, prefix=".tmp-index-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, local_dir / INDEX_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
