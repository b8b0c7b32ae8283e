"""Backup, restore and status: the decisions. S3 calls go through :mod:`.remote`.

Rules that keep data safe:

* a file is uploaded only if its stat signature changed *and* its md5 differs from the state;
  the upload is conditional (``If-Match`` the ETag we last synced, or ``If-None-Match: *`` for
  a file we never synced), so a remote change made elsewhere is never overwritten blindly;
* when both sides changed, the local file keeps its name and the remote version is saved
  beside it as ``name (conflict YYYY-MM-DD HHMM from s3).ext``; both are then uploaded;
* restore downloads into a staging folder on the same filesystem and renames into place
  (no partial file at the real path, even after ``kill -9``), restores the original mtime,
  and never replaces a local file that changed since the last sync;
* ``--delete`` copies an object to ``<prefix>/.hail-emr-lab-trash/<UTC time>/`` before deleting it.

Crash safety (``kill -9`` at any moment, then any later run converges):

* a restore commits a ``placed`` intent (bytes' md5, the object's ETag) before putting a file in
  place, so a file whose bytes are what a killed restore wrote is not taken for a local edit;
* a backup commits an ``upload`` intent before sending; a file whose interrupted upload had the
  same bytes is checked with one HEAD (ETag and size; our ``md5`` metadata only where the ETag is
  no MD5) before being sent again;
* multipart uploads of a killed run are aborted by the next run (see :mod:`.journal`);
* one conflict copy per distinct content: an existing ``(conflict ...)`` copy with the same bytes
  is reused, and once the remote version is kept beside the file, the file's row remembers that
  ETag, so the next backup replaces it instead of making another copy.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat as stat_mod
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..paths import unsafe_reason, within
from . import markers, server_facts
from .excludes import environments_in, inside
from .journal import UploadJournal, journal_path
from .keys import TRASH_DIRNAME, UnsafeKey, key_for, rel_for_key
from .lock import SyncLock, is_locked
from .progress import Progress
from .report import SyncReport
from .run import COMMIT_EVERY, Run, apply_mtime, clean_tmp, lstat_or_none, now_iso, place_new, same_file
from .scan import gone_locally, hash_file, scan_home, skipped_text, stat_one
from .state import FileState, Intent, State
from .target import SyncTarget, ensure_home

if TYPE_CHECKING:  # boto3 is imported only when there is work to do
    from .remote import Remote

#: How many pending paths ``status`` lists (the count is always exact).
STATUS_PENDING_LIMIT = 1000


def conflict_name(rel: str, taken: Callable[[str], bool], source: str = "s3") -> str:
    """``dir/analysis.ipynb`` -> ``dir/analysis (conflict 2026-11-21 1203 from s3).ipynb``."""
    head, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H%M")
    n = 1
    while True:
        extra = f" {n}" if n > 1 else ""
        candidate = f"{stem} (conflict {stamp} from {source}{extra}){suffix}"
        full = f"{head}/{candidate}" if head else candidate
        if not taken(full):
            return full
        n += 1


def _copy_pattern(rel: str, source: str = "s3") -> tuple[str, re.Pattern[str]]:
    """(directory, regex of the names :func:`conflict_name` gives ``rel``'s copies)."""
    head, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    pattern = (re.escape(stem) + r" \(conflict \d{4}-\d{2}-\d{2} \d{4} from " + re.escape(source)
               + r"(?: \d+)?\)" + re.escape(suffix))
    return head, re.compile(pattern)


def existing_copy(target: SyncTarget, rel: str, size: int, md5: str | None = None,
                  etag: str | None = None) -> str | None:
    """An existing conflict copy of ``rel`` holding the same bytes (``size`` bytes with this
    ``md5``, or whose S3 ETag would be ``etag``), so no second copy of one content is made."""
    head, pattern = _copy_pattern(rel)
    folder = target.home / head if head else target.home
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in sorted(entries, key=lambda e: e.name):
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_size != size:
                continue
            cmd5, cetag = hash_file(entry.path, target.multipart_chunksize, target.multipart_threshold)
        except OSError:
            continue
        if (md5 and cmd5 == md5) or (etag and cetag == etag):
            return f"{head}/{entry.name}" if head else entry.name
    return None


@dataclass
class _Upload:
    rel: str
    st: Any
    md5: str
    etag: str  # the ETag S3 will give this content
    condition: tuple[str, str]


# ------------------------------------------------------------------------------------------
# backup
# ------------------------------------------------------------------------------------------
#: Seconds between two listings of the prefix by a whole-home backup (see :func:`backup`'s ``verify``).
VERIFY_INTERVAL = 24 * 3600


def backup(target: SyncTarget, delete: bool = False, paths: Iterable[Path | str] | None = None,
           wait: float = 10.0, progress: Callable[[str, int, int], Progress] | None = None,
           verify: bool | None = None) -> SyncReport:
    """Upload what changed since the last sync (only ``paths`` if given).

    Makes no S3 request (and does not import boto3) when nothing changed, except that a
    whole-home backup lists the prefix once every :data:`VERIFY_INTERVAL` seconds (``verify``
    None; True: now; False: never) and uploads again every unchanged file whose object is gone
    from S3 (deleted by hand, by another tool or by a lifecycle rule): the state alone would call
    it backed up. ``delete`` moves remote objects whose local file was deleted into the remote
    trash. Raises :class:`.remote.RemoteUnavailable` when S3 cannot be used at all (missing
    bucket, unreachable endpoint, credentials refused): one message, not one error per file.
    """
    start = time.monotonic()
    report = SyncReport("backup", target.url)
    with SyncLock(target.lock_path, wait) as lock, State(target.state_path) as state:
        run = Run(target, state, report, progress)
        known = state.all_files()
        if paths is None:
            scan = scan_home(target.home, target.matcher)
            files, dirs = scan.files, scan.dirs
            report.notes += scan.notes
            report.errors += scan.errors
            gone = sorted(r for r in known if gone_locally(scan, target.home, target.matcher, r))
        else:
            (files, dirs), gone = _stat_paths(target, paths, report), []
        uploads = _changed(run, files, known)
        facts = server_facts.known_facts(state)
        new_dirs = markers.new_markers(dirs, known) if facts is None or facts.folder_markers else []
        trash = [r for r in gone if os.path.lexists(target.home / r) is False] if delete else []
        interrupted = UploadJournal(journal_path(target)).path.exists()
        listing = paths is None and _verify_due(state, verify)
        if uploads or trash or new_dirs or interrupted or listing:
            from .remote import Remote

            report.remote_calls = True
            with Remote(target) as remote:
                try:
                    facts = server_facts.server_facts(state, remote)
                    _abort_interrupted(run, remote, lock)
                    if listing:
                        uploads += _gone_remotely(run, remote, files, known, {u.rel for u in uploads})
                    _upload_all(run, remote, uploads)
                    if facts.folder_markers:
                        markers.put_markers(run, remote, dirs, new_dirs)
                    if trash:
                        _trash(run, remote, trash, known)
                        _purge_trash(run, remote)
                except Exception as exc:
                    _raise_run_wide("backup", run, remote, exc)
                    raise
        state.set_meta("last_backup", now_iso())
        state.set_meta("last_backup_result", {"errors": report.errors[:100], "notes": report.notes[:100],
                                               "uploaded": len(report.uploaded)})
    report.seconds = time.monotonic() - start
    return report


def _verify_due(state: State, verify: bool | None) -> bool:
    """Is a listing of the prefix due (``verify`` None: when the last is older than a day)?"""
    if verify is not None:
        return verify
    last = state.meta("last_listing")
    return not isinstance(last, (int, float)) or time.time() - last >= VERIFY_INTERVAL


def _gone_remotely(run: Run, remote: Remote, files: dict[str, Any], known: dict[str, FileState],
                   queued: set[str]) -> list[_Upload]:
    """The unchanged files whose object is no longer in S3: uploaded again (``If-None-Match: *``:
    an object that appears meanwhile is a remote change, handled as a conflict)."""
    t = run.target
    keys = {o["Key"] for o in remote.list(t.prefix + "/")}
    run.state.set_meta("last_listing", time.time())
    out = []
    for rel, st in files.items():
        k = known.get(rel)
        if rel in queued or k is None or not k.same_stat(st) or key_for(t.prefix, rel) in keys:
            continue
        out.append(_Upload(rel, st, k.md5, k.etag, ("IfNoneMatch", "*")))
        run.report.notes.append({"path": rel, "note": "uploaded again: its object was gone from S3"})
    return out


def _raise_run_wide(action: str, run: Run, remote: Remote, exc: BaseException) -> None:
    """If ``exc`` means S3 cannot be used at all, record it and raise the one clear message."""
    from .remote import remote_failure

    failure = remote_failure(action, run.target, exc, remote.client.meta.endpoint_url,
                             any_error=action == "restore")
    if failure is None:
        return
    run.state.set_meta(f"last_{action}_result", {"errors": [{"path": run.target.url, "error": str(failure)}],
                                                   "notes": run.report.notes[:100]})
    raise failure from None


def _abort_interrupted(run: Run, remote: Remote, lock: SyncLock) -> None:
    """Abort the multipart uploads killed runs of this home left in S3."""
    aborted, problems = remote.abort_interrupted_uploads(lock.acquired_at or time.time())
    run.report.aborted_uploads += aborted
    run.report.notes += [{"path": run.target.url, "note": p} for p in problems]


def _stat_paths(target: SyncTarget, paths: Iterable[Path | str],
                report: SyncReport) -> tuple[dict[str, Any], dict[str, Any]]:
    """(files, empty directories) among ``paths``, each rel -> stat."""
    files: dict[str, Any] = {}
    dirs: dict[str, Any] = {}
    for p in paths:
        try:
            rel, st, problem = stat_one(target.home, Path(p), target.matcher)
        except UnsafeKey as exc:
            report.errors.append({"path": str(p), "error": str(exc)})
            continue
        except OSError as exc:
            report.errors.append({"path": str(p), "error": f"cannot read: {exc.strerror}"})
            continue
        if problem == "directory":
            if next(os.scandir(p), None) is None:  # one with files: they come as their own paths
                dirs[rel] = st
        elif st is not None:
            files[rel] = st
        elif problem not in ("excluded", "missing"):
            report.notes.append({"path": rel, "note": problem or "skipped"})
    return files, dirs


def _changed(run: Run, files: dict[str, Any], known: dict[str, FileState]) -> list[_Upload]:
    """Hash the files whose stat changed; those whose content changed need an upload."""
    t = run.target
    placed = run.state.intents("placed")
    out: list[_Upload] = []
    for rel, st in files.items():
        k = known.get(rel)
        if k is not None and k.same_stat(st):
            run.report.unchanged += 1
            continue
        try:
            md5, etag = hash_file(t.home / rel, t.multipart_chunksize, t.multipart_threshold)
        except OSError as exc:
            run.error(rel, f"cannot read: {exc.strerror}")
            continue
        came = placed.get(rel)
        if came is not None and came.md5 == md5:
            run.record(rel, st, md5, came.etag)  # put there by a killed restore: from S3, no edit
            run.report.unchanged += 1
            continue
        if came is not None:
            run.state.drop_intent(rel, "placed")  # never placed, or edited since
        if k is not None and k.md5 == md5:
            run.record(rel, st, md5, k.etag)  # touched, not changed
            run.report.unchanged += 1
            continue
        cond = ("IfMatch", k.etag) if k is not None else ("IfNoneMatch", "*")
        out.append(_Upload(rel, st, md5, etag, cond))
    return out


def _same_bytes(head: dict[str, Any], md5: str, etag: str, size: int) -> bool:
    """Does the object of this HEAD answer hold the ``size`` bytes with ``md5`` (whose ETag is
    ``etag``)?

    Our ``md5`` metadata is sent with the request's headers, before the body, so it proves
    nothing about the bytes: a run killed while sending the body can leave, on a server that
    keeps what it got, an object with our metadata and a cut-off body. It is trusted only for
    an object of the right size whose ETag is not an MD5 we can compare: S3's ETag of a
    single-part object is the MD5 of its bytes unless it is encrypted with SSE-KMS or SSE-C
    (S3 User Guide, "Checking object integrity"); a multipart one is not, and its part size
    may differ from ours."""
    if head.get("ETag") == etag:
        return True
    if head.get("ContentLength") != size:
        return False
    tag = str(head.get("ETag") or "").strip('"')
    encrypted = str(head.get("ServerSideEncryption") or "").startswith("aws:kms") or "SSECustomerAlgorithm" in head
    if "-" not in tag and not encrypted:
        return tag == md5
    return (head.get("Metadata") or {}).get("md5") == md5


def _already_sent(run: Run, remote: Remote, uploads: list[_Upload]) -> list[_Upload]:
    """Drop the uploads a killed run already completed (same bytes, bookkeeping lost): one HEAD
    each, only for files with such an intent, instead of sending them again in full."""
    earlier = run.state.intents("upload")
    todo = []
    for u in uploads:
        before: Intent | None = earlier.get(u.rel)
        if before is not None and before.md5 == u.md5:
            head = remote.head(key_for(run.target.prefix, u.rel))
            if head is not None and _same_bytes(head, u.md5, u.etag, u.st.st_size):
                run.record(u.rel, u.st, u.md5, head["ETag"])
                run.report.unchanged += 1
                continue
        todo.append(u)
    return todo


def _upload_all(run: Run, remote: Remote, uploads: list[_Upload]) -> None:
    from .remote import is_precondition_failed, remote_failure

    t = run.target
    uploads = _already_sent(run, remote, uploads)
    if not uploads:
        return
    run.state.put_intents("upload", [(u.rel, u.md5, u.etag, u.st.st_size) for u in uploads])
    bar = run.progress("backup", len(uploads), sum(u.st.st_size for u in uploads))
    futures = []
    for u in uploads:
        key = key_for(t.prefix, u.rel)
        meta = run.upload_meta(u.st, u.md5)
        futures.append((u, remote.upload(str(t.home / u.rel), key, u.condition, meta, bar.add_bytes,
                                         md5=u.md5, expect_etag=u.etag)))
    lost: list[_Upload] = []
    run_wide: BaseException | None = None
    for u, fut in futures:
        try:
            stored = fut.result()
        except Exception as exc:  # noqa: BLE001 - reported per file, the run goes on
            if is_precondition_failed(exc) or (u.condition[0] == "IfMatch" and _missing(exc)):
                lost.append(u)
            elif remote_failure("backup", t, exc) is not None:
                run_wide = run_wide or exc
            else:
                run.error(u.rel, f"upload failed: {exc}")
            continue
        finally:
            bar.file_done()
        run.record(u.rel, u.st, u.md5, stored or u.etag)
        run.report.uploaded.append(u.rel)
        run.report.bytes += u.st.st_size
    bar.finish()
    if run_wide is not None:
        raise run_wide
    for u in lost:
        try:
            _resolve_backup_conflict(run, remote, u)
        except Exception as exc:  # noqa: BLE001
            run.error(u.rel, f"could not resolve a remote change: {exc}")


def _missing(exc: BaseException) -> bool:
    from .remote import is_missing

    return is_missing(exc)


def _upload_now(run: Run, remote: Remote, rel: str, st: Any, md5: str, etag: str,
                condition: tuple[str, str]) -> None:
    key = key_for(run.target.prefix, rel)
    run.state.put_intents("upload", [(rel, md5, etag, st.st_size)])
    stored = remote.upload(str(run.target.home / rel), key, condition, run.upload_meta(st, md5),
                           md5=md5, expect_etag=etag).result()
    run.record(rel, st, md5, stored or etag)
    run.report.uploaded.append(rel)
    run.report.bytes += st.st_size


def _resolve_backup_conflict(run: Run, remote: Remote, u: _Upload) -> None:
    """Our conditional upload lost: the object changed (or appeared/vanished) remotely."""
    t = run.target
    key = key_for(t.prefix, u.rel)
    head = remote.head(key)
    if head is None:  # deleted remotely since our last sync: the local file is the only copy
        _upload_now(run, remote, u.rel, u.st, u.md5, u.etag, ("IfNoneMatch", "*"))
        return
    if _same_bytes(head, u.md5, u.etag, u.st.st_size):  # already there (e.g. a killed run uploaded it): converge
        run.record(u.rel, u.st, u.md5, head["ETag"])
        run.report.unchanged += 1
        return
    if (head.get("Metadata") or {}).get("origin") == run.origin:
        # Our own upload whose bookkeeping a crash lost; the local file is its successor.
        _upload_now(run, remote, u.rel, u.st, u.md5, u.etag, ("IfMatch", head["ETag"]))
        return
    # Both changed: keep the remote version beside the local file (once per content), then
    # upload both.
    size = head["ContentLength"]
    copy_rel = existing_copy(t, u.rel, size, (head.get("Metadata") or {}).get("md5"), head["ETag"])
    if copy_rel is None:
        tmp = run.tmp_path()
        t.tmp_dir.mkdir(parents=True, exist_ok=True)
        try:
            md5 = remote.download(key, tmp, size, head["ETag"]).result()
            copy_rel = existing_copy(t, u.rel, size, md5)
            if copy_rel is None:
                apply_mtime(tmp, remote.metadata.get(key), head.get("LastModified"))
                copy_rel = conflict_name(u.rel, lambda r: os.path.lexists(t.home / r) or bool(run.state.get(r)))
                copy_path = run.guard.path(copy_rel)
                place_new(run, tmp, copy_path)
                cst = os.stat(copy_path)
                cmd5, cetag = hash_file(copy_path, t.multipart_chunksize, t.multipart_threshold)
                _upload_now(run, remote, copy_rel, cst, cmd5, cetag, ("IfNoneMatch", "*"))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    run.remote_kept(u.rel, head["ETag"])
    _upload_now(run, remote, u.rel, u.st, u.md5, u.etag, ("IfMatch", head["ETag"]))
    _conflict(run, u.rel, copy_rel, "changed both locally and in S3 since the last sync")


def _conflict(run: Run, rel: str, copy_rel: str, reason: str) -> None:
    entry = {"path": rel, "conflict_copy": copy_rel, "time": now_iso(), "reason": reason}
    run.report.conflicts.append(entry)
    run.state.add_conflict(rel, copy_rel, entry["time"], reason)


def _trash(run: Run, remote: Remote, gone: list[str], known: dict[str, FileState]) -> None:
    """Move objects of locally deleted files under ``<prefix>/.hail-emr-lab-trash/<time>/``."""
    from ..aws_errors import error_code
    from .remote import is_missing, is_precondition_failed

    t = run.target
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for rel in gone:
        src = key_for(t.prefix, rel)
        dst = f"{t.prefix}/{TRASH_DIRNAME}/{stamp}/{rel}"
        etag = known[rel].etag
        try:
            remote.manager.copy({"Bucket": t.bucket, "Key": src}, t.bucket, dst,
                                extra_args={"CopySourceIfMatch": etag}).result()
            try:
                remote.client.delete_object(Bucket=t.bucket, Key=src, IfMatch=etag)
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) not in ("NotImplemented", "501"):
                    raise
                remote.client.delete_object(Bucket=t.bucket, Key=src)
        except Exception as exc:  # noqa: BLE001
            if is_precondition_failed(exc):
                run.report.notes.append({"path": rel, "note": "changed in S3 since the last sync: not deleted"})
            elif not is_missing(exc):
                run.error(rel, f"could not move to the remote trash: {exc}")
                continue
        run.state.forget(rel)
        run.report.trashed.append(rel)


