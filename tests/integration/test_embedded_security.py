"""Who the embedded Livy answers: its own clients, not web pages, rebound names or other users.

Every request here goes over HTTP to a real server. None of them starts Spark: a refused
request must not create a session (checked with the server's counters), and an admitted one
is shown to pass the checks by reaching validation (``kind: spark`` answers 400 "PySpark
only" without starting anything). The browser side of the same attacks (a page of another
origin, DNS rebinding) is driven in Chromium in ``ui/test_drive_by.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests
from support.net import free_port

from hail_emr_lab.embedded.server import EmbeddedLivy

H = {"X-Requested-By": "tests"}
PASSES_CHECKS = {"kind": "spark"}  # admitted requests end in this 400, before any process starts


def _reaches_validation(resp: requests.Response) -> bool:
    return resp.status_code == 400 and "runs PySpark only" in resp.json()["msg"]


@pytest.fixture
def server(tmp_path):
    srv = EmbeddedLivy(port=0, max_sessions=1, plots_dir=str(tmp_path / "plots"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.stats["sessions_created"] == 0, "a refused request created a session"


def _raw(port: int, request: bytes) -> tuple[int, dict, bytes, bool]:
    """Send raw bytes; (status, headers, body, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
        sock.settimeout(5)
        try:
            closed = sock.recv(1) == b""
        except socket.timeout:
            closed = False
    return int(lines[0].split()[1]), headers, body, closed


# -- drive-by requests from web pages ------------------------------------------------------------


def test_a_simple_cross_site_post_creates_no_session(server):
    """What fetch(..., {mode: 'no-cors'}) can send: text/plain body, no custom header."""
    resp = requests.post(
        server.url + "/sessions", data=json.dumps({"kind": "pyspark"}), headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 400
    assert resp.json()["msg"].startswith("Missing Required Header for CSRF protection.")  # Livy's own words
    assert "X-Requested-By" in resp.json()["msg"]
    # Even with the header, a body that is not declared JSON is refused.
    resp = requests.post(
        server.url + "/sessions", data=json.dumps({"kind": "pyspark"}), headers=dict(H, **{"Content-Type": "text/plain"})
    )
    assert resp.status_code == 415 and "application/json" in resp.json()["msg"]
    form = requests.post(server.url + "/sessions", data={"kind": "pyspark"}, headers=H, timeout=10)
    assert form.status_code == 415
    # A statement to a session id an attacker guesses is refused the same way (before the 404).
    st = requests.post(server.url + "/sessions/0/statements", data='{"code": "1"}', headers={"Content-Type": "text/plain"})
    assert st.status_code == 400 and "CSRF" in st.json()["msg"]
    # Body-less non-GET requests need the header too (DELETE, cancel).
    assert requests.delete(server.url + "/sessions/0", timeout=10).status_code == 400
    # Our own clients' way passes.
    assert _reaches_validation(requests.post(server.url + "/sessions", json=PASSES_CHECKS, headers=H, timeout=10))
    assert requests.post(server.url + "/sessions", json=PASSES_CHECKS, headers=dict(H, **{"Content-Type": "application/json; charset=utf-8"})).status_code == 400


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null", "https://127.0.0.1"])
def test_a_foreign_origin_is_refused_with_403(server, origin):
    for method, path in (("POST", "/sessions"), ("GET", "/sessions"), ("OPTIONS", "/sessions")):
        resp = requests.request(method, server.url + path, json=PASSES_CHECKS, headers=dict(H, Origin=origin), timeout=10)
        assert resp.status_code == 403, (method, resp.text)
        msg = resp.json()["msg"]
        assert "Origin" in msg and "--allow-origin" in msg


def test_the_servers_own_origin_passes(server):
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
        resp = requests.post(server.url + "/sessions", json=PASSES_CHECKS, headers=dict(H, Origin=origin), timeout=10)
        assert _reaches_validation(resp), resp.text


def test_a_cross_site_browser_request_without_origin_is_refused(server):
    resp = requests.get(server.url + "/sessions", headers={"Sec-Fetch-Site": "cross-site"}, timeout=10)
    assert resp.status_code == 403 and "another site" in resp.json()["msg"]
    assert requests.get(server.url + "/sessions", headers={"Sec-Fetch-Site": "same-origin"}, timeout=10).ok


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "10.1.2.3:{port}", "localhost.evil.example"])
def test_a_rebound_host_name_is_refused_with_403(server, host):
    """DNS rebinding: the browser sends the attacker's name in Host while reaching 127.0.0.1."""
    value = host.format(port=server.port)
    for method in ("GET", "POST"):
        resp = requests.request(method, server.url + "/sessions", json=PASSES_CHECKS, headers=dict(H, Host=value))
        assert resp.status_code == 403, resp.text
        assert "DNS rebinding" in resp.json()["msg"] and "--allow-host" in resp.json()["msg"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "127.0.0.2:{port}", "[::1]:{port}"])
