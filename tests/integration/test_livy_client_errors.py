"""The Livy client's errors, against real sockets and small real HTTP servers.

These need no Spark: they check what a user sees when the endpoint is wrong, blocked,
refuses the credentials, or is not Livy at all — and that requests are retried only
where a repeat is harmless.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hail_emr_lab.livy import (
    LivyAuthError,
    LivyClient,
    LivyError,
    LivyHTTPError,
    LivyNotFound,
    LivyUnreachable,
    SessionState,
    poll_intervals,
)


class Scripted(BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, content_type, body) popped per request."""

    script: list = []
    seen: list = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path, dict(self.headers), body))
        status, ctype, payload = type(self).script.pop(0) if type(self).script else (200, "application/json", "{}")
        data = payload.encode() if isinstance(payload, str) else payload
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


@pytest.fixture
def scripted():
    handler = type("H", (Scripted,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_malformed_urls_say_what_is_expected():
    for bad in ("10.0.0.5:8998", "ftp://host:8998", "http://", "http://host:notaport"):
        with pytest.raises(LivyError) as err:
            LivyClient(bad)
        assert "http(s)://HOST:PORT" in str(err.value) or "invalid port" in str(err.value)


def test_refused_port_names_the_port_and_says_livy_is_not_running():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens
    client = LivyClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01)
    with pytest.raises(LivyUnreachable) as err:
        client.list_sessions()
    assert f"port {port} on 127.0.0.1" in str(err.value)
    assert "connection refused" in str(err.value)


def test_silent_port_says_which_security_group_rule_to_add():
    # A listener whose accept queue is full drops new SYNs: the connect times out, as with a
    # security group that silently drops packets.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        client = LivyClient(f"http://127.0.0.1:{port}", connect_timeout=0.5, retries=0)
        with pytest.raises(LivyUnreachable) as err:
            client.list_sessions()
        msg = str(err.value)
        assert f"port {port} on 127.0.0.1 did not answer in 0.5 s" in msg
        assert f"allow TCP {port} from this notebook's security group on the EMR master" in msg
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_html_from_a_proxy_is_explained(scripted):
    handler, url = scripted
    handler.script.append((200, "text/html", "<html><body>Sign in</body></html>"))
    with pytest.raises(LivyHTTPError) as err:
        LivyClient(url).list_sessions()
    assert "not JSON" in str(err.value) and "proxy or login page" in str(err.value)


def test_401_says_to_check_auth(scripted):
    handler, url = scripted
    handler.script.append((401, "text/html", "Unauthorized"))
    with pytest.raises(LivyAuthError) as err:
        LivyClient(url, auth=("basic", "alice", "s3cret")).list_sessions()
    assert "HTTP 401" in str(err.value) and "--auth" in str(err.value)
    assert "s3cret" not in str(err.value)
    # Basic credentials were sent, and X-Requested-By is on every request.
    headers = handler.seen[0][2]
    assert headers["Authorization"].startswith("Basic ")
    assert headers["X-Requested-By"]


def test_404_carries_livy_message(scripted):
    handler, url = scripted
    handler.script.append((404, "application/json", json.dumps({"msg": "Session '7' not found."})))
    with pytest.raises(LivyNotFound) as err:
        LivyClient(url).get_session(7)
    assert "Session '7' not found." in str(err.value)


def test_get_is_retried_on_502_but_statement_post_is_not(scripted):
    handler, url = scripted
    handler.script += [(502, "text/html", "bad gateway"), (200, "application/json", '{"sessions": []}')]
    client = LivyClient(url, retries=3, backoff=0.01)
    assert client.list_sessions() == []
    assert [s[0] for s in handler.seen] == ["GET", "GET"]

    handler.seen.clear()
    # POST answered 502; the client then looks at the statement list (empty: not accepted).
    handler.script += [(502, "text/html", "bad gateway"), (200, "application/json", '{"statements": []}')]
    with pytest.raises(LivyError) as err:
        client.submit_statement(0, "1 + 1")
    assert "nothing was re-sent" in str(err.value)
    methods = [(s[0], s[1].split("?")[0]) for s in handler.seen]
    assert methods == [("POST", "/sessions/0/statements"), ("GET", "/sessions/0/statements")]


def test_lost_answer_and_silent_livy_never_claims_the_statement_did_not_run(scripted):
    handler, url = scripted
    # The POST's answer is a 502 (the statement may have been accepted), then every attempt
    # to list the statements gets a 502 too: the client cannot know, and must say so.
    handler.script += [(502, "text/html", "bad gateway")] * 40
    client = LivyClient(url, retries=0, backoff=0.01)
    client.reconcile_timeout = 1.0
    with pytest.raises(LivyError) as err:
        client.submit_statement(0, "x = 1", known_last_id=3)
    msg = str(err.value)
    assert "may be running on the cluster" in msg and "%hail cancel" in msg
    assert "did not run" not in msg
    assert sum(1 for s in handler.seen if s[0] == "POST") == 1
    assert sum(1 for s in handler.seen if s[0] == "GET") >= 2, "it kept asking"


def test_lost_answer_to_statement_post_is_reconciled(scripted):
    handler, url = scripted
    accepted = {"id": 4, "code": "x = 1", "state": "waiting", "output": None, "progress": 0.0}
    handler.script += [
        (504, "text/html", "gateway timeout"),
        (200, "application/json", json.dumps({"total_statements": 5, "statements": [accepted]})),
    ]
    st = LivyClient(url, backoff=0.01).submit_statement(0, "x = 1", known_last_id=3)
    assert st.id == 4 and st.code == "x = 1"
    assert sum(1 for s in handler.seen if s[0] == "POST") == 1


class CutShort(BaseHTTPRequestHandler):
    """Answers 200 with a Content-Length of 1000 bytes, sends 10 and closes (a proxy or Livy dying
    mid-answer); from the ``healthy_after``-th request on, answers whole."""

    healthy_after = 10**9
    seen: list = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path))
        body = b'{"sessions": [], "statements": []}'
        whole = len(type(self).seen) > type(self).healthy_after
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if whole else 1000))
        self.end_headers()
        self.wfile.write(body if whole else body[:10])
        if not whole:
            self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_cut_short_is_retried_or_reconciled_never_a_raw_traceback():
    handler = type("H", (CutShort,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        client = LivyClient(url, retries=2, backoff=0.01)
        with pytest.raises(LivyUnreachable):  # a GET: asked again, then a clear error
            client.list_sessions()
        assert [m for m, _ in handler.seen] == ["GET"] * 3
        handler.seen.clear()
        handler.healthy_after = 2  # the POST and one look at the list are cut short, then Livy is back
        client.reconcile_timeout = 5.0
        with pytest.raises(LivyError, match="nothing was re-sent"):  # a POST: never sent again
            client.submit_statement(0, "x = 1")
        assert [m for m, _ in handler.seen].count("POST") == 1
    finally:
        server.shutdown()
        server.server_close()


def test_only_set_session_fields_are_sent(scripted):
    handler, url = scripted
    handler.script.append((201, "application/json", json.dumps({"id": 3, "state": "starting", "name": "n"})))
    LivyClient(url).create_session(name="n", kind="pyspark", conf=None, driverMemory="2g", jars=[])
    assert json.loads(handler.seen[0][3]) == {"name": "n", "kind": "pyspark", "driverMemory": "2g"}
    with pytest.raises(LivyError) as err:
        LivyClient(url).create_session(name="n", driver_memory="2g")
    assert "driver_memory" in str(err.value)


def test_poll_intervals_start_fast_and_cap():
    it = poll_intervals()
    first = [next(it) for _ in range(60)]
    assert first[0] <= 0.01
    assert all(b >= a for a, b in zip(first, first[1:]))
    assert max(first) == pytest.approx(0.5)


def test_death_reasons_say_what_happened():
    from hail_emr_lab.livy.session import death_reason

    gone = dict(state=SessionState.DEAD, log_tail=[], gone=True)
    assert death_reason(**gone, silent_for=700, heartbeat_timeout=600, idle_for=10).startswith("heartbeat lost")
    assert death_reason(**gone, silent_for=5, heartbeat_timeout=600, idle_for=2 * 3600).startswith(
        "idle timeout: no statement ran for 2.0 h")
    assert death_reason(**gone, silent_for=5, heartbeat_timeout=600, idle_for=60).startswith("killed: it was deleted")
    oom = ["...", "java.lang.OutOfMemoryError: Java heap space", "..."]
    assert "ran out of memory" in death_reason(SessionState.DEAD, oom, gone=False)
    assert death_reason(SessionState.DEAD, oom, gone=False, starting=True).startswith("failed to start: ")
    assert death_reason(SessionState.ERROR, ["worker pid 7 exited with code 3"], gone=False) == (
        "crashed: its interpreter exited (code 3)")
    assert death_reason(SessionState.KILLED, ["bye"], gone=False).startswith("killed")


def test_ping_is_true_only_for_an_answer_shaped_like_livys(scripted):
    handler, url = scripted
    handler.script = [
        (200, "application/json", '{"from": 0, "total": 0, "sessions": []}'),
        (200, "application/json", '{"status": "ok"}'),  # another JSON service on Livy's port
        (200, "text/html", "<html>login</html>"),
        (503, "application/json", '{"msg": "unavailable"}'),
    ]
    client = LivyClient(url, retries=3, backoff=0.01)
    assert [client.ping() for _ in range(4)] == [True, False, False, False]
    assert len(handler.seen) == 4 and client.retries == 3  # one request each, no retries
