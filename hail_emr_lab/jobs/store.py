"""Submitted jobs remembered locally, for ``jobs list/status/logs/cancel`` and the sidebar.

The store is one JSON-lines file, ``jobs.jsonl``, in ``~/.hail-emr-lab/jobs/`` (next to the
config file, so ``HAIL_EMR_LAB_CONFIG`` moves it too; ``HAIL_EMR_LAB_JOBS_STORE`` names the
file directly). Each line is a whole job record; a later line for the same (backend, id)
supersedes earlier ones, so writes are single appends (safe with several kernels and the
server extension writing at once) and reads fold the lines. When the file holds many more
lines than jobs it is rewritten compactly under a lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from ..config import config_path
from .base import Job, JobNotFound

MAX_JOBS = 500  # older jobs are dropped on compaction
COMPACT_FACTOR = 4  # compact when lines > jobs * factor ...
COMPACT_BYTES = 512 * 1024  # ... checked only once the file is this big (saves stay O(1))


def store_path() -> Path:
    """The store file (``HAIL_EMR_LAB_JOBS_STORE`` overrides)."""
    override = os.environ.get("HAIL_EMR_LAB_JOBS_STORE")
    if override:
        return Path(override).expanduser()
    return config_path().parent / "jobs" / "jobs.jsonl"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_lines(path: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
    records: dict[tuple[str, str], dict[str, Any]] = {}
    count = 0
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return records, 0
    with fh:
        for line in fh:
            count += 1
            try:
                rec = json.loads(line)
                key = (str(rec["backend"]), str(rec["id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash: skip it, keep the rest
            if rec.get("_deleted"):
                records.pop(key, None)
            else:
                records.pop(key, None)  # re-insert so dict order = last update order
                records[key] = rec
    return records, count


def _compact(path: Path, records: dict[tuple[str, str], dict[str, Any]]) -> None:
    keep = sorted(records.values(), key=lambda r: str(r.get("submitted") or ""))[-MAX_JOBS:]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in keep:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _append(path: Path, line: str) -> None:
    """Append one line; after a torn last line (a crash mid-write) start on a fresh line so
    the new record is not glued to the broken one."""
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write(line.encode("utf-8"))


def save(job: Job) -> None:
    """Remember ``job`` (insert or update) with one append."""
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(job.to_dict(), sort_keys=True) + "\n"
    with _locked(path):
        _append(path, line)
        if path.stat().st_size > COMPACT_BYTES:
            records, count = _read_lines(path)
            if count > COMPACT_FACTOR * max(1, len(records)) or len(records) > MAX_JOBS:
                _compact(path, records)


def forget(job: Job) -> None:
    """Remove ``job`` from the store."""
    path = store_path()
    with _locked(path):
        _append(path, json.dumps({"backend": job.backend, "id": job.id, "_deleted": True}) + "\n")


def all_jobs() -> list[Job]:
    """Every remembered job, newest submission first."""
    records, _ = _read_lines(store_path())
    jobs = [Job.from_dict(rec) for rec in records.values()]
    jobs.sort(key=lambda j: j.submitted, reverse=True)
    return jobs


def find(job_id: str, backend: Optional[str] = None) -> Job:
    """The remembered job with this id (or unique id prefix, or exact name), optionally of one
    backend. A clear error when none or several match."""
    jobs = [j for j in all_jobs() if backend is None or j.backend == backend]  # newest first
    exact = [j for j in jobs if j.id == job_id]
    if exact:
        backends = sorted({j.backend for j in exact})
        if len(backends) > 1:
            raise JobNotFound(
                f"job id {job_id!r} is known on several backends ({', '.join(backends)}): add --backend to pick one"
            )
        return exact[0]
    if len(job_id) >= 4:  # short prefixes would surprise (Livy batch 1 vs 12)
        prefixed = [j for j in jobs if j.id.startswith(job_id)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            ids = ", ".join(j.id for j in prefixed[:5])
            raise JobNotFound(f"{job_id!r} matches several jobs ({ids}): give more of the id")
    named = [j for j in jobs if j.name == job_id]
    if named:
        return named[0]
    where = f" on backend {backend}" if backend else ""
    raise JobNotFound(
        f"no remembered job {job_id!r}{where}; `hail-emr-lab jobs list` shows the jobs submitted from here "
        f"(store: {store_path()}). For a job submitted elsewhere, pass --backend and its service ids."
    )


def list_jobs(limit: int = 50) -> list[dict[str, Any]]:
    """For the sidebar: ``[{id, backend, name, submitted, state, updated}, ...]``, newest first."""
    out = []
    for job in all_jobs()[: max(0, int(limit))]:
        out.append(
            {
                "id": job.id,
                "backend": job.backend,
                "name": job.name,
                "submitted": job.submitted,
                "state": job.state.value,
                "updated": job.updated,
            }
        )
    return out
