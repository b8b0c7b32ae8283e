"""A small fault-injecting HTTP proxy for the Livy client's tests.

It relays HTTP/1.1 requests to a target server (one request per connection: it forces
``Connection: close``) and, for requests that match a rule, injects a fault instead:

* ``drop_after``: forward the request, let the server act on it, then close the client's
  connection without an answer (the client cannot know whether the request took effect);
* ``drop_before``: close the connection without forwarding anything;
* ``502_after``: forward the request, then answer 502 Bad Gateway instead of the real answer;
* ``502``: answer 502 without forwarding.

Rules fire a given number of times (or, with ``for_seconds``, on every match until that many
seconds have passed since the rule was added), then the proxy relays normally. ``log`` records
(method, path, action, forwarded) for every request: ``forwarded`` says whether the request
reached the target server (so a test can compare a client's conclusion with what happened).
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit


@dataclass
class Rule:
    method: str
    path: str  # regex matched against the path (without query)
    action: str
    times: int = 1
    until: Optional[float] = None  # time.monotonic() deadline; when set, ``times`` is not used
    hits: int = 0


def _read_http_message(sock: socket.socket) -> bytes:
    """Read one HTTP message (headers + Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _read_until_close(sock: socket.socket) -> bytes:
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


_GATEWAY_BODY = b"<h1>502 Bad Gateway</h1>"
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
    + b"Content-Length: %d\r\n\r\n" % len(_GATEWAY_BODY)
    + _GATEWAY_BODY
)


class FaultProxy:
    """``FaultProxy(target_url).start()``; ``.url`` is what clients should use."""

    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(
        self, method: str, path: str, action: str, times: int = 1, for_seconds: Optional[float] = None
    ) -> Rule:
        """Inject ``action`` into the next ``times`` requests matching method and path regex
        (or into every one for the next ``for_seconds``); the rule counts its ``hits``."""
        until = None if for_seconds is None else time.monotonic() + for_seconds
        rule = Rule(method, path, action, times, until)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule: relay normally from now on."""
        with self._lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> str:
        with self._lock:
            for rule in self.rules:
                active = time.monotonic() < rule.until if rule.until is not None else rule.times > 0
                if active and rule.method == method and re.fullmatch(rule.path, path):
                    if rule.until is None:
                        rule.times -= 1
                    rule.hits += 1
                    return rule.action
        return "pass"

    def _handle(self, client: socket.socket) -> None:
        request = _read_http_message(client)
        if not request:
            return
        request_line = request.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, _ = (request_line.split(" ", 2) + ["", ""])[:3]
        path = target.split("?", 1)[0]
        action = self._match(method, path)
        if action == "drop_before":
            self.log.append((method, path, action, False))
            client.close()
            return
        if action == "502":
            self.log.append((method, path, action, False))
            client.sendall(BAD_GATEWAY)
            client.close()
            return
        # Forward with Connection: close so one connection carries one request.
        head, _, body = request.partition(b"\r\n\r\n")
        lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        forwarded = b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body
        try:
            with socket.create_connection(self.target, timeout=30) as upstream:
                upstream.sendall(forwarded)
                response = _read_until_close(upstream)
        except OSError:
            self.log.append((method, path, action, False))
            client.close()
            return
        self.log.append((method, path, action, True))
        if action == "drop_after":
            client.close()
            return
        if action == "502_after":
            client.sendall(BAD_GATEWAY)
            client.close()
            return
        # Say so: the connection closes after each answer, so the client must not reuse it.
        head, sep, rest = response.partition(b"\r\n\r\n")
        lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        client.sendall(b"\r\n".join(lines + [b"Connection: close"]) + sep + rest)
        client.close()