def _purge_trash(run: Run, remote: Remote) -> None:
    """Delete trash folders older than the retention (only on ``--delete`` runs)."""
    t = run.target
    base = f"{t.prefix}/{TRASH_DIRNAME}/"
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=t.trash_retention_days)
    pages = remote.client.get_paginator("list_objects_v2").paginate(Bucket=t.bucket, Prefix=base, Delimiter="/")
    for page in pages:
        for cp in page.get("CommonPrefixes", []):
            stamp = cp["Prefix"][len(base) :].rstrip("/")
            try:
                when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
            except ValueError:
                continue
            if when >= cutoff:
                continue
            keys = [o["Key"] for o in remote.list(cp["Prefix"])]
            for i in range(0, len(keys), 1000):
                remote.client.delete_objects(
                    Bucket=t.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                )


# ------------------------------------------------------------------------------------------
# restore
# ------------------------------------------------------------------------------------------
@dataclass
class _Download:
    rel: str
    key: str
    size: int
    etag: str
    last_modified: Any
    expect: Any  # local lstat we decided on (None: the file must not exist)
    conflict: bool  # write beside the local file instead of replacing it


def restore(target: SyncTarget, wait: float = 10.0,
            progress: Callable[[str, int, int], Progress] | None = None,
            paths: Iterable[Path | str] | None = None) -> SyncReport:
    """Bring the home up to date with S3 without ever losing a local change.

    ``paths`` (files or directories, absolute or relative to the home) limits the restore to
    those; each is listed under its own key prefix, so restoring one file lists one key.
    Raises :class:`.remote.RemoteUnavailable` when the listing fails (missing bucket,
    unreachable endpoint, credentials refused): one message, nothing changed locally.
    """
    from .remote import Remote

    start = time.monotonic()
    report = SyncReport("restore", target.url)
    report.remote_calls = True
    if ensure_home(target):  # before the lock, which lives in the home by default
        report.notes.append({"path": str(target.home), "note": "created the home directory (it did not exist)"})
    with SyncLock(target.lock_path, wait) as lock, State(target.state_path) as state, Remote(target) as remote:
        clean_tmp(target)
        run = Run(target, state, report, progress)
        try:
            _abort_interrupted(run, remote, lock)
            if paths is None:
                objects = remote.list(target.prefix + "/")
            else:
                objects = []
                for rel in _restore_rels(target, paths, report):
                    key = f"{target.prefix}/{rel}"
                    objects += [o for o in remote.list(key) if o["Key"] == key or o["Key"].startswith(key + "/")]
        except Exception as exc:
            _raise_run_wide("restore", run, remote, exc)
            raise
        plan = _plan_restore(run, objects)
        if plan:
            _download_all(run, remote, plan)
        state.set_meta("last_restore", now_iso())
        state.set_meta("last_restore_result", {"errors": report.errors[:100], "notes": report.notes[:100],
                                                "downloaded": len(report.downloaded)})
    report.seconds = time.monotonic() - start
    return report


