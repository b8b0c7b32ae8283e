"""Transfers running in this user's kernels, for the Running section.

A kernel moving data (``-o``, ``%hail push``) publishes its current transfer as one small JSON
file, ``<Jupyter runtime dir>/hail-emr-lab-transfers/<kernel pid>.json`` (the runtime
directory jupyter_server and the kernels it starts share; jupyter_core's
``jupyter_runtime_dir``), rewritten atomically a few times a second and deleted when the
transfer ends, however it ends. The server extension reads the folder: a file not owned by this
user is refused, one whose kernel process is gone (killed mid-transfer) is deleted, and one that
does not fit :class:`~hail_emr_lab.dashboard.payloads.Transfer` is reported, never shown.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .payloads import Transfer, field_errors

FOLDER = "hail-emr-lab-transfers"


def transfers_dir(runtime_dir: Optional[str] = None) -> Path:
    """The folder of published transfers (under ``runtime_dir``, default Jupyter's runtime dir)."""
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    return Path(runtime_dir) / FOLDER


def publish(record: Transfer, runtime_dir: Optional[str] = None) -> None:
    """Write this process's transfer ``record`` (replacing its previous one) atomically, mode 0600
    in a 0700 folder. Raises OSError when the folder cannot be written."""
    folder = transfers_dir(runtime_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, folder / f"{os.getpid()}.json")
    except BaseException:
        os.unlink(tmp)
        raise


def withdraw(runtime_dir: Optional[str] = None) -> None:
    """Delete this process's transfer record, if any."""
    (transfers_dir(runtime_dir) / f"{os.getpid()}.json").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge (its file is refused by owner)
    return True


def running_transfers(runtime_dir: Optional[str] = None) -> tuple[list[Transfer], Optional[str]]:
    """``(transfers, problem)``: this user's running transfers, oldest first, and what could not
    be read (None when all was well). Records of kernels that are gone are deleted."""
    folder = transfers_dir(runtime_dir)
    out: list[tuple[float, Transfer]] = []
    problems: list[str] = []
    try:
        paths = sorted(folder.glob("[0-9]*.json"))
    except OSError as exc:
        return [], f"the transfers folder {folder} cannot be read: {exc}"
    for path in paths:
        record, problem = _read(path)
        if problem:
            problems.append(f"{path.name}: {problem}")
        elif record is not None:
            out.append((record["elapsed"], record))
    out.sort(key=lambda item: -item[0])
    return [r for _, r in out], ("; ".join(problems) or None)


def _read(path: Path) -> tuple[Optional[Transfer], Optional[str]]:
    """One record, or None for a finished one; the problem when it cannot be trusted."""
    try:
        if path.stat().st_uid != os.getuid():
            return None, "not owned by this user, ignored"
        if not _alive(int(path.stem)):
            path.unlink(missing_ok=True)  # its kernel died mid-transfer
            return None, None
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None  # the transfer ended while the folder was read
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    errors = field_errors(data, Transfer)
    if errors:
        return None, "not a transfer record (" + ", ".join(errors[:3]) + ")"
    return data, None
