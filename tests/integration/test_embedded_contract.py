"""The embedded Livy's REST contract: paths, status codes, JSON shapes and messages.

Nothing here waits for Spark to come up: sessions are created and deleted (or reaped) while
still ``starting``, which is enough to check the HTTP side and the process cleanup.
Statement execution is covered in test_embedded_session.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from hail_emr_lab.embedded.server import EmbeddedLivy
from hail_emr_lab.livy.protocol import SESSION_INFO_FIELDS, SHARED_SESSION_NEEDS_KIND

H = {"X-Requested-By": "tests"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.1)


def _worker_pid_from_log(url: str, sid: int) -> int:
    log = requests.get(f"{url}/sessions/{sid}/log?from=0&size=5", timeout=10).json()["log"]
    match = re.search(r"started worker pid (\d+)", "\n".join(log))
    assert match, log
    return int(match.group(1))


@pytest.fixture
def url(livy_server) -> str:
    return livy_server.url


def test_empty_lists_and_version(url):
    body = requests.get(url + "/sessions?from=0&size=10", timeout=10).json()
    assert set(body) == {"from", "total", "sessions"} and body["from"] == 0
    batches = requests.get(url + "/batches", timeout=10).json()
    assert set(batches) == {"from", "total", "sessions"}
    assert requests.get(url + "/version", timeout=10).json()["version"].startswith("0.8")


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/sessions/9999"),
        ("DELETE", "/sessions/9999"),
        ("GET", "/sessions/9999/state"),
        ("GET", "/sessions/9999/log"),
        ("GET", "/sessions/9999/statements"),
        ("POST", "/sessions/9999/statements"),
        ("GET", "/sessions/9999/statements/0"),
        ("POST", "/sessions/9999/statements/0/cancel"),
        ("POST", "/sessions/9999/completion"),
    ],
)
def test_unknown_session_is_404_with_livys_message(url, method, path):
    resp = requests.request(method, url + path, json={"code": "1"}, headers=H, timeout=10)
    assert resp.status_code == 404
    assert resp.json() == {"msg": "Session '9999' not found."}
    assert resp.headers["Content-Type"].startswith("application/json")


def test_unknown_batch_and_endpoint(url):
    for method in ("GET", "DELETE"):
        resp = requests.request(method, url + "/batches/77", headers=H, timeout=10)
        assert (resp.status_code, resp.json()) == (404, {"msg": "Session '77' not found."})
    assert requests.get(url + "/sessions/abc", timeout=10).status_code == 404
    assert requests.get(url + "/nothing-here", timeout=10).status_code == 404
    assert requests.put(url + "/sessions", json={}, headers=H, timeout=10).status_code == 405


@pytest.mark.parametrize("kind,label", [("spark", "Scala"), ("scala", "Scala"), ("sparkr", "R"), ("r", "R")])
def test_kinds_we_cannot_serve_get_a_clear_400(url, kind, label):
    resp = requests.post(url + "/sessions", json={"kind": kind}, headers=H, timeout=10)
    assert resp.status_code == 400
    msg = resp.json()["msg"]
    assert "runs PySpark only" in msg and f"kind '{kind}' ({label}) is not supported" in msg


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"kind": "pyspark", "executorCount": 2}, "Unrecognized field 'executorCount'"),
        ({"kind": "pyspark", "foo": 1, "bar": 2}, "Unrecognized fields 'bar', 'foo'"),
        ({"kind": "cobol"}, "Invalid kind 'cobol'"),
        ({"conf": ["a"]}, "'conf' must be an object"),
        ({"jars": "a.jar"}, "'jars' must be a list of strings"),
        ({"driverCores": "two"}, "'driverCores' must be a non-negative integer"),
        ({"heartbeatTimeoutInSecond": -1}, "'heartbeatTimeoutInSecond' must be a non-negative integer"),
        ({"ttl": "soon"}, "'ttl' must be a duration"),
    ],
)
def test_bad_session_bodies_are_rejected_naming_the_field(url, body, fragment):
    resp = requests.post(url + "/sessions", json=body, headers=H, timeout=10)
    assert resp.status_code == 400
    assert fragment in resp.json()["msg"]


def test_malformed_json_body(url):
    resp = requests.post(url + "/sessions", data="{not json", headers=dict(H, **{"Content-Type": "application/json"}))
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["msg"]
    resp = requests.post(url + "/sessions", json=[1, 2], headers=H, timeout=10)
    assert resp.status_code == 400 and "JSON object" in resp.json()["msg"]


def test_session_lifecycle_while_starting(url, livy_server):
    """Create -> starting; statements refused (400); log; duplicate name; delete -> 404, worker gone."""
    created = requests.post(
        url + "/sessions?doAs=alice", json={"kind": "python", "name": "contract-starting"}, headers=H, timeout=10
    )
    assert created.status_code == 201
    view = created.json()
    assert set(view) == set(SESSION_INFO_FIELDS)
    assert created.headers["Location"] == f"/sessions/{view['id']}"
    assert (view["state"], view["kind"], view["name"], view["proxyUser"]) == (
        "starting",
        "pyspark",
        "contract-starting",
        "alice",
    )
    assert view["appInfo"] == {"driverLogUrl": None, "sparkUiUrl": None}
    sid = view["id"]
    pid = livy_server.worker_pid(sid)
    assert _worker_pid_from_log(url, sid) == pid and _alive(pid)
    try:
        assert requests.get(f"{url}/sessions/{sid}/state", timeout=10).json() == {"id": sid, "state": "starting"}
        listed = requests.get(url + "/sessions", timeout=10).json()
        assert sid in [s["id"] for s in listed["sessions"]] and listed["total"] >= 1
        refused = requests.post(f"{url}/sessions/{sid}/statements", json={"code": "1"}, headers=H, timeout=10)
        assert (refused.status_code, refused.json()) == (400, {"msg": "Session is in state starting"})
        scala = requests.post(
            f"{url}/sessions/{sid}/statements", json={"code": "1", "kind": "spark"}, headers=H, timeout=10
        )
        assert scala.status_code == 400 and "runs PySpark only" in scala.json()["msg"]
        no_code = requests.post(f"{url}/sessions/{sid}/statements", json={"kind": "pyspark"}, headers=H, timeout=10)
        assert no_code.status_code == 400 and "'code' is required" in no_code.json()["msg"]
        extra = requests.post(f"{url}/sessions/{sid}/statements", json={"code": "1", "x": 1}, headers=H, timeout=10)
        assert extra.status_code == 400 and "Unrecognized field 'x'" in extra.json()["msg"]
        dup = requests.post(url + "/sessions", json={"name": "contract-starting"}, headers=H, timeout=10)
        assert (dup.status_code, dup.json()) == (400, {"msg": "Duplicate session name: contract-starting"})
        assert requests.get(f"{url}/sessions/{sid}/statements", timeout=10).json() == {
            "total_statements": 0,
            "statements": [],
        }
    finally:
        deleted = requests.delete(f"{url}/sessions/{sid}", headers=H, timeout=10)
    assert (deleted.status_code, deleted.json()) == (200, {"msg": "deleted"})
    assert requests.get(f"{url}/sessions/{sid}", timeout=10).status_code == 404
    assert sid not in [s["id"] for s in requests.get(url + "/sessions", timeout=10).json()["sessions"]]
    _wait_gone(pid)


def test_session_info_carries_livys_fields(url):
    """Livy's SessionInfo: the request's sizing and resources, unset ones 0, null or empty."""
    body = {
        "kind": "pyspark",
        "name": "contract-info",
        "driverMemory": "1g",
        "driverCores": 1,
        "executorMemory": "512m",
        "numExecutors": 2,
        "jars": ["/nowhere/a.jar"],
        "files": ["/nowhere/data.txt"],
        "conf": {"spark.test.x": "1"},
        "heartbeatTimeoutInSecond": 300,
        "ttl": "30m",
        "queue": "q1",
    }
    created = requests.post(url + "/sessions", json=body, headers=H, timeout=10)
    try:
        assert created.status_code == 201, created.text
        for view in (created.json(), requests.get(f"{url}/sessions/{created.json()['id']}", timeout=10).json()):
            assert set(view) == set(SESSION_INFO_FIELDS)
            for key, value in body.items():
                assert view[key] == value, key
            assert (view["executorCores"], view["archives"], view["pyFiles"]) == (0, [], [])
        bare = requests.get(url + "/sessions", timeout=10).json()["sessions"]
        assert all(set(s) == set(SESSION_INFO_FIELDS) for s in bare)
    finally:
        requests.delete(f"{url}/sessions/{created.json()['id']}", headers=H, timeout=10)


def test_ttl_counts_statements_not_state_polls(url):
    """Livy: only statements renew a ttl; GET /sessions/N/state is a heartbeat, not activity."""
    sid = requests.post(url + "/sessions", json={"ttl": "2s"}, headers=H, timeout=10).json()["id"]
    deadline = time.monotonic() + 30
    while True:
        state = requests.get(f"{url}/sessions/{sid}/state", timeout=10)
        if state.status_code == 404:
            break
        assert state.status_code == 200
        assert time.monotonic() < deadline, "a ttl=2s session polled for its state was never reaped"
        time.sleep(0.3)
    log_gone = requests.get(f"{url}/sessions/{sid}/log", timeout=10)
    assert log_gone.status_code == 404


def test_statement_without_kind_in_a_shared_session_is_refused(url):
    sid = requests.post(url + "/sessions", json={"name": "contract-shared"}, headers=H, timeout=10).json()["id"]
    try:
        resp = requests.post(f"{url}/sessions/{sid}/statements", json={"code": "1"}, headers=H, timeout=10)
        assert resp.status_code == 400
        assert resp.json()["msg"].startswith(SHARED_SESSION_NEEDS_KIND)
        completion = requests.post(f"{url}/sessions/{sid}/completion", json={"code": "x"}, headers=H, timeout=10)
        assert completion.status_code == 400 and SHARED_SESSION_NEEDS_KIND in completion.json()["msg"]
        # With a kind it passes that check (and meets the next: the session is still starting).
        kinded = requests.post(
            f"{url}/sessions/{sid}/statements", json={"code": "1", "kind": "pyspark"}, headers=H, timeout=10
        )
        assert (kinded.status_code, kinded.json()) == (400, {"msg": "Session is in state starting"})
    finally:
        requests.delete(f"{url}/sessions/{sid}", headers=H, timeout=10)


@pytest.mark.parametrize("value", ["0", "-3", "many", True])
def test_bad_livy_setting_in_conf_is_rejected_naming_it(url, value):
    key = "spark.__livy__.livy.rsc.retained-statements"
    resp = requests.post(url + "/sessions", json={"conf": {key: value}}, headers=H, timeout=10)
    assert resp.status_code == 400
    assert f"conf '{key}' must be a positive whole number" in resp.json()["msg"]


def test_heartbeat_timeout_reaps_an_untouched_session(url):
    created = requests.post(url + "/sessions", json={"heartbeatTimeoutInSecond": 1}, headers=H, timeout=10).json()
    sid = created["id"]
    pid = _worker_pid_from_log(url, sid)  # the log endpoint counts as a touch; the list does not
    deadline = time.monotonic() + 20
    while sid in [s["id"] for s in requests.get(url + "/sessions", timeout=10).json()["sessions"]]:
        assert time.monotonic() < deadline, "session with heartbeatTimeoutInSecond=1 was not reaped"
        time.sleep(0.3)
    _wait_gone(pid)


def test_csrf_protection_is_on_by_default():
    server = EmbeddedLivy(port=0, max_sessions=1)
    server.start()
    try:
        bare = requests.post(server.url + "/sessions", json={"kind": "pyspark"}, timeout=10)
        assert bare.status_code == 400
        assert bare.json()["msg"].startswith("Missing Required Header for CSRF protection.")  # Livy's words first
        assert requests.delete(server.url + "/sessions/0", timeout=10).status_code == 400
        assert requests.get(server.url + "/sessions", timeout=10).status_code == 200
        # With the header the request passes CSRF and reaches validation.
        with_header = requests.post(server.url + "/sessions", json={"kind": "spark"}, headers=H, timeout=10)
        assert with_header.status_code == 400 and "PySpark only" in with_header.json()["msg"]
        assert server.stats["sessions_created"] == 0
    finally:
        server.stop()
        server.stop()  # idempotent


def test_several_sessions_up_to_max_sessions_and_stop_kills_workers(tmp_path):
    server = EmbeddedLivy(port=0, max_sessions=2, plots_dir=str(tmp_path / "plots"))
    server.start()
    assert os.path.isdir(server.plots_dir) and os.path.isabs(server.plots_dir)
    try:
        first = requests.post(server.url + "/sessions", json={}, headers=H, timeout=10)
        second = requests.post(server.url + "/sessions", json={"kind": "sql"}, headers=H, timeout=10)
        assert (first.status_code, second.status_code) == (201, 201)
        assert (first.json()["kind"], second.json()["kind"]) == ("shared", "sql")
        pids = {server.worker_pid(first.json()["id"]), server.worker_pid(second.json()["id"])}
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)  # one worker process per session
        third = requests.post(server.url + "/sessions", json={}, headers=H, timeout=10)
        assert third.status_code == 400
        msg = third.json()["msg"]
        assert "at most 2 sessions" in msg and "DELETE /sessions/{id}" in msg
        assert server.stats["sessions_created"] == 2
    finally:
        server.stop()
    for pid in pids:
        _wait_gone(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/sessions", timeout=5)


def test_cli_serves_until_sigterm_and_cleans_up(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", "0", "--plots-dir", str(tmp_path / "p")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first + proc.stderr.read() if proc.poll() is not None else first
        url = match.group(1)
        created = requests.post(url + "/sessions", json={"kind": "pyspark"}, headers=H, timeout=10).json()
        pid = _worker_pid_from_log(url, created["id"])
        assert _alive(pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopped" in proc.stdout.read()
        _wait_gone(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_options():
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "local-livy", "--max-sessions", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--max-sessions must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


@pytest.mark.slow
def test_workers_and_jvms_exit_when_the_server_is_killed(tmp_path):
    """SIGKILL leaves no cleanup code a chance: the pipes alone must bring everything down."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", "0", "--plots-dir", str(tmp_path / "p")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = re.search(r"(http://127\.0\.0\.1:\d+)", proc.stdout.readline()).group(1)
        created = requests.post(url + "/sessions", json={"kind": "pyspark"}, headers=H, timeout=10).json()
        worker = _worker_pid_from_log(url, created["id"])
        deadline = time.monotonic() + 120
        while not (jvms := _children(worker)):
            assert time.monotonic() < deadline, "the worker never started its JVM"
            time.sleep(0.2)
        proc.kill()
        proc.wait(10)
        for pid in [worker, *jvms]:
            _wait_gone(pid, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_a_clear_error(livy_server):
    from hail_emr_lab.errors import HailEmrLabError

    clash = EmbeddedLivy(port=livy_server.port)
    with pytest.raises(HailEmrLabError, match=rf"cannot listen on 127\.0\.0\.1:{livy_server.port}.*--port"):
        clash.start()
    clash.stop()  # nothing started: still fine to call
