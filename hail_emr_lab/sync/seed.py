"""``hail-emr-lab sync seed``: the shared notebooks and scripts, without clobbering edits.

``s3://<bucket>/common-notebooks/`` -> ``<home>/common-notebooks/`` and
``s3://<bucket>/scripts/`` -> ``<home>/bin/`` (scripts made executable for the user only,
as the Quick Start did). What was seeded is remembered in the state, so:

* a file the user never touched is updated when the shared copy changes;
* a file the user edited is left alone; the new shared version is saved beside it as
  ``name (new version YYYY-MM-DD).ext`` and a line is added to ``NEW-VERSIONS.txt`` there
  (and to the report), once per new version.
"""

from __future__ import annotations

import datetime as dt
import os
import stat as stat_mod
import time
from pathlib import Path

from .keys import UnsafeKey, rel_for_key
from .lock import SyncLock
from .report import SyncReport
from .run import Run, apply_mtime, clean_tmp, lstat_or_none, now_iso, place_new, same_file
from .scan import hash_file
from .state import State, signature
from .target import SyncTarget

#: (S3 prefix in the bucket, folder under the home, file mode or None)
SOURCES = (("common-notebooks", "common-notebooks", None), ("scripts", "bin", 0o700))
NOTES_FILE = "NEW-VERSIONS.txt"


def new_version_name(rel: str, taken) -> str:  # noqa: ANN001 - callable(str) -> bool
    head, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    day = dt.date.today().isoformat()
    n = 1
    while True:
        extra = f" {n}" if n > 1 else ""
        cand = f"{stem} (new version {day}{extra}){suffix}"
        full = f"{head}/{cand}" if head else cand
        if not taken(full):
            return full
        n += 1


def seed(target: SyncTarget, wait: float = 10.0, sources=SOURCES) -> SyncReport:  # noqa: ANN001
    """Copy the shared folders into the home (see module docstring)."""
    from .remote import Remote

    start = time.monotonic()
    report = SyncReport("seed", f"s3://{target.bucket}/")
    report.remote_calls = True
    with SyncLock(target.lock_path, wait), State(target.state_path) as state, Remote(target) as remote:
        clean_tmp(target)
        target.tmp_dir.mkdir(parents=True, exist_ok=True)
        run = Run(target, state, report, None)
        for src, dest, mode in sources:
            for obj in remote.list(src + "/"):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                try:
                    _seed_one(run, remote, obj, rel_for_key(src, key), dest, mode)
                except UnsafeKey as exc:
                    run.error(key, f"refused to seed: {exc}")
                except Exception as exc:  # noqa: BLE001 - reported per file
                    run.error(key, f"could not seed: {exc}")
                state.commit()
        state.set_meta("last_seed", now_iso())
    report.seconds = time.monotonic() - start
    return report


def _download(run: Run, remote, obj: dict, mode: int | None) -> str:  # noqa: ANN001
    tmp = run.tmp_path()
    remote.download(obj["Key"], tmp, obj["Size"], obj["ETag"]).result()
    if mode is not None:
        os.chmod(tmp, mode)
    apply_mtime(tmp, remote.metadata.get(obj["Key"]), obj.get("LastModified"))
    return tmp


def _seed_one(run: Run, remote, obj: dict, rel: str, dest: str, mode: int | None) -> None:  # noqa: ANN001
    t, state, report = run.target, run.state, run.report
    dest_rel = f"{dest}/{rel}"
    path = run.guard.path(dest_rel)
    etag, key = obj["ETag"], obj["Key"]
    rec = state.seeded(dest_rel)
    lst = lstat_or_none(path)
    if lst is None:
        tmp = _download(run, remote, obj, mode)
        place_new(run, tmp, path)
        st = os.stat(path)
        state.put_seeded(dest_rel, key, etag, hash_file(path, t.multipart_chunksize, t.multipart_threshold)[0], st)
        report.downloaded.append(dest_rel)
        return
    if not stat_mod.S_ISREG(lst.st_mode):
        run.error(dest_rel, "cannot seed: something that is not a regular file is in the way")
        return
    if rec and (rec["etag"] == etag or rec["offered_etag"] == etag):
        report.unchanged += 1
        return
    same_stat = rec and (rec["size"], rec["mtime_ns"], rec["ino"], rec["ctime_ns"]) == signature(lst)
    md5, local_etag = (rec["md5"], "") if same_stat else hash_file(path, t.multipart_chunksize,
                                                                   t.multipart_threshold)
    if local_etag == etag:
        state.put_seeded(dest_rel, key, etag, md5, lst)
        report.unchanged += 1
        return
    edited = rec is None or md5 != rec["md5"]
    tmp = _download(run, remote, obj, mode)
    if not edited and same_file(lstat_or_none(path), lst):
        os.replace(tmp, path)
        state.put_seeded(dest_rel, key, etag, hash_file(path, t.multipart_chunksize, t.multipart_threshold)[0],
                         os.stat(path))
        report.downloaded.append(dest_rel)
        return
    beside = new_version_name(dest_rel, lambda r: os.path.lexists(t.home / r))
    place_new(run, tmp, run.guard.path(beside))
    if rec is None:
        state.put_seeded(dest_rel, key, "", md5, lst, offered=etag)
    else:
        state.set_offered(dest_rel, etag)
    text = (f"{dt.date.today().isoformat()}: {Path(dest_rel).name} has a new shared version; you had edited "
            f"yours, so it was kept and the new one saved beside it as {Path(beside).name!r}.")
    notes = run.guard.path(f"{Path(dest_rel).parent.as_posix()}/{NOTES_FILE}")
    with open(notes, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    report.downloaded.append(beside)
    report.notes.append({"path": dest_rel, "note": text})
