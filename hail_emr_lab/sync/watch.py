"""``hail-emr-lab sync watch``: back up files written by any program, seconds after the write.

watchdog (inotify on Linux) reports changes; paths are collected for ``debounce`` seconds and
then backed up with a targeted :func:`~.engine.backup`. A full backup runs at start, once the
watch is in place.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

from .keys import STATE_DIRNAME, UnsafeKey, rel_of_path
from .lock import SyncBusy
from .report import SyncReport
from .target import SyncTarget

log = logging.getLogger("hail_emr_lab.sync.watch")


def watch(target: SyncTarget, debounce: float = 1.0, stop: threading.Event | None = None,
          on_report: Callable[[SyncReport], None] | None = None) -> None:
    """Run until ``stop`` is set (or KeyboardInterrupt)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    from .engine import backup

    stop = stop or threading.Event()
    pending: set[str] = set()
    lock = threading.Lock()
    wake = threading.Event()
    state_dir = str(target.home / STATE_DIRNAME)

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            wanted = ("created", "moved") if event.is_directory else ("created", "modified", "moved", "closed")
            if event.event_type not in wanted:  # a new directory may be an empty one to keep
                return
            path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
            if path.startswith(state_dir) or _excluded(target, path):
                return
            with lock:
                pending.add(path)
            wake.set()

    # Watch first, then the full backup: a file written while (or just after) it runs is seen by
    # the observer and backed up next, instead of falling between the scan and the watch.
    observer = Observer()
    observer.schedule(Handler(), str(target.home), recursive=True)
    observer.start()
    try:
        report = backup(target, wait=60)
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
            if on_report:
                on_report(report)
    finally:
        observer.stop()
        observer.join(5)


def _excluded(target: SyncTarget, path: str) -> bool:
    """Is ``path`` excluded, or inside an environment or cache the backup skips?"""
    try:
        rel = rel_of_path(target.home, Path(path))
    except UnsafeKey:
        return False  # the backup reports it
    return target.matcher.excluded_on_disk(str(target.home), rel)