def _restore_rels(target: SyncTarget, paths: Iterable[Path | str], report: SyncReport) -> list[str]:
    """Home-relative key names for the paths given to restore; refused ones are reported."""
    rels = []
    home = os.path.abspath(target.home)
    for p in paths:
        full = os.path.abspath(os.path.join(home, os.fspath(p)))
        rel = os.path.relpath(full, home).replace(os.sep, "/")
        reason = unsafe_reason(rel) if rel != "." else "is the home itself (restore without paths instead)"
        if reason:
            report.errors.append({"path": str(p), "error": f"not restored: {rel!r} {reason}"})
            continue
        rels.append(rel)
    return rels


def _plan_restore(run: Run, objects: list[dict[str, Any]]) -> list[_Download]:
    """What to download, decided per object against the local file and the state."""
    known = run.state.all_files()
    placed = run.state.intents("placed")
    plan: list[_Download] = []
    for obj in _restorable(run, objects):
        dl = _plan_object(run, obj, known, placed)
        if dl is not None:
            plan.append(dl)
    return plan


def _restorable(run: Run, objects: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """The objects that are files of the home: not the trash, not an environment's files; empty
    directory markers are restored on the way."""
    t = run.target
    trash = f"{t.prefix}/{TRASH_DIRNAME}/"
    cut = len(t.prefix) + 1
    envs = set() if t.matcher.environments else environments_in([o["Key"][cut:] for o in objects])
    for obj in objects:
        key = obj["Key"]
        if key.startswith(trash) or (envs and inside(key[cut:], envs)):
            continue
        if key.endswith("/") and obj.get("Size", 0) == 0:  # an empty directory (a folder marker)
            if key != t.prefix + "/":
                markers.restore_marker(run, key, obj["ETag"])
            continue
        yield obj


def _plan_object(run: Run, obj: dict[str, Any], known: dict[str, FileState],
                 placed: dict[str, Any]) -> _Download | None:
    """The download for one object, or None (unchanged, refused, or kept as it is)."""
    t = run.target
    key = obj["Key"]
    try:
        rel = rel_for_key(t.prefix, key)
        path = run.guard.path(rel)
    except UnsafeKey as exc:
        run.error(key, f"refused to restore: {exc}")
        return None
    if t.matcher.excluded(rel):
        return None
    dl = _Download(rel, key, obj["Size"], obj["ETag"], obj.get("LastModified"), None, False)
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return dl
    except OSError as exc:
        run.error(rel, f"cannot check the local file: {exc.strerror}")
        return None
    if not stat_mod.S_ISREG(lst.st_mode):
        run.error(rel, "cannot restore: something that is not a regular file is in the way locally")
        return None
    dl.expect = lst
    k = known.get(rel)
    if k is not None and k.same_stat(lst):
        if k.etag == dl.etag:
            run.report.unchanged += 1
            return None
        return dl  # only the remote changed
    return _plan_changed_local(run, dl, path, k, placed.get(rel))


def _plan_changed_local(run: Run, dl: _Download, path: Path, k: FileState | None, came: Any) -> _Download | None:
    """A local file whose stat changed since the last sync: compare bytes to decide."""
    t = run.target
    rel, etag = dl.rel, dl.etag
    lst = dl.expect
    try:
        md5, local_etag = hash_file(path, t.multipart_chunksize, t.multipart_threshold)
    except OSError as exc:
        run.error(rel, f"cannot read the local file: {exc.strerror}")
        return None
    if came is not None and came.md5 == md5:
        # A killed restore put these bytes here (S3's version came.etag): not a local edit.
        k = FileState(rel, lst.st_size, lst.st_mtime_ns, lst.st_ino, md5, came.etag, lst.st_ctime_ns)
        run.record(rel, lst, md5, came.etag)
    elif came is not None:
        run.state.drop_intent(rel, "placed")  # never placed, or replaced since: forget it
    if local_etag == etag or (k is not None and k.md5 == md5 and k.etag == etag):
        run.record(rel, lst, md5, etag)
        run.report.unchanged += 1
        return None
    if k is not None and k.md5 == md5:
        return dl  # local untouched (only its stat changed), remote changed
    if k is not None and k.etag == etag:
        run.report.notes.append({"path": rel, "note": "changed locally since the last backup: kept"})
        return None
    copy_rel = existing_copy(t, rel, dl.size, etag=etag)
    if copy_rel is not None:  # this remote version is already kept beside the file
        run.remote_kept(rel, etag)
        _conflict(run, rel, copy_rel, "changed locally and in S3 since the last sync")
        return None
    dl.conflict = True
    return dl


def _download_all(run: Run, remote: Remote, plan: list[_Download]) -> None:
    t = run.target
    t.tmp_dir.mkdir(parents=True, exist_ok=True)
    bar = run.progress("restore", len(plan), sum(d.size for d in plan))
    futures = []
    for d in plan:
        tmp = run.tmp_path()
        futures.append((d, tmp, remote.download(d.key, tmp, d.size, d.etag, bar.add_bytes)))
    i = 0
    while i < len(futures):
        # The next download, and those after it already finished: one commit of their intents.
        batch = [futures[i]]
        i += 1
        while i < len(futures) and len(batch) < COMMIT_EVERY and futures[i][2].done():
            batch.append(futures[i])
            i += 1
        ready = []
        for d, tmp, fut in batch:
            try:
                ready.append((d, tmp, fut.result()))  # bytes checked against the ETag: md5 hex
            except Exception as exc:  # noqa: BLE001 - reported per file, the run goes on
                run.error(d.rel, f"download failed: {exc}")
                _drop(tmp)
                bar.file_done()
        # Committed before any of them is in place: if we die while placing them, the next run
        # knows these bytes came from S3.
        run.state.put_intents("placed", [(d.rel, md5, d.etag, d.size) for d, _, md5 in ready if not d.conflict])
        for d, tmp, md5 in ready:
            try:
                _finish_download(run, remote, d, tmp, md5)
            except Exception as exc:  # noqa: BLE001 - reported per file, the run goes on
                run.error(d.rel, f"download failed: {exc}")
            finally:
                _drop(tmp)
                bar.file_done()
    bar.finish()


def _drop(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)


def _finish_download(run: Run, remote: Remote, d: _Download, tmp: str, md5: str) -> None:
    """Put a verified download in place (its ``placed`` intent is committed already)."""
    t = run.target
    apply_mtime(tmp, remote.metadata.get(d.key), d.last_modified)
    path = run.guard.path(d.rel)
    current = lstat_or_none(path)
    changed_meanwhile = not same_file(current, d.expect)
    if d.conflict or changed_meanwhile:
        copy_rel = existing_copy(t, d.rel, d.size, md5)
        if copy_rel is None:
            copy_rel = conflict_name(d.rel, lambda r: os.path.lexists(t.home / r))
            place_new(run, tmp, run.guard.path(copy_rel))
            run.report.downloaded.append(copy_rel)
        run.remote_kept(d.rel, d.etag)
        why = "changed locally and in S3 since the last sync" if d.conflict else "changed locally during the restore"
        _conflict(run, d.rel, copy_rel, why)
        return
    if d.expect is None:
        place_new(run, tmp, path)
    else:
        os.replace(tmp, path)
    run.record(d.rel, os.stat(path), md5, d.etag)
    run.report.downloaded.append(d.rel)
    run.report.bytes += d.size


# ------------------------------------------------------------------------------------------
# status
# ------------------------------------------------------------------------------------------
def status(target: SyncTarget) -> dict[str, Any]:
    """What the sidebar shows: last runs, files changed since the last backup, conflicts.

    Local only (no S3 request): compares the home against the state.
    """
    scan = scan_home(target.home, target.matcher)
    with State(target.state_path) as state:
        known = state.all_files()
        facts = server_facts.known_facts(state)
        new_dirs = markers.new_markers(scan.dirs, known) if facts is None or facts.folder_markers else []
        pending = sorted([r for r, st in scan.files.items() if r not in known or not known[r].same_stat(st)]
                         + [markers.marker(d) for d in new_dirs])
        deleted = sorted(r for r in known if gone_locally(scan, target.home, target.matcher, r))
        last_b = state.meta("last_backup_result", {}) or {}
        last_r = state.meta("last_restore_result", {}) or {}
        out = {
            "home": str(target.home),
            "bucket": target.bucket,
            "prefix": target.prefix,
            "url": target.url,
            "last_backup": state.meta("last_backup"),
            "last_restore": state.meta("last_restore"),
            "pending": pending[:STATUS_PENDING_LIMIT],
            "pending_count": len(pending),
            "deleted_locally": deleted[:STATUS_PENDING_LIMIT],
            "deleted_locally_count": len(deleted),
            "synced_count": len(known),
            "conflicts": state.conflicts(),
            "errors": _dedupe(list(last_b.get("errors", [])) + list(last_r.get("errors", [])) + scan.errors),
            "notes": scan.notes,
            "server_limits": server_facts.degradations(facts),
            "folder_markers": facts is None or facts.folder_markers,  # empty dirs are kept
            "empty_dirs": sorted(scan.dirs)[:STATUS_PENDING_LIMIT],
            "empty_dirs_count": len(scan.dirs),
            "skipped": scan.skipped_counts(),
            "skipped_text": skipped_text(scan.skipped_counts()),
            "skipped_dirs": sorted(d for ds in scan.skipped.values() for d in ds)[:STATUS_PENDING_LIMIT],
            "running": is_locked(target.lock_path),
        }
    return out


def _dedupe(items: list[dict[str, str]]) -> list[dict[str, str]]:
    seen, out = set(), []
    for item in items:
        marker = tuple(sorted(item.items()))
        if marker not in seen:
            seen.add(marker)
            out.append(item)
    return out


def within_home(target: SyncTarget, path: Path) -> bool:
    """True if ``path`` (resolved) is inside the target's home."""
    return within(os.path.realpath(target.home), os.path.realpath(path))
