"""``hail-emr-lab sync watch``: back up files written by any program, seconds after the write.

watchdog reports changes; paths are collected for ``debounce`` seconds and then backed up with
a targeted :func:`~.engine.backup`. A full backup runs at start, once the watch is in place.

Excluded trees (environments, ``node_modules``, caches, excluded patterns) are not watched at
all: on Linux one inotify instance (watchdog's :class:`~watchdog.observers.inotify_c.Inotify`,
non-recursive) gets a watch on each directory the backup walks and on each such directory
created later, never on one inside an excluded tree, so a ``pip install`` into a venv neither
uses inotify watches (``fs.inotify.max_user_watches``) nor wakes the backup. A venv created
while watching is known as one only once its ``pyvenv.cfg`` is written, after its first few
directories: those stay watched (watches are not removed: watchdog's ``Inotify`` cannot drop one
safely while reading) and their events are ignored. Elsewhere watchdog's recursive observer is
used and events under excluded trees are ignored.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path
from typing import Callable

from .keys import STATE_DIRNAME, UnsafeKey, rel_of_path
from .lock import SyncBusy
from .report import RemoteUnavailable, SyncReport, failed_report
from .target import SyncTarget

log = logging.getLogger("hail_emr_lab.sync.watch")
#: Seconds before a backup that could not reach S3 is tried again (doubling up to the last).
RETRY_SECONDS = (2.0, 60.0)


def watch(target: SyncTarget, debounce: float = 1.0, stop: threading.Event | None = None,
          on_report: Callable[[SyncReport], None] | None = None) -> None:
    """Run until ``stop`` is set (or KeyboardInterrupt)."""
    from .engine import backup

    stop = stop or threading.Event()
    pending: set[str] = set()
    lock = threading.Lock()
    wake = threading.Event()

    def changed(path: str) -> None:
        with lock:
            pending.add(path)
        wake.set()

    # Watch first, then the full backup: a file written while (or just after) it runs is seen by
    # the watcher and backed up next, instead of falling between the scan and the watch.
    watcher = start_watcher(target, changed)
    retry = RETRY_SECONDS[0]
    try:
        try:
            report = backup(target, wait=60)
        except RemoteUnavailable as exc:  # S3 down now: say so and keep watching
            report = failed_report("backup", target.url, exc)
        if on_report:
            on_report(report)
        while not stop.is_set():
            if not wake.wait(0.5):
                continue
            stop.wait(debounce)
            wake.clear()
            with lock:
                batch = sorted(p for p in pending if Path(p).exists())
                pending.clear()
            if not batch:
                continue
            try:
                report = backup(target, paths=batch, wait=60)
            except SyncBusy:
                with lock:
                    pending.update(batch)
                wake.set()
                continue
            except RemoteUnavailable as exc:  # keep the files, say why, try again later
                with lock:
                    pending.update(batch)
                if on_report:
                    on_report(failed_report("backup", target.url, exc))
                stop.wait(retry)
                retry = min(retry * 2, RETRY_SECONDS[1])
                wake.set()
                continue
            retry = RETRY_SECONDS[0]
            if on_report:
                on_report(report)
    finally:
        watcher.stop()


def start_watcher(target: SyncTarget, changed: Callable[[str], None]) -> _InotifyTree | _Recursive:
    """Start reporting changed paths (files, and new directories) under the home to ``changed``."""
    try:
        from watchdog.observers.inotify_c import Inotify  # noqa: F401 - Linux only
    except Exception:  # noqa: BLE001 - not Linux: watchdog raises its UnsupportedLibcError
        return _Recursive(target, changed)
    return _InotifyTree(target, changed)


class _Filter:
    """Which paths the backup would look at (the same rules as its scan)."""

    def __init__(self, target: SyncTarget) -> None:
        self.target = target
        self.home = str(target.home)
        self.state_dir = os.path.join(self.home, STATE_DIRNAME)

    def excluded(self, path: str) -> bool:
        """Is ``path`` excluded, or inside an environment or cache the backup skips?"""
        if path == self.home:
            return False
        if path == self.state_dir or path.startswith(self.state_dir + "/"):
            return True
        try:
            rel = rel_of_path(self.target.home, Path(path))
        except UnsafeKey:
            return False  # the backup reports it
        return self.target.matcher.excluded_on_disk(self.home, rel)

    def skip_child(self, path: str) -> bool:
        """For a directory whose parent is walked: is it skipped?"""
        try:
            rel = rel_of_path(self.target.home, Path(path))
        except UnsafeKey:
            return False
        return self.target.matcher.skip_dir(rel, path)[0]


class _InotifyTree:
    """One inotify instance with a watch on every walked directory of the home (see module doc)."""

    def __init__(self, target: SyncTarget, changed: Callable[[str], None]) -> None:
        from watchdog.observers.inotify_c import Inotify, InotifyConstants

        C = InotifyConstants
        self.filter = _Filter(target)
        self.changed = changed
        self.home = self.filter.home
        mask = (C.IN_CREATE | C.IN_MODIFY | C.IN_ATTRIB | C.IN_CLOSE_WRITE | C.IN_MOVED_TO
                | C.IN_MOVED_FROM | C.IN_DELETE_SELF)
        self.inotify = Inotify(os.fsencode(self.home), recursive=False, event_mask=mask)
        self.watched: set[str] = {self.home}
        self._closed = False
        self._warned = False
        self._add_tree(self.home, report=False)  # what is there now: the initial full backup's job
        self._thread = threading.Thread(target=self._run, name="hail-emr-lab-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._closed = True
        self.inotify.close()  # wakes read_events
        self._thread.join(5)

    # watches -----------------------------------------------------------------------------
    def _add_tree(self, top: str, report: bool) -> None:
        """Watch ``top`` and the walked directories below it; with ``report``, report what is
        inside too (it may have been written before the watch was in place)."""
        if top != self.home and self.filter.excluded(top):
            return
        stack = [top]
        while stack:
            d = stack.pop()
            if d != self.home and not self._watch(d):
                continue
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue  # gone again, or unreadable: the backup reports what it cannot read
            if report:
                self.changed(d)  # if it is empty, it is kept as a folder marker
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not self.filter.skip_child(entry.path):
                        stack.append(entry.path)
                elif report:
                    self.changed(entry.path)

    def _watch(self, path: str) -> bool:
        try:
            self.inotify.add_watch(os.fsencode(path))
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not self._warned:
                self._warned = True
                log.warning("inotify watch limit reached (fs.inotify.max_user_watches): changes under %s "
                            "and other new directories are backed up by the next full backup only", path)
            return False
        self.watched.add(path)
        return True

    # events ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            try:
                events = self.inotify.read_events()
            except OSError:
                if not self._closed:
                    log.exception("hail-emr-lab: the file watch stopped; the next full backup catches up")
                return
            for event in events:
                try:
                    self._event(event)
                except Exception:  # noqa: BLE001 - one odd event must not end the watch
                    log.exception("hail-emr-lab: could not handle a file event for %r", event.src_path)

    def _event(self, event) -> None:  # noqa: ANN001 - watchdog's InotifyEvent
        path = os.fsdecode(event.src_path)
        if event.is_ignored:
            self.watched.discard(path)
            return
        if event.is_moved_from or event.is_delete_self:
            return
        if event.is_directory:
            if event.is_create or event.is_moved_to:
                self._add_tree(path, report=True)
            return
        if not self.filter.excluded(path):
            self.changed(path)


class _Recursive:
    """watchdog's recursive observer (no inotify): events under excluded trees are ignored."""

    def __init__(self, target: SyncTarget, changed: Callable[[str], None]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        flt = _Filter(target)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wanted = ("created", "moved") if event.is_directory else ("created", "modified", "moved", "closed")
                if event.event_type not in wanted:  # a new directory may be an empty one to keep
                    return
                path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
                if not flt.excluded(path):
                    changed(path)

        self.observer = Observer()
        self.observer.schedule(Handler(), str(target.home), recursive=True)
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(5)
