"""REST handlers of the server extension, under ``<base_url>/hail-emr-lab/api/``.

Thin ``APIHandler`` subclasses: authenticated (403 without a token or login cookie), POST and
DELETE XSRF-checked by jupyter_server, blocking work (Livy, Spark, S3, EMR) run in a small
thread pool so the server's event loop never waits on a cluster. The logic lives in
``hail_emr_lab.dashboard``.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from ..config import load_config
from ..dashboard import backup, listings, nodes, plots, progress, status
from ..errors import ConfigError, HailEmrLabError
from ..plots.render import PLOT_CSP, viewer_body
from ..redact import redact_values

API = "hail-emr-lab/api"
#: One small pool per section: a slow one (the backup status of a big home, a Livy that hangs)
#: queues only its own requests, never the Running section's.
_POOLS: dict[str, ThreadPoolExecutor] = {}


def _pool(section: str) -> ThreadPoolExecutor:
    if section not in _POOLS:
        _POOLS[section] = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"hail-emr-lab-{section}")
    return _POOLS[section]


class _Base(APIHandler):
    auth_resource = "hail_emr_lab"
    #: Which pool runs this handler's blocking work.
    section = "misc"

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``func`` off the event loop, in this section's pool."""
        return await IOLoop.current().run_in_executor(_pool(self.section), func, *args)

    async def answer_configured(self, func: Callable[..., Any], *args: Any) -> None:
        """:meth:`answer` with ``func(config, *args)``: the configuration is resolved once per
        request, here, and passed down (a bad config file is the user's to fix: 400)."""
        await self.answer(lambda: func(load_config(), *args))

    async def answer(self, func: Callable[..., Any], *args: Any) -> None:
        """Reply with ``func(*args)`` plus ``elapsed_ms`` (the work's cost in the server, in
        milliseconds, also as a ``Server-Timing`` header); a user-facing error becomes a JSON
        ``{"message"}``."""
        started = time.monotonic()
        try:
            data = await self.run(func, *args)
        except (ConfigError, plots.UnsafePath) as exc:  # what the user asked for or configured is wrong
            return self.fail(400, str(exc))
        except HailEmrLabError as exc:
            return self.fail(502, str(exc))
        elapsed_ms = round((time.monotonic() - started) * 1000.0, 1)
        self.set_header("Server-Timing", f"{self.section};dur={elapsed_ms}")
        if isinstance(data, dict):
            data = {**data, "elapsed_ms": elapsed_ms}
        self.reply(data)

    def reply(self, data: Any, status_code: int = 200) -> None:
        self.set_status(status_code)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(redact_values(data), default=str))  # no URL credentials reach the browser

    def fail(self, status_code: int, message: str) -> None:
        self.reply({"message": message}, status_code)


class StatusHandler(_Base):
    section = "status"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer_configured(status.cluster_status)


class SessionsHandler(_Base):
    section = "sessions"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        notebooks = await self.open_notebooks()
        await self.answer_configured(lambda cfg: status.list_sessions(cfg, notebooks=notebooks))

    async def open_notebooks(self) -> list[tuple[str, str]]:
        """``(path as the kernel sees it, path shown)`` of every notebook with a kernel here.

        jupyter_server gives each kernel ``JPY_SESSION_NAME`` = the kernel's directory joined
        with the notebook's name, i.e. the absolute path under the server's root.
        """
        root = self.settings["server_root_dir"]
        out = []
        for item in await self.session_manager.list_sessions():
            path = item.get("path") or ""
            if item.get("type", "notebook") == "notebook" and path:
                out.append((os.path.join(os.path.abspath(os.path.expanduser(root)), path), path))
        return out


class SessionHandler(_Base):
    section = "sessions"

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        try:
            self.reply(await self.run(lambda: status.delete_own_session(int(session_id), load_config())))
        except status.NotOwnSession as exc:
            self.fail(403, str(exc))
        except status.SessionNotFound as exc:
            self.fail(404, str(exc))
        except HailEmrLabError as exc:
            self.fail(502, str(exc))


class ProgressHandler(_Base):
    section = "progress"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        include_all = self.get_argument("all", "0") in ("1", "true", "yes")
        await self.answer_configured(lambda cfg: progress.running_progress(cfg, include_all=include_all))


class PlotsHandler(_Base):
    section = "plots"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(plots.list_plots, self.settings["server_root_dir"], self.get_argument("dir", ""))


class PlotViewHandler(_Base):
    """Serves one plot file for a ``sandbox="allow-scripts"`` iframe, under a strict CSP."""

    section = "plots"

    @property
    def content_security_policy(self) -> str:
        return PLOT_CSP

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.check_xsrf_cookie()  # as jupyter's file handler: a cross-site GET must carry a referer
        try:
            path, ctype = plots.plot_file(
                self.settings["server_root_dir"], self.get_argument("dir", ""), self.get_argument("name", "")
            )
            body = await self.run(viewer_body, path, ctype)
        except plots.UnsafePath as exc:
            return self.fail(400, str(exc))
        except (FileNotFoundError, IsADirectoryError) as exc:
            return self.fail(404, str(exc) if isinstance(exc, FileNotFoundError) else "not a plot file")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Cross-Origin-Resource-Policy", "same-origin")
        self.finish(body, set_content_type=ctype)


class SyncHandler(_Base):
    section = "backup"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer_configured(backup.backup_status)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            return self.fail(400, 'the body must be JSON: {"action": "backup"} or {"action": "restore"}')
        action = body.get("action") if isinstance(body, dict) else None
        try:
            result = await self.run(lambda: backup.start(str(action), load_config()))
        except backup.BadAction as exc:
            return self.fail(400, str(exc))
        except HailEmrLabError as exc:
            return self.fail(409, str(exc))
        self.reply(result, 202 if result["started"] else 409)


class ClustersHandler(_Base):
    section = "clusters"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(listings.clusters)


class NodesHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer_configured(nodes.nodes)


class JobsHandler(_Base):
    section = "jobs"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            limit = max(1, min(500, int(self.get_argument("limit", str(listings.JOBS_LIMIT)))))
        except ValueError:
            return self.fail(400, "limit must be a whole number")
        await self.answer(listings.jobs, limit)


ROUTES = [
    ("status", StatusHandler),
    ("sessions", SessionsHandler),
    (r"sessions/(\d+)", SessionHandler),
    ("progress", ProgressHandler),
    ("plots", PlotsHandler),
    ("plots/view", PlotViewHandler),
    ("sync", SyncHandler),
    ("clusters", ClustersHandler),
    ("jobs", JobsHandler),
    ("nodes", NodesHandler),
]


def setup_handlers(server_app) -> None:  # noqa: ANN001 - jupyter_server's ServerApp
    """Add the hail-emr-lab handlers to the server's web app."""
    web_app = server_app.web_app
    base = web_app.settings["base_url"]
    web_app.settings.setdefault("server_root_dir", server_app.root_dir)
    handlers = [(url_path_join(base, API, path) + "$", handler) for path, handler in ROUTES]
    web_app.add_handlers(".*$", handlers)
    server_app.log.info("hail-emr-lab: REST API at %s", url_path_join(base, API))
