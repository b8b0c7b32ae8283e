"""The HTTP side of the embedded Livy: Livy's REST paths, status codes and JSON shapes.

``EmbeddedLivy`` runs a standard-library ``ThreadingHTTPServer`` (one thread per request,
so polling stays fast while statements run) over a ``SessionRegistry`` and a
``BatchRegistry``. Usage::

    srv = EmbeddedLivy(port=0)      # 0: a free port
    srv.start()                     # background thread; returns once listening
    ... srv.url ...
    srv.stop()                      # kills every worker; idempotent
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from . import jsontext
from .batches import BatchRegistry
from .common import ApiError, bad_request, int_param, page
from .guard import AccessPolicy
from .sessions import SessionRegistry

LIVY_VERSION = "0.8.0-incubating"
MAX_BODY_BYTES = 64 * 1024 * 1024
ALLOWED_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"

Answer = tuple[int, Any, dict[str, str]]  # status, JSON payload, extra headers


def default_plots_dir() -> str:
    """Where plots go unless told otherwise: ~/.hail-emr-lab/local/plots."""
    return os.path.join(os.path.expanduser("~"), ".hail-emr-lab", "local", "plots")


class _Route:
    def __init__(self, method: str, pattern: str, handler: Callable[..., tuple]) -> None:
        self.method = method
        self.regex = re.compile("^" + pattern + "/?$")
        self.handler = handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: pooled clients reuse connections
    # Headers and body go out as separate writes: without TCP_NODELAY, Nagle + delayed ACK add
    # ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "hail-emr-lab-livy"
    livy: EmbeddedLivy  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per poll would drown the console; errors are answered in JSON

    def _dispatch(self, method: str) -> None:
        extra: dict[str, str] = {}
        body_read = False
        try:
            length = _content_length(self.headers)
            try:
                self.livy.policy.check(method, self.headers, length)
            except ApiError:
                self.livy._count("requests_refused")
                raise
            body_bytes = self.rfile.read(length) if length > 0 else b""
            body_read = True
            status, payload, extra = self.livy._handle(method, self.path, body_bytes)
        except ApiError as exc:
            status, payload, extra = exc.status, {"msg": exc.msg}, exc.headers
        except Exception as exc:  # a bug: answer 500 with the reason instead of dropping the connection
            status, payload = 500, {"msg": f"internal error in the embedded Livy: {type(exc).__name__}: {exc}"}
        if not body_read:
            # The body of a refused request was never read (or its length is unknown): the
            # connection cannot carry another request.
            self.close_connection = True
        data = jsontext.encode(payload)  # a statement's output is embedded as the worker encoded it
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**extra, **self.livy.policy.cors_headers(method, self.headers)}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch("OPTIONS")


def _content_length(headers: Any) -> int:
    """The body length in bytes (0 when absent); 400/411/413 when it cannot be trusted."""
    if headers.get("Transfer-Encoding"):
        raise ApiError(411, "chunked request bodies are not supported: send the body with a Content-Length")
    values = headers.get_all("Content-Length") or []
    if not values:
        return 0
    if len(set(values)) > 1:
        raise bad_request(f"the request has conflicting Content-Length headers: {', '.join(values)[:100]}")
    raw = values[0].strip()
    if not re.fullmatch(r"[0-9]{1,20}", raw):
        raise bad_request(f"Content-Length must be a number of bytes (0 or more), got {raw[:40]!r}")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise ApiError(413, f"request body of {length} bytes is larger than {MAX_BODY_BYTES} bytes")
    return length


class EmbeddedLivy:
    """An Apache Livy-compatible server over real PySpark + Hail, one worker process per session."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8998,
        plots_dir: str | None = None,
        csrf: bool = True,
        max_sessions: int = 4,
        session_timeout: float = 3600.0,
        token: str | None = None,
        allowed_hosts: tuple[str, ...] = (),
        allowed_origins: tuple[str, ...] = (),
        token_hint: str | None = None,
    ) -> None:
        """``csrf``, ``allowed_hosts``, ``allowed_origins`` and ``token`` set who may send
        requests (see :mod:`.guard`); the defaults admit only this machine's own clients."""
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.host = host
        self.port = port
        self.plots_dir = os.path.abspath(plots_dir or default_plots_dir())
        self.policy = AccessPolicy(
            host=host,
            port=port,
            token=token,
            csrf=csrf,
            allowed_hosts=tuple(allowed_hosts),
            allowed_origins=tuple(allowed_origins),
            token_hint=token_hint,
        )
        self.max_sessions = max_sessions
        self.session_timeout = session_timeout
        self.stats: dict[str, int] = {
            "statements_submitted": 0,
            "statements_executed": 0,
            "sessions_created": 0,
            "batches_created": 0,
            "requests_refused": 0,  # by the access checks (403, 401, CSRF 400, 415)
        }
        self._stats_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._workroot: str | None = None
        self.sessions: SessionRegistry | None = None
        self.batches: BatchRegistry | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._routes = [
            _Route("GET", r"/sessions", self._list_sessions),
            _Route("POST", r"/sessions", self._create_session),
            _Route("GET", r"/sessions/([^/]+)", self._get_session),
            _Route("DELETE", r"/sessions/([^/]+)", self._delete_session),
            _Route("GET", r"/sessions/([^/]+)/state", self._session_state),
            _Route("GET", r"/sessions/([^/]+)/log", self._session_log),
            _Route("GET", r"/sessions/([^/]+)/statements", self._list_statements),
            _Route("POST", r"/sessions/([^/]+)/statements", self._submit_statement),
            _Route("GET", r"/sessions/([^/]+)/statements/(\d+)", self._get_statement),
            _Route("POST", r"/sessions/([^/]+)/statements/(\d+)/cancel", self._cancel_statement),
            _Route("POST", r"/sessions/([^/]+)/completion", self._completion),
            _Route("GET", r"/batches", self._list_batches),
            _Route("POST", r"/batches", self._create_batch),
            _Route("GET", r"/batches/([^/]+)", self._get_batch),
            _Route("DELETE", r"/batches/([^/]+)", self._delete_batch),
            _Route("GET", r"/batches/([^/]+)/state", self._batch_state),
            _Route("GET", r"/batches/([^/]+)/log", self._batch_log),
            _Route("GET", r"/version", self._version),
        ]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a background thread; returns once the port is listening."""
        with self._lock:
            if self._httpd is not None:
                return
            os.makedirs(self.plots_dir, exist_ok=True)
            self._workroot = tempfile.mkdtemp(prefix="hail-emr-lab-livy-")
            self.sessions = SessionRegistry(
                self._workroot, self.plots_dir, self.max_sessions, self.session_timeout, self._count
            )
            self.batches = BatchRegistry(self._workroot, self.plots_dir, self.max_sessions)
            handler = type("LivyHandler", (_Handler,), {"livy": self})
            try:
                httpd = ThreadingHTTPServer((self.host, self.port), handler)
            except OSError as exc:
                self.sessions.shutdown()
                shutil.rmtree(self._workroot, ignore_errors=True)
                from ..errors import HailEmrLabError

                raise HailEmrLabError(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}): another Livy or program uses "
                    "the port; stop it, or pick another port with --port"
                ) from exc
            httpd.daemon_threads = True
            self._httpd = httpd
            self.port = self.policy.port = httpd.server_address[1]
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="embedded-livy-http", daemon=True
            )
            self._thread.start()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8998``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Delete every session and batch (killing their processes) and stop HTTP. Idempotent."""
        with self._lock:
            httpd, self._httpd = self._httpd, None
            if httpd is None:
                return
            httpd.shutdown()
            httpd.server_close()
            if self.sessions is not None:
                self.sessions.shutdown()
            if self.batches is not None:
                self.batches.shutdown()
            if self._workroot:
                shutil.rmtree(self._workroot, ignore_errors=True)
            self._stopped.set()

    def serve_forever(self) -> None:
        """Serve in the foreground until SIGINT or SIGTERM, then clean up."""
        self.start()
        done = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: done.set())
        try:
            while not done.wait(0.5) and not self._stopped.is_set():
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def worker_pid(self, session_id: int) -> int | None:
        """The pid of a session's worker process (tests use it to simulate a crash)."""
        assert self.sessions is not None
        return self.sessions.get(session_id).pid

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, body_bytes: bytes) -> Answer:
        """Route an admitted request; its answer with any extra headers (``Location``)."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        params = parse_qs(parts.query)
        if method == "OPTIONS":
            return 200, {"msg": "ok"}, {"Allow": ALLOWED_METHODS}
        lookup = "GET" if method == "HEAD" else method
        path_matched = False
        for route in self._routes:
            match = route.regex.match(path)
            if not match:
                continue
            path_matched = True
            if route.method != lookup:
                continue
            body: dict = {}
            if method in ("POST", "PUT") and body_bytes.strip():
                try:
                    body = json.loads(body_bytes)
                except ValueError as exc:
                    raise bad_request(f"the request body is not valid JSON: {exc}") from None
                if not isinstance(body, dict):
                    raise bad_request("the request body must be a JSON object")
            answer = route.handler(*match.groups(), body=body, params=params)
            return answer if len(answer) == 3 else (answer[0], answer[1], {})
        if path_matched:
            raise ApiError(405, f"{method} is not allowed on {path}", headers={"Allow": ALLOWED_METHODS})
        if path == "/":
            return 200, {
                "msg": "hail-emr-lab embedded Livy",
                "version": LIVY_VERSION,
                "endpoints": ["/sessions", "/batches", "/version"],
            }, {}
        raise ApiError(404, f"no such endpoint: {method} {path}")

    # sessions

    def _list_sessions(self, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        from_, size = int_param(params, "from"), int_param(params, "size")
        everything = self.sessions.list()
        chosen = page(everything, from_, size)
        return 200, {"from": max(0, from_ or 0), "total": len(everything), "sessions": [s.to_json() for s in chosen]}

    def _create_session(self, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.create(body, _do_as(params))
        return 201, session.to_json(), {"Location": f"/sessions/{session.id}"}

    def _get_session(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        return 200, session.to_json()

    def _delete_session(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        self.sessions.delete(sid)
        return 200, {"msg": "deleted"}

    def _session_state(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        return 200, {"id": session.id, "state": session.state}

    def _session_log(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        from_, total, lines = session.log.page(int_param(params, "from"), int_param(params, "size"))
        return 200, {"id": session.id, "from": from_, "total": total, "size": len(lines), "log": lines}

    def _list_statements(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        order = (params.get("order") or [None])[0]
        return 200, session.statements_view(int_param(params, "from"), int_param(params, "size"), order)

    def _submit_statement(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        statement = session.submit(body)
        return 201, statement.to_json(), {"Location": f"/sessions/{session.id}/statements/{statement.id}"}

    def _get_statement(self, sid: str, stid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        return 200, session.statement(int(stid)).to_json()

    def _cancel_statement(self, sid: str, stid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        session.cancel(int(stid))
        return 200, {"msg": "canceled"}

    def _completion(self, sid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.sessions is not None
        session = self.sessions.get(sid)
        session.touch()
        return 200, {"candidates": session.complete(body)}

    # batches

    def _list_batches(self, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        from_, size = int_param(params, "from"), int_param(params, "size")
        everything = self.batches.list()
        chosen = page(everything, from_, size)
        return 200, {"from": max(0, from_ or 0), "total": len(everything), "sessions": [b.to_json() for b in chosen]}

    def _create_batch(self, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        batch = self.batches.create(body, _do_as(params))
        self._count("batches_created")
        return 201, batch.to_json(), {"Location": f"/batches/{batch.id}"}

    def _get_batch(self, bid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        return 200, self.batches.get(bid).to_json()

    def _delete_batch(self, bid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        self.batches.delete(bid)
        return 200, {"msg": "deleted"}

    def _batch_state(self, bid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        batch = self.batches.get(bid)
        return 200, {"id": batch.id, "state": batch.state}

    def _batch_log(self, bid: str, body: dict, params: dict) -> tuple[int, Any]:
        assert self.batches is not None
        batch = self.batches.get(bid)
        from_, total, lines = batch.log.page(int_param(params, "from"), int_param(params, "size"))
        return 200, {"id": batch.id, "from": from_, "total": total, "size": len(lines), "log": lines}

    def _version(self, body: dict, params: dict) -> tuple[int, Any]:
        return 200, {"version": LIVY_VERSION, "embedded": True, "server": "hail-emr-lab"}


def _do_as(params: dict) -> str | None:
    values = params.get("doAs")
    return values[0] if values else None
