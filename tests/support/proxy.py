"""The one HTTP reverse proxy of the tests and benchmarks; each proxy built on it adds only its rule.

``RelayProxy(upstream_url).start()`` listens on 127.0.0.1 (``.url``) and relays HTTP/1.1
requests to ``upstream_url``, over one kept-alive upstream connection per client connection.
Every request is read whole (``Content-Length`` or chunked) and then (a body cut short by a
client killed while sending it is relayed as far as it came, as a lenient server such as moto
would keep it; S3 itself refuses it):

* recorded in ``requests`` as (method, path with query), in arrival order (``count``, ``reset``);
  ``in_flight`` / ``max_in_flight`` say how many were open at once;
* delayed by ``delay`` seconds (loopback made to look like S3 seen from a notebook instance);
* handed to :meth:`RelayProxy.relay`, which forwards it (:meth:`RelayProxy.forward`) and returns
  the answer. A subclass overrides ``relay`` with its rule: answer itself, change the answer, or
  return ``None`` to close the client's connection without an answer.

``down = True`` closes every connection without reading or answering (the upstream unreachable).
``keep_alive = False`` (a class attribute) answers with ``Connection: close``, so each client
connection carries one request. Standard library only (the benchmarks use it too).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

#: Hop-by-hop headers (RFC 9110 section 7.6.1) and the ones the proxy recomputes: never relayed.
_HOP = {"expect", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Request:
    """A client's request as read: every header as received (``forward`` drops the hop-by-hop
    ones), ``body`` in bytes (a chunked body de-chunked)."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes = b""

    @property
    def route(self) -> str:
        """The path without the query string."""
        return self.path.split("?", 1)[0]

    def header(self, name: str) -> Optional[str]:
        """A header's value whatever the case of its name, or None."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Answer:
    """What the client gets: status, reason, headers (``Content-Length`` is set from ``body``)."""

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, data: Any, content_type: str = "application/json", **headers: str) -> Answer:
        """A JSON answer; ``headers`` with ``_`` for ``-`` in their names (``x_amzn_ErrorType``)."""
        extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
        return cls(status, "", [("Content-Type", content_type), *extra], json.dumps(data).encode())

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class RelayProxy:
    """``RelayProxy(upstream, delay=0.0).start()`` -> ``.url``; see the module docstring."""

    keep_alive = True
    #: Seconds an upstream connection may wait for an answer.
    upstream_timeout = 300.0

    def __init__(self, upstream: str, delay: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay = delay
        self.down = False
        self.requests: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests open at once since the last reset()
        self._lock = threading.Lock()
        self._upstream_conns = threading.local()
        self.server = _Server((host, port), _Handler)
        self.server.proxy = self
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> RelayProxy:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget the requests seen so far (``max_in_flight`` restarts from what is open now)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def count(self, method: Optional[str] = None) -> int:
        """Requests seen since the last :meth:`reset`, of ``method`` or all."""
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def relay(self, request: Request) -> Optional[Answer]:
        """The answer the client gets, or ``None`` to close its connection unanswered."""
        return self.forward(request)

    def forward(self, request: Request) -> Answer:
        """Send ``request`` upstream and return its answer.

        A kept-alive upstream connection the upstream closed meanwhile is reopened and the
        request sent again; on a fresh connection it is sent once, so a request the upstream
        may have acted on is never repeated. Raises ``OSError`` / ``http.client.HTTPException``
        when the upstream cannot be reached or fails mid-answer.
        """
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        if request.body or request.method in ("PUT", "POST"):
            headers["Content-Length"] = str(len(request.body))
        while True:
            conn = getattr(self._upstream_conns, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(*self.upstream, timeout=self.upstream_timeout)
                self._upstream_conns.conn = conn
            try:
                conn.request(request.method, request.path, body=request.body, headers=headers)
                resp = conn.getresponse()
                return Answer(resp.status, resp.reason, resp.getheaders(), resp.read())
            except (ConnectionError, http.client.HTTPException):
                self._close_upstream()
                if not reused:
                    raise

    def _serve(self, request: Request) -> Optional[Answer]:
        with self._lock:
            self.requests.append((request.method, request.path))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self.relay(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _close_upstream(self) -> None:
        conn = getattr(self._upstream_conns, "conn", None)
        if conn is not None:
            conn.close()
            self._upstream_conns.conn = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        return None

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _any(self) -> None:
        proxy = self.server.proxy
        if proxy.down:
            self.close_connection = True
            return
        answer = proxy._serve(Request(self.command, self.path, dict(self.headers.items()), self._body()))
        if answer is None:
            self.close_connection = True
            return
        self._send(answer, proxy.keep_alive)

    def _send(self, answer: Answer, keep_alive: bool) -> None:
        self.send_response(answer.status, answer.reason or None)
        for k, v in answer.headers:
            if k.lower() not in _HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if self.command == "HEAD":  # no body: say how long the GET's would be
            self.send_header("Content-Length", answer.header("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        if not keep_alive:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any

    def finish(self) -> None:
        super().finish()
        self.server.proxy._close_upstream()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: RelayProxy

    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed or gone mid-request (the kill -9 tests do that) is not our error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)
