"""Empty directories as folder markers: the zero-byte object ``<prefix>/<dir>/`` that the S3
console makes for "Create folder" (S3 user guide, "Organizing objects using folders").

A directory with nothing inside to back up gets one, so an empty ``results/`` (or git's empty
``.git/refs/tags/``) comes back on restore. In the state a marker is the row ``<dir>/``; the
directory's stat is recorded but not compared (a marker has no content to change). A marker
stays in S3 when files appear in its directory (harmless, as with the console's folders) and
goes to the remote trash with ``--delete`` once the directory itself is gone.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import TYPE_CHECKING, Any, Iterable

from .keys import UnsafeKey, key_for, rel_for_key
from .state import FileState

if TYPE_CHECKING:
    from .remote import Remote
    from .run import Run

#: md5 of zero bytes, and the ETag S3 gives a zero-byte object.
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
EMPTY_ETAG = f'"{EMPTY_MD5}"'


def marker(rel_dir: str) -> str:
    """The state row / key suffix of directory ``rel_dir``: ``results/empty`` -> ``results/empty/``."""
    return rel_dir + "/"


def is_marker(rel: str) -> bool:
    return rel.endswith("/")


def new_markers(dirs: Iterable[str], known: dict[str, FileState]) -> list[str]:
    """The empty directories (home-relative, no trailing ``/``) whose marker is not in S3 yet."""
    return sorted(d for d in dirs if marker(d) not in known)


def put_markers(run: Run, remote: Remote, dirs: dict[str, Any], todo: list[str]) -> None:
    """Create the markers of ``todo`` (``If-None-Match: *``: one already there is kept as is),
    ``target.concurrency`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from .remote import is_precondition_failed

    t = run.target

    def put(key: str) -> tuple[str, bool]:
        """(ETag, created)."""
        try:
            resp = remote.client.put_object(Bucket=t.bucket, Key=key, Body=b"", IfNoneMatch="*",
                                            Metadata={"origin": run.origin})
        except Exception as exc:
            if is_precondition_failed(exc):
                return EMPTY_ETAG, False  # a marker is already there (another machine, the console)
            raise
        return resp.get("ETag") or EMPTY_ETAG, True

    keys = {}
    for rel in todo:
        try:
            keys[rel] = key_for(t.prefix, marker(rel))
        except UnsafeKey as exc:
            run.error(marker(rel), f"cannot back up the empty directory: {exc}")
    if not keys:
        return
    with ThreadPoolExecutor(max_workers=min(t.concurrency, len(keys))) as pool:
        futures = {rel: pool.submit(put, key) for rel, key in keys.items()}
    for rel, fut in futures.items():  # recorded here, in one thread: the state is not shared
        try:
            etag, created = fut.result()
        except Exception as exc:  # noqa: BLE001 - reported per directory, the run goes on
            run.error(marker(rel), f"could not back up the empty directory: {exc}")
            continue
        run.record(marker(rel), dirs[rel], EMPTY_MD5, etag)
        if created:
            run.report.uploaded.append(marker(rel))
        else:
            run.report.unchanged += 1


def restore_marker(run: Run, key: str, etag: str) -> None:
    """Make the directory of marker ``key`` (parents included) unless it exists already."""
    t = run.target
    try:
        rel = rel_for_key(t.prefix, key[:-1])
        path = run.guard.path(rel)
    except UnsafeKey as exc:
        run.error(key, f"refused to restore: {exc}")
        return
    if t.matcher.excluded(rel, True):
        return
    row = marker(rel)
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        lst = None
    except OSError as exc:
        run.error(row, f"cannot check the local directory: {exc.strerror}")
        return
    if lst is not None and not stat_mod.S_ISDIR(lst.st_mode):
        run.error(row, "cannot restore the empty directory: something that is not a directory is in the way locally")
        return
    if lst is None:
        try:
            run.guard.make_parent(path)
            path.mkdir()
        except OSError as exc:
            run.error(row, f"cannot create the directory: {exc.strerror}")
            return
        run.report.downloaded.append(row)
    else:
        run.report.unchanged += 1
    run.record(row, os.lstat(path), EMPTY_MD5, etag)
