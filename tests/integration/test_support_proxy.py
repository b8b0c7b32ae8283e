"""The tests' HTTP relay (tests/support/proxy.py) against a real upstream over loopback: what it
relays, counts and refuses, and that it never sends one request upstream twice."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.fault_proxy import FaultProxy
from support.proxy import RelayProxy
from support.s3_proxy import S3Proxy


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with its method, path and body length."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        return None

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = f"{self.command} {self.path} {len(self.rfile.read(length))}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = _any


@pytest.fixture
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hangs_up():
    """An upstream that reads each request and closes the connection unanswered; counts them."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    listener.close()


def _request(url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        conn.request(method, path, body=body or None, headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_relays_counts_and_keeps_chunked_bodies_whole(echo):
    with RelayProxy(echo) as proxy:
        assert _request(proxy.url, "GET", "/b/k?x=1")[2] == b"GET /b/k?x=1 0"
        chunks = iter([b"abc", b"defg"])
        status, _, body = _request(proxy.url, "PUT", "/b/k", chunks, {"Transfer-Encoding": "chunked"})
        assert (status, body) == (200, b"PUT /b/k 7")
        status, headers, body = _request(proxy.url, "HEAD", "/b/k")
        assert status == 200 and body == b"" and headers["Content-Length"] == str(len(b"HEAD /b/k 0"))
        assert proxy.requests == [("GET", "/b/k?x=1"), ("PUT", "/b/k"), ("HEAD", "/b/k")]
        assert (proxy.count(), proxy.count("PUT")) == (3, 1)
        proxy.reset()
        assert proxy.count() == 0 and proxy.max_in_flight == 0
        proxy.down = True
        with pytest.raises(http.client.RemoteDisconnected):
            _request(proxy.url, "GET", "/b/k")
        assert proxy.count() == 0  # an unreachable server saw nothing


def test_fault_proxy_answers_one_request_per_connection(echo):
    with FaultProxy(echo) as proxy:
        status, headers, _ = _request(proxy.url, "GET", "/sessions")
        assert status == 200 and headers["Connection"] == "close"
        proxy.add("POST", "/sessions", "502_after")
        assert _request(proxy.url, "POST", "/sessions", b"{}")[0] == 502
        assert proxy.log == [("GET", "/sessions", "pass", True), ("POST", "/sessions", "502_after", True)]


@pytest.mark.parametrize("proxy_class", [RelayProxy, S3Proxy, FaultProxy])
def test_a_request_the_upstream_may_have_acted_on_is_sent_once(hangs_up, proxy_class):
    upstream, seen = hangs_up
    with proxy_class(upstream) as proxy:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _request(proxy.url, "POST", "/b/k?uploads", b"part")
    assert len(seen) == 1, seen