def test_loopback_host_names_pass(server, host):
    resp = requests.post(server.url + "/sessions", json=PASSES_CHECKS, headers=dict(H, Host=host.format(port=server.port)))
    assert _reaches_validation(resp), resp.text


def test_each_check_can_be_relaxed(tmp_path):
    srv = EmbeddedLivy(
        port=0, max_sessions=1, plots_dir=str(tmp_path / "p"), csrf=False,
        allowed_hosts=("livy.internal",), allowed_origins=("http://127.0.0.1:8888",),
    )
    srv.start()
    try:
        url = srv.url + "/sessions"
        assert _reaches_validation(requests.post(url, data=json.dumps(PASSES_CHECKS), headers={"Content-Type": "text/plain"}))
        assert _reaches_validation(requests.post(url, json=PASSES_CHECKS, headers={"Host": "livy.internal:1"}))
        assert _reaches_validation(requests.post(url, json=PASSES_CHECKS, headers={"Origin": "http://127.0.0.1:8888"}))
        assert requests.post(url, json=PASSES_CHECKS, headers={"Origin": "http://127.0.0.1:8889"}).status_code == 403
        assert requests.post(url, json=PASSES_CHECKS, headers={"Host": "other.internal"}).status_code == 403
    finally:
        srv.stop()
    anything = EmbeddedLivy(port=0, max_sessions=1, plots_dir=str(tmp_path / "p"), allowed_hosts=("*",), allowed_origins=("*",))
    anything.start()
    try:
        resp = requests.post(anything.url + "/sessions", json=PASSES_CHECKS, headers=dict(H, Host="x.example", Origin="http://y.example"))
        assert _reaches_validation(resp)
    finally:
        anything.stop()
    assert srv.stats["sessions_created"] == anything.stats["sessions_created"] == 0


def test_an_allowed_origin_gets_cors_answers_a_foreign_one_does_not(tmp_path):
    page = "http://127.0.0.1:8888"
    srv = EmbeddedLivy(port=0, max_sessions=1, plots_dir=str(tmp_path / "p"), allowed_origins=(page,), token="c" * 20)
    srv.start()
    try:
        preflight = requests.options(
            srv.url + "/sessions",
            headers={"Origin": page, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "x-requested-by, authorization, content-type"},
            timeout=10,
        )
        assert preflight.status_code == 200  # no token on a preflight: browsers never send one
        assert preflight.headers["Access-Control-Allow-Origin"] == page
        assert "X-Requested-By" in preflight.headers["Access-Control-Allow-Headers"]
        real = requests.post(
            srv.url + "/sessions", json=PASSES_CHECKS, timeout=10,
            headers=dict(H, Origin=page, Authorization="Bearer " + "c" * 20),
        )
        assert _reaches_validation(real) and real.headers["Access-Control-Allow-Origin"] == page
        own = requests.get(srv.url + "/sessions", headers={"Authorization": "Bearer " + "c" * 20}, timeout=10)
        assert "Access-Control-Allow-Origin" not in own.headers
        foreign = requests.options(srv.url + "/sessions", headers={"Origin": "http://127.0.0.1:8889"}, timeout=10)
        assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers
    finally:
        srv.stop()


def test_two_host_headers_are_refused(server):
    status, _, answer, _ = _raw(
        server.port,
        f"GET /sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nHost: evil.example\r\n\r\n".encode(),
    )
    assert status == 400 and "more than one Host" in json.loads(answer)["msg"]


