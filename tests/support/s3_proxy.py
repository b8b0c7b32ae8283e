"""An HTTP proxy in front of the moto server: counts S3 requests, adds the conditional-write
check moto lacks, and lets a test act at an exact moment of a transfer.

* ``requests``: every (method, path-with-query) a client sent, in order;
* conditional ``CompleteMultipartUpload``: S3 honours ``If-Match`` / ``If-None-Match`` on it (the
  write happens only if the object still has that ETag / does not exist yet); moto 5 ignores
  both and overwrites. The proxy checks the condition against moto with a HEAD first and answers
  as S3 does: 412 ``PreconditionFailed``, or 404 ``NoSuchKey`` for ``If-Match`` on a missing key.
  What this stand-in does not cover: S3 checks and writes atomically; here another writer could
  slip in between the HEAD and the write (the tests never race a writer against a completion);
* ``down``: while true, every connection is closed without an answer (S3 unreachable);
* ``delay``: seconds added to every request (slows a run down so a test can stop it midway);
* ``on_answer``: called as ``f(method, path, status)`` after moto answered a request and before
  the client gets the answer (a test can ``kill -9`` the client there: the request took
  effect, the client never learns it).
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

_HOP = {"expect", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def _error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


class S3Proxy:
    """``S3Proxy(moto_url).start()`` -> ``.url`` for the clients under test."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str, int]] = []  # conditional completions refused here
        self.on_answer: Optional[Callable[[str, str, int], None]] = None
        self.delay = 0.0
        self.down = False
        self.conditional = True  # False: pass completions through to moto unchecked
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            _local = threading.local()

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

            def _upstream(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, str, list, bytes]:
                for attempt in range(2):
                    conn = getattr(self._local, "conn", None)
                    if conn is None:
                        conn = self._local.conn = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                    try:
                        conn.request(method, path, body=body, headers=headers)
                        resp = conn.getresponse()
                        return resp.status, resp.reason, resp.getheaders(), resp.read()
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()
                        self._local.conn = None
                        if attempt:
                            raise
                raise AssertionError("unreachable")

            def _precondition(self, path: str, headers: dict) -> Optional[tuple[int, bytes]]:
                """S3's check of a conditional CompleteMultipartUpload; None if it may proceed."""
                if_match = self.headers.get("If-Match")
                if_none = self.headers.get("If-None-Match")
                if not (if_match or if_none):
                    return None
                object_path = path.split("?", 1)[0]
                auth = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date",
                                                                       "x-amz-security-token", "host")}
                status, _, head_headers, _ = self._upstream("HEAD", object_path, b"", auth)
                etag = dict((k.lower(), v) for k, v in head_headers).get("etag")
                exists = status == 200
                if if_none == "*" and exists:
                    return 412, _error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
                if if_match and not exists:
                    return 404, _error("NoSuchKey", "The specified key does not exist.")
                if if_match and if_match.strip('"') != (etag or "").strip('"'):
                    return 412, _error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
                return None

            def _forward(self) -> None:
                if proxy.down:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self._body()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                if proxy.delay:
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                refused = None
                if proxy.conditional and self.command == "POST" and "uploadId" in query:
                    refused = self._precondition(self.path, headers)
                if refused is not None:
                    status, reason, resp_headers, data = refused[0], "Refused", [("Content-Type", "application/xml")], refused[1]
                    with proxy._lock:
                        proxy.refused.append((self.command, self.path, status))
                else:
                    status, reason, resp_headers, data = self._upstream(self.command, self.path, body, headers)
                if proxy.on_answer is not None:
                    proxy.on_answer(self.command, self.path, status)
                self.send_response(status, reason)
                for k, v in resp_headers:
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                else:
                    self.send_header("Content-Length", dict((k.lower(), v) for k, v in resp_headers).get("content-length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                # A client killed mid-request (the kill -9 tests do that) is not our error.
                import sys

                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> S3Proxy:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.refused.clear()

    def count(self, method: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)
