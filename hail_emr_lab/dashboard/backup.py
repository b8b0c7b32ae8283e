"""The Backup section: sync status, and "Back up now" / "Restore" run in a background thread.

The sync engine (``hail_emr_lab.sync``) does the work and holds its own lock, so a run started
here never overlaps the on-save hook or cron; this module only remembers what it started.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

from ..config import Config
from ..errors import HailEmrLabError
from .jsonable import jsonable

ACTIONS = ("backup", "restore")
log = logging.getLogger(__name__)


class BadAction(HailEmrLabError):
    """An action other than backup or restore was asked for."""

    exit_code = 2


class _Runner:
    """At most one backup/restore started from the sidebar at a time; remembers the last result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.state: dict[str, Any] = {
            "action": None,
            "running": False,
            "started": None,
            "finished": None,
            "ok": None,
            "message": None,
            "report": None,
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.state)

    def start(self, action: str, work: Callable[[], Any]) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False, dict(self.state)
            self.state = {
                "action": action,
                "running": True,
                "started": time.time(),
                "finished": None,
                "ok": None,
                "message": None,
                "report": None,
            }
            self._thread = threading.Thread(
                target=self._run, args=(action, work), daemon=True, name=f"hail-emr-lab-{action}"
            )
            self._thread.start()
            return True, dict(self.state)

    def _run(self, action: str, work: Callable[[], Any]) -> None:
        ok, message, report = False, None, None
        try:
            report = jsonable(work())
            ok = not (isinstance(report, dict) and (report.get("errors") or report.get("partial")))
            message = f"{action} finished" if ok else f"{action} finished with problems (see the report)"
        except HailEmrLabError as exc:
            message = f"{action} failed: {exc}"
        except Exception as exc:  # a bug in the engine must still show up in the sidebar
            log.exception("hail-emr-lab %s failed", action)
            message = f"{action} failed unexpectedly: {type(exc).__name__}: {exc}"
        with self._lock:
            self.state.update(running=False, finished=time.time(), ok=ok, message=message, report=report)

    def wait(self, timeout: float) -> bool:
        """Wait for the current run (tests and the widgets panel); True if none is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


RUNNER = _Runner()


def backup_status(config: Config) -> dict[str, Any]:
    """The sync status (last backup, pending files, conflicts, errors) plus the sidebar's own run,
    for the home, bucket and prefix of ``config``."""
    from .. import sync  # imported when asked: the server extension loads fast

    out: dict[str, Any] = {
        "available": True,
        "configured": False,
        "status": None,
        "skipped_note": None,
        "error": None,
        "run": RUNNER.snapshot(),
    }
    try:
        target = sync.target_from_config(config)
        out["configured"] = True
        out["target"] = {"bucket": target.bucket, "prefix": target.prefix, "home": str(target.home)}
        out["status"] = jsonable(sync.status(target))
        out["skipped_note"] = skipped_note(out["status"])
    except HailEmrLabError as exc:
        out["error"] = str(exc)
    return out


def skipped_note(status: dict[str, Any]) -> str | None:
    """One line for the sidebar: what the backup skips as not work, e.g.
    ``"Not backed up: 2 environments, 1 node_modules (rebuilt, not written)"``; None if nothing."""
    text = status.get("skipped_text")
    return f"Not backed up: {text} (rebuilt, not written)" if text else None


def start(action: str, config: Config) -> dict[str, Any]:
    """Start ``backup`` or ``restore`` of ``config``'s home in the background; returns at once
    with the run's state. Raises BadAction for another action, HailEmrLabError when the
    configuration names no bucket or home."""
    if action not in ACTIONS:
        raise BadAction(f"unknown sync action {action!r}: use one of {', '.join(ACTIONS)}")
    from .. import sync

    # config errors are reported now, not in the thread; a restore creates a missing home
    target = sync.target_from_config(config, require_home=action != "restore")
    func = getattr(sync, action)
    started, state = RUNNER.start(action, lambda: func(target))
    return {
        "started": started,
        "run": state,
        "message": None if started else f"a {state.get('action')} started here is still running",
    }