# -- malformed framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["-5", "abc", "+5", "5, 6", "99999999999999999999999"])
def test_a_bad_content_length_is_400_and_ends_the_connection(server, length):
    body = b'{"kind": "pyspark"}'
    request = (
        f"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Requested-By: t\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + body
    status, headers, answer, closed = _raw(server.port, request)
    assert status in (400, 413), answer
    assert "Content-Length" in json.loads(answer)["msg"] or "larger than" in json.loads(answer)["msg"]
    assert closed and headers.get("connection") == "close"


def test_conflicting_and_chunked_lengths_are_refused(server):
    head = f"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Requested-By: t\r\nContent-Type: application/json\r\n"
    status, _, answer, closed = _raw(server.port, (head + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}").encode())
    assert status == 400 and "conflicting" in json.loads(answer)["msg"] and closed
    status, _, answer, closed = _raw(server.port, (head + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode())
    assert status == 411 and "Content-Length" in json.loads(answer)["msg"] and closed


def test_a_refused_request_with_a_body_does_not_poison_the_next_one(server):
    """The unread body of a refused request must never be parsed as a request of its own."""
    smuggled = "DELETE /sessions/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Requested-By: t\r\n\r\n"
    request = (
        f"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n{smuggled}"
    ).encode()
    status, headers, _, closed = _raw(server.port, request)
    assert status == 400 and closed and headers.get("connection") == "close"


# -- the shared-secret token ---------------------------------------------------------------------


def test_token_is_required_on_every_request_when_set(tmp_path):
    token = "t0ken-" + "x" * 20
    srv = EmbeddedLivy(port=0, max_sessions=1, plots_dir=str(tmp_path / "p"), token=token, token_hint="/some/file")
    srv.start()
    try:
        url = srv.url + "/sessions"
        for method in ("GET", "POST", "DELETE"):
            bare = requests.request(method, url, json=PASSES_CHECKS, headers=H, timeout=10)
            assert bare.status_code == 401, (method, bare.text)
            assert bare.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer TOKEN" in bare.json()["msg"] and "(it is in /some/file)" in bare.json()["msg"]
            assert token not in bare.text
        wrong = requests.get(url, headers={"Authorization": "Bearer " + "y" * 26}, timeout=10)
        assert wrong.status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        assert _reaches_validation(requests.post(url, json=PASSES_CHECKS, headers=dict(H, Authorization=f"Bearer {token}")))
        basic = "Basic " + base64.b64encode(f"anyone:{token}".encode()).decode()
        assert requests.get(url, headers={"Authorization": basic}, timeout=10).status_code == 200
        assert requests.get(url, auth=("u", "not-it"), timeout=10).status_code == 401
        # Our own client sends it through its custom headers.
        from hail_emr_lab.livy import LivyClient, LivyError

        with LivyClient(srv.url, headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.list_sessions() == []
        with LivyClient(srv.url, retries=0) as client, pytest.raises(LivyError) as refused:
            client.list_sessions()
        assert "401" in str(refused.value) or "token" in str(refused.value)
    finally:
        srv.stop()
    assert srv.stats["sessions_created"] == 0


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def test_cli_warns_when_listening_beyond_loopback_without_a_token(tmp_path):
    proc = _cli("--host", "0.0.0.0", "--plots-dir", str(tmp_path / "p"))
    first = proc.stdout.readline()
    port = int(re.search(r":(\d+) ", first).group(1))
    # Reachable through loopback and through this machine's own name; not through a foreign one.
    assert requests.get(f"http://127.0.0.1:{port}/sessions", timeout=10).status_code == 200
    assert requests.get(f"http://127.0.0.1:{port}/sessions", headers={"Host": "evil.example"}, timeout=10).status_code == 403
    assert requests.get(f"http://127.0.0.1:{port}/sessions", headers={"Host": socket.gethostname()}).status_code == 200
    _, err = _stop(proc)
    assert "warning: listening on 0.0.0.0 without a token: anyone who can reach port" in err
    assert "--token-file" in err


def test_cli_token_file_is_created_private_and_required(tmp_path):
    token_file = tmp_path / "state" / "livy.token"
    proc = _cli("--host", "0.0.0.0", "--token-file", str(token_file), "--plots-dir", str(tmp_path / "p"))
    try:
        first = proc.stdout.readline()
        port = int(re.search(r":(\d+) ", first).group(1))
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert token not in first + proc.stdout.readline()  # the second line says where it is, not what
        url = f"http://127.0.0.1:{port}/sessions"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    finally:
        _, err = _stop(proc)
    assert "without a token" not in err
    # The same file is reused by the next start (clients keep their token).
    again = _cli("--token-file", str(token_file), "--plots-dir", str(tmp_path / "p"))
    try:
        port = int(re.search(r":(\d+) ", again.stdout.readline()).group(1))
        assert requests.get(f"http://127.0.0.1:{port}/sessions", headers={"Authorization": f"Bearer {token}"}).ok
    finally:
        _stop(again)


def test_cli_refuses_a_token_file_others_can_read(tmp_path):
    token_file = tmp_path / "livy.token"
    token_file.write_text("a-token-of-thirty-two-characters\n")
    token_file.chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", "0", "--token-file", str(token_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "can be read by others (mode 0644)" in done.stderr and f"chmod 600 {token_file}" in done.stderr
    assert "Traceback" not in done.stderr and "a-token-of" not in done.stderr


# -- the launcher and our clients ----------------------------------------------------------------


def test_launched_server_requires_the_token_and_our_clients_send_it(tmp_path, monkeypatch):
    """ensure_embedded_livy writes a private token; connect, the sidebar and jobs clients send it."""
    from hail_emr_lab.config import load_config
    from hail_emr_lab.embedded import launcher as embedded_livy
    from hail_emr_lab.endpoint import make_client as make_configured_client
    from hail_emr_lab.notebook.connect import make_client

    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path / "local"))
    url = embedded_livy.ensure_embedded_livy(port=free_port(), timeout=120)
    try:
        token_file = tmp_path / "local" / "livy.token"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert json.loads((tmp_path / "local" / "livy.json").read_text())["token_file"] == str(token_file)
        assert requests.get(url + "/sessions", timeout=10).status_code == 401  # another local user
        assert embedded_livy.ensure_embedded_livy(port=free_port()) == url  # found again, with the token
        cfg = load_config()
        with make_client(url, cfg) as client:  # %hail connect
            assert client.list_sessions() == []
        with make_configured_client(cfg, url, quick=True) as client:  # the sidebar's server extension
            assert client.list_sessions() == []
        from hail_emr_lab.jobs.livy import endpoint_client
        from hail_emr_lab.jobs.params import Settings

        with endpoint_client(Settings({"url": url})) as client:  # the livy job backend
            assert client.list_sessions() == []
        # The token goes to that server only: not to another port or host.
        assert embedded_livy.client_headers(url.rsplit(":", 1)[0] + ":1") == {}
        assert embedded_livy.client_headers("http://10.0.0.5:8998") == {}
    finally:
        assert embedded_livy.stop_embedded_livy()


def test_lab_environment_points_clients_at_its_token(tmp_path, monkeypatch):
    """``hail-emr-lab lab`` names its Livy and token file in the environment of JupyterLab."""
    from hail_emr_lab.embedded import launcher as embedded_livy
    from hail_emr_lab.embedded.guard import ensure_token

    token_file = tmp_path / "lab-state" / "livy.token"
    token = ensure_token(token_file)
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", "http://127.0.0.1:18998")
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path / "unused"))
    assert embedded_livy.client_headers("http://localhost:18998/") == {"Authorization": f"Bearer {token}"}
    assert embedded_livy.client_headers("http://127.0.0.1:18999") == {}
    token_file.chmod(0o640)
    from hail_emr_lab.errors import HailEmrLabError

    with pytest.raises(HailEmrLabError, match="can be read by others"):
        embedded_livy.client_headers("http://127.0.0.1:18998")


def test_concurrent_token_creation_agrees(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from hail_emr_lab.embedded.guard import ensure_token

    path = tmp_path / "t" / "livy.token"
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: ensure_token(path), range(16)))
    assert len(tokens) == 1 and [p.name for p in path.parent.iterdir()] == ["livy.token"]


def test_embedded_server_still_answers_quickly_after_refusals(server):
    """Refusals close their connection; a pooled client's next request still works."""
    http = requests.Session()
    http.headers.update(H)
    for _ in range(3):
        assert http.post(server.url + "/sessions", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
        started = time.monotonic()
        assert http.get(server.url + "/sessions", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
