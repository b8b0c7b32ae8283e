"""Back up a file within seconds of being saved (or renamed, or copied) in Jupyter.

:func:`register` adds a ``post_save_hook`` to the server's contents manager, and a listener
for the contents service's ``rename`` / ``copy`` events (jupyter_server's event schema
``contents_service/v1``): no save hook runs for those, so a notebook created by "Rename and
Save", or a folder renamed in the file browser, would otherwise wait for the next save or cron.
Both only put paths in a queue (a save is never slowed down or failed by the backup); a daemon
thread uploads queued paths with a targeted :func:`~.engine.backup`, which takes the same
lock as cron and manual runs. Errors are logged, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..config import SAGEMAKER_HOME, load_config
from ..errors import HailEmrLabError
from ..paths import within
from .lock import SyncBusy
from .scan import scan_home
from .target import SyncTarget

log = logging.getLogger("hail_emr_lab.sync.onsave")

#: Wait this long after a save for more saves to batch (autosave of several files).
COALESCE_SECONDS = 0.2

#: jupyter_server's contents events (jupyter_server's ``event_schemas/contents_service/v1``).
CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
#: Contents actions that put files at a new path without running the post-save hooks.
MOVES = ("rename", "copy")


class BackgroundUploader:
    """A queue of saved paths and the thread that uploads them."""

    def __init__(self, target: SyncTarget, logger: Any = None) -> None:
        self.target = target
        self.log = logger or log
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self.uploaded = 0
        self._thread = threading.Thread(target=self._loop, name="hail-emr-lab-onsave", daemon=True)
        self._thread.start()

    def enqueue(self, path: str) -> None:
        """Queue ``path`` for upload (returns at once)."""
        with self._cond:
            self._pending.add(str(path))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(10)

    def _loop(self) -> None:
        from .engine import backup

        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            time.sleep(COALESCE_SECONDS)
            with self._cond:
                batch, self._pending = sorted(self._pending), set()
            try:
                report = backup(self.target, paths=batch, wait=60)
            except SyncBusy:
                with self._cond:  # a long backup holds the lock: try again shortly
                    self._pending.update(batch)
                time.sleep(1)
                continue
            except HailEmrLabError as exc:  # S3 unreachable, bucket missing...: said in one line
                self.log.warning("hail-emr-lab: on-save backup of %d file(s) failed: %s", len(batch), exc)
                continue
            except Exception:  # noqa: BLE001 - a failed upload must never break Jupyter
                self.log.exception("hail-emr-lab: on-save backup of %d file(s) failed", len(batch))
                continue
            self.uploaded += len(report.uploaded)
            for err in report.errors:
                self.log.warning("hail-emr-lab: on-save backup: %s: %s", err["path"], err["error"])
            for c in report.conflicts:
                self.log.warning("hail-emr-lab: sync conflict on %s, other version kept as %s",
                                 c["path"], c["conflict_copy"])


def make_hook(uploader: BackgroundUploader) -> Any:
    """The post-save hook: queue files saved inside the synced home."""
    home_real = str(Path(uploader.target.home).resolve())

    def hail_emr_lab_backup_on_save(model: dict[str, Any] | None = None, os_path: str | None = None,
                                    contents_manager: Any = None, **_: Any) -> None:
        try:
            if os_path and (model or {}).get("type") != "directory":
                if within(home_real, str(Path(os_path).resolve())):
                    uploader.enqueue(os_path)
        except Exception:  # noqa: BLE001 - never fail a save
            uploader.log.exception("hail-emr-lab: could not queue %s for backup", os_path)

    return hail_emr_lab_backup_on_save


def paths_at(path: Path, uploader: BackgroundUploader) -> list[Path]:
    """The file at ``path``, or the files and empty directories under it (excludes applied)."""
    if not path.is_dir() or path.is_symlink():
        return [path]
    found = scan_home(path, uploader.target.matcher)
    return [path / rel for rel in [*found.files, *found.dirs]] or [path]


def make_listener(uploader: BackgroundUploader, root_dir: str) -> Any:
    """A contents-event listener that queues what a rename or copy put at its new path."""
    home_real = str(Path(uploader.target.home).resolve())

    async def hail_emr_lab_backup_on_move(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        if data.get("action") not in MOVES:
            return
        try:
            os_path = Path(root_dir, data.get("path") or "").resolve()
            if within(home_real, str(os_path)):
                for p in paths_at(os_path, uploader):
                    uploader.enqueue(str(p))
        except Exception:  # noqa: BLE001 - never fail a rename
            uploader.log.exception("hail-emr-lab: could not queue %s for backup", data.get("path"))

    return hail_emr_lab_backup_on_move


def register(server_app: Any) -> BackgroundUploader | None:
    """Register the on-save backup on ``server_app``'s contents manager (if a bucket is set)."""
    logger = getattr(server_app, "log", log)
    try:
        cfg = load_config()
        if not cfg.get("bucket"):
            logger.info("hail-emr-lab: no sync bucket configured; on-save backup is off")
            return None
        cm = server_app.contents_manager
        home = cfg.get("home") or (str(SAGEMAKER_HOME) if SAGEMAKER_HOME.is_dir() else None)
        home = home or getattr(cm, "root_dir", None) or getattr(server_app, "root_dir", None)
        if not cfg.get("prefix"):
            logger.warning("hail-emr-lab: no sync prefix configured (HAIL_EMR_LAB_PREFIX); on-save backup is off")
            return None
        target = SyncTarget(home=Path(home), bucket=cfg.get("bucket"), prefix=cfg.get("prefix"),
                            excludes=list(cfg.get("excludes") or []), region=cfg.get("region"),
                            environments=bool(cfg.get("backup_environments")))
        uploader = BackgroundUploader(target, logger)
        cm.register_post_save_hook(make_hook(uploader))
        events = getattr(cm, "event_logger", None) or getattr(server_app, "event_logger", None)
        root_dir = getattr(cm, "root_dir", None) or getattr(server_app, "root_dir", None)
        if events is not None and root_dir:
            events.add_listener(schema_id=CONTENTS_EVENTS, listener=make_listener(uploader, root_dir))
        else:
            logger.warning("hail-emr-lab: renamed files are backed up at their next save only "
                           "(this Jupyter server emits no contents events)")
        server_app.hail_emr_lab_uploader = uploader  # reachable for the REST handlers / tests
        logger.info("hail-emr-lab: files saved under %s are backed up to %s", target.home, target.url)
        return uploader
    except HailEmrLabError as exc:
        logger.warning("hail-emr-lab: on-save backup is off: %s", exc)
    except Exception:  # noqa: BLE001 - the server must start even if this fails
        logger.exception("hail-emr-lab: could not set up the on-save backup")
    return None
