"""The Plots section: pulled plots under ``<notebook dir>/plots/``, and safe access to one file.

Notebook directories are given relative to the Jupyter root; plot names come (indirectly) from
the cluster. Neither may lead outside its directory: absolute paths, ``..``, backslashes, NUL
and symlinks pointing elsewhere are refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from ..errors import HailEmrLabError
from ..paths import PathRefused, path_inside, within
from .jsonable import jsonable

PLOTS_DIRNAME = "plots"

#: What the viewer serves, by extension. Anything else is refused.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}


class UnsafePath(HailEmrLabError, PathRefused):
    """A directory or plot name that would leave its directory."""

    exit_code = 2


def plots_dir(root_dir: str | Path, rel: Optional[str]) -> Path:
    """``<notebook dir>/plots`` (it may not exist yet), its symlinks resolved.

    A ``plots`` that is itself a symlink leading outside the Jupyter root is refused
    (:class:`UnsafePath`), as Jupyter's own ``/files/`` handler does; one leading elsewhere
    inside the root is followed.
    """
    rel = (rel or "").strip().rstrip("/")
    return path_inside(root_dir, f"{rel}/{PLOTS_DIRNAME}" if rel else PLOTS_DIRNAME, error=UnsafePath,
                       what="plots folder", where="the Jupyter root")


def plot_file(root_dir: str | Path, rel_dir: Optional[str], name: str) -> tuple[Path, str]:
    """``(path, content_type)`` of plot ``name`` in the notebook directory's ``plots/``."""
    if not name or not name.strip():
        raise UnsafePath("no plot name given: pass name=<file in plots/>")
    pdir = plots_dir(root_dir, rel_dir)
    path = path_inside(pdir, name, error=UnsafePath, what="plot name")
    ctype = CONTENT_TYPES.get(path.suffix.lower())
    if ctype is None:
        raise UnsafePath(
            f"plot {name!r} is not a plot file the viewer shows (allowed: {', '.join(sorted(CONTENT_TYPES))})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no plot {name!r} in {pdir}")
    return path, ctype


def _kind(name: str) -> str:
    ext = PurePosixPath(name).suffix.lower()
    return {".html": "html", ".htm": "html", ".svg": "svg"}.get(ext, "image" if ext in CONTENT_TYPES else "other")


def _entry_from_index(item: Any, pdir: Path) -> Optional[dict[str, Any]]:
    """Normalize one entry of the plots helper's index; None if its local file is not inside plots/."""
    data = jsonable(item)
    if not isinstance(data, dict):
        return None
    local = data.get("local_path") or data.get("local") or data.get("path") or data.get("file") or data.get("name")
    if not local:
        return None
    local_path = Path(str(local))
    if not local_path.is_absolute():
        local_path = pdir / local_path
    real_pdir = os.path.realpath(pdir)
    real = os.path.realpath(local_path)
    if real == real_pdir or not within(real_pdir, real):
        return None
    file = os.path.relpath(real, real_pdir).replace(os.sep, "/")
    return {
        "name": str(data.get("name") or file),
        "file": file,
        "kind": _kind(file),
        "remote_path": data.get("remote_path") or data.get("remote"),
        "time": data.get("pulled_at") or data.get("time") or data.get("mtime"),
        "remote_mtime": data.get("mtime"),
        "size": data.get("size"),
        "sha256": data.get("sha256"),
        "exists": os.path.isfile(real),
        "indexed": True,
    }


def _scan_files(pdir: Path) -> list[dict[str, Any]]:
    out = []
    for entry in sorted(pdir.iterdir(), key=lambda p: p.name):
        if entry.is_symlink() or not entry.is_file() or entry.suffix.lower() not in CONTENT_TYPES:
            continue
        st = entry.stat()
        out.append(
            {
                "name": entry.name,
                "file": entry.name,
                "kind": _kind(entry.name),
                "remote_path": None,
                "time": st.st_mtime,
                "remote_mtime": None,
                "size": st.st_size,
                "sha256": None,
                "exists": True,
                "indexed": False,
            }
        )
    return out


def list_plots(root_dir: str | Path, rel_dir: Optional[str] = None) -> dict[str, Any]:
    """The gallery: plots in ``<notebook dir>/plots/``, newest first.

    Entries of the plots module's index (name, remote path, time, size, sha256) first, then
    plot files found in the directory that the index does not know (``indexed`` False: saved
    by hand, or the module is absent).
    """
    pdir = plots_dir(root_dir, rel_dir)
    rel_dir = (rel_dir or "").strip().strip("/")
    out: dict[str, Any] = {
        "dir": rel_dir,
        "plots_dir": f"{rel_dir}/{PLOTS_DIRNAME}".lstrip("/"),
        "plots": [],
        "message": None,
    }
    if not pdir.is_dir():
        out["message"] = f"no plots pulled yet into {out['plots_dir']}/"
        return out
    from ..plots.store import read_index

    try:
        index = read_index(pdir)
    except (HailEmrLabError, OSError, ValueError) as exc:
        out["message"] = f"the plots index could not be read ({exc}); listing the plot files instead"
        index = []
    indexed = [e for e in (_entry_from_index(item, pdir) for item in index) if e]
    known = {e["file"] for e in indexed}
    extra = [e for e in _scan_files(pdir) if e["file"] not in known]
    out["plots"] = sorted(indexed + extra, key=lambda e: _sort_time(e.get("time")), reverse=True)
    return out


def _sort_time(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0
