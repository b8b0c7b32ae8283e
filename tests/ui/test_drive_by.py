"""A web page in the user's browser must not be able to run code through the embedded Livy.

Headless Chromium opens a page served by another local server (the attacker's), which tries
what any site could: blind ``fetch(..., {mode: 'no-cors'})`` POSTs of a session and of
statements that would write a marker file. Then DNS rebinding: a page of ``rebind.test``
whose name (through Chromium's host resolver rules, standing in for a DNS answer that changes)
now reaches the embedded Livy on the page's own port, so its requests are same-origin and can
carry any header. Each time the server must see the requests and refuse them: no session, no
marker, nothing readable.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.lab import chromium
from support.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Stands in for a DNS answer that changes: rebind.test resolves to this machine.
REBIND_RULE = "--host-resolver-rules=MAP rebind.test 127.0.0.1"
# Ports Chromium refuses to connect to (its "unsafe ports" in the range free_port picks from).
_BLOCKED_PORTS = {6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}

ATTACK_PAGE = """<!doctype html><title>innocent page</title><script>
window.attack = async function (livy, marker, rounds) {
  const tried = [];
  const send = async (path, body) => {
    try {
      await fetch(livy + path, {method: "POST", mode: "no-cors",
                                headers: {"Content-Type": "text/plain"}, body: JSON.stringify(body)});
      tried.push(path);
    } catch (e) {
      tried.push(path + " (" + e + ")");
    }
  };
  await send("/sessions", {kind: "pyspark"});
  const code = "open(" + JSON.stringify(marker) + ", 'w').write('pwned')";
  for (let round = 0; round < rounds; round++) {
    for (let sid = 0; sid < 2; sid++) await send("/sessions/" + sid + "/statements", {code: code, kind: "pyspark"});
    await new Promise(r => setTimeout(r, 500));
  }
  return tried;
};
window.sameOrigin = async function (method, path, body) {
  const init = {method: method, headers: {"X-Requested-By": "page", "Content-Type": "application/json"}};
  if (body !== null) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  return [r.status, await r.text()];
};
</script><p>nothing to see</p>"""


def _port() -> int:
    while True:
        port = free_port()
        if port not in _BLOCKED_PORTS:
            return port


class _PageServer:
    """The attacker's web server: one page, on 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                data = ATTACK_PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def browser():
    with chromium(REBIND_RULE) as launched:
        yield launched


def _no_sessions(livy) -> None:
    assert livy.stats["sessions_created"] == 0, "the page created a session"
    assert livy.sessions.list() == []


def test_a_page_of_another_origin_cannot_start_a_session_or_run_code(browser, tmp_path):
    from hail_emr_lab.embedded.server import EmbeddedLivy

    marker = tmp_path / "pwned.txt"
    livy = EmbeddedLivy(port=_port(), max_sessions=1, plots_dir=str(tmp_path / "plots"))
    livy.start()
    attacker = _PageServer(_port())
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{attacker.httpd.server_address[1]}/")
        tried = page.evaluate("([livy, marker]) => attack(livy, marker, 4)", [livy.url, str(marker)])
        assert len(tried) == 9, tried
        _no_sessions(livy)
        assert not marker.exists()
        # The requests reached the server and were refused there (not held back by the browser).
        assert livy.stats["requests_refused"] >= 9, (livy.stats, tried)
    finally:
        attacker.stop()
        livy.stop()


def test_dns_rebinding_gets_nothing(browser, tmp_path):
    """The page's own origin now points at the Livy: even same-origin requests are refused."""
    from hail_emr_lab.embedded.server import EmbeddedLivy

    port = _port()
    attacker = _PageServer(port)
    page = browser.new_page()
    page.goto(f"http://rebind.test:{port}/")
    attacker.stop()  # the name is "rebound": the same origin now reaches the embedded Livy
    livy = EmbeddedLivy(port=port, max_sessions=1, plots_dir=str(tmp_path / "plots"))
    livy.start()
    try:
        status, text = page.evaluate("() => sameOrigin('POST', '/sessions', {kind: 'pyspark'})")
        assert status == 403, text
        assert "DNS rebinding" in json.loads(text)["msg"]
        for path in ("/sessions", "/sessions/0/log", "/version"):
            status, text = page.evaluate("(p) => sameOrigin('GET', p, null)", path)
            assert status == 403, (path, text)
        _no_sessions(livy)
        assert livy.stats["requests_refused"] >= 4
    finally:
        livy.stop()


def test_the_page_server_really_serves(tmp_path):
    """Guard for the two tests above: the attacker page itself loads (no false comfort)."""
    import urllib.request

    server = _PageServer(_port())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.httpd.server_address[1]}/", timeout=10) as answer:
            assert b"window.attack" in answer.read()
    finally:
        server.stop()
