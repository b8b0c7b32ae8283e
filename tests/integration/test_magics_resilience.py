"""What a user sees when the network or Livy misbehaves, through a real kernel.

One kernel and one embedded-Livy session for the module (a Spark JVM). The kernel talks to
Livy through the fault-injecting proxy (``fault_proxy.py``) with a password in the URL, so
every test also checks that the password is never shown. Tests run in file order.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from support.fault_proxy import FaultProxy
from support.kernel import Kernel, Result, kernel_env

from hail_emr_lab.livy import LivyClient, StatementState

pytestmark = pytest.mark.slow
NAME = "magics-resilience-test"
SECRET = "Sekr3t-resilience"


class WidgetKernel(Kernel):
    """A kernel whose results also hold what progress widgets showed (their comm updates), and
    never the Livy password."""

    def collect(self, res: Result, kind: str, content: dict) -> bool:
        if kind in ("comm_open", "comm_msg"):
            value = (content.get("data") or {}).get("state", {}).get("value")
            if isinstance(value, str):
                res.updates.append({"text/plain": value})
            return False
        return super().collect(res, kind, content)

    def run(self, code: str, timeout: float = 600, interrupt_after=None) -> Result:
        res = super().run(code, timeout, interrupt_after)
        assert SECRET not in res.text, res.text
        return res


@pytest.fixture(scope="module")
def proxy(livy_server):
    p = FaultProxy(livy_server.url).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def kernel(livy_server, proxy, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("kres")
    k = WidgetKernel(kernel_env(str(cfg)), cwd=str(cfg))
    k.url = f"http://alice:{SECRET}@127.0.0.1:{proxy.url.rsplit(':', 1)[1]}"
    k.client = LivyClient(livy_server.url)
    yield k
    proxy.clear()
    k.run("%hail cleanup", timeout=120)
    k.shutdown()


@pytest.fixture(scope="module")
def connected(kernel):
    res = kernel.run(f"%hail connect --url {kernel.url} --name {NAME}")
    assert res.status == "ok", res.text
    assert "on http://***@127.0.0.1:" in res.text, res.text
    assert "Warning: a password in --url" in res.stderr
    res = kernel.run("%%hail\nx = 21\nprint('answer', x * 2)", timeout=900)
    assert res.status == "ok" and "answer 42" in res.stdout, res.text
    kernel.sid = kernel.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    return kernel


def _statement_path(kernel) -> str:
    return rf"/sessions/{kernel.sid}/statements/\d+"


def test_info_and_repr_hide_the_password(connected):
    res = connected.run("%hail info")
    assert res.status == "ok" and "http://***@127.0.0.1:" in res.stdout, res.text
    res = connected.run("print(repr(__import__('hail_emr_lab.notebook.context').notebook.context.current().session))")
    assert res.status == "ok" and "127.0.0.1" in res.stdout


def test_a_gateway_burst_does_not_abort_the_cell(connected, proxy, livy_server):
    before = livy_server.stats["statements_submitted"]
    burst = proxy.add("GET", _statement_path(connected), "502", for_seconds=10)
    cell = "import time\ntime.sleep(14)\nburst = x + 1\nprint('burst', burst)"
    res = connected.run("%%hail\n" + cell, timeout=120)
    assert res.status == "ok", res.text
    assert "burst 22" in res.stdout
    assert burst.hits >= 4
    notes = [u.get("text/plain", "") for u in res.updates if "retrying" in u.get("text/plain", "")]
    assert notes and all("Livy answered 502, retrying (" in n for n in notes), res.updates
    # Counted on the server: the cell's statement arrived once (the plots check after a cell is another).
    recent = connected.client.list_statements(connected.sid, size=10, order="desc")
    assert sum(1 for s in recent if s.code.strip() == cell) == 1, [s.code for s in recent]
    assert livy_server.stats["statements_submitted"] - before == 2


def test_a_sustained_outage_says_the_statement_may_still_run(connected, proxy):
    res = connected.run("import os; os.environ['HAIL_EMR_LAB_LIVY_RETRY_TIMEOUT'] = '4'\n"
                        f"%hail connect --url {connected.url} --name {NAME} --wait")
    assert res.status == "ok" and f"reattached to session {connected.sid}" in res.text, res.text
    proxy.add("GET", _statement_path(connected), "502", for_seconds=120)
    try:
        res = connected.run("%%hail\nimport time\ntime.sleep(60)", timeout=120)
    finally:
        proxy.clear()
    assert res.status == "error" and res.ename == "HailMagicError", res.text
    shown = "\n".join(res.traceback)
    assert "may still be running on the cluster" in shown and "%hail cancel" in shown, shown
    assert f"of Livy session {connected.sid}" in shown and "answered 502" in shown
    assert "Traceback" not in shown and "may point at a proxy" not in shown
    running = [s for s in connected.client.list_statements(connected.sid, size=3, order="desc")
               if "time.sleep(60)" in s.code]
    assert running and running[0].state.is_running, running
    res = connected.run("%hail cancel")
    assert res.status == "ok" and "Cancelled the running statement" in res.stdout, res.text
    _wait_state(connected.client, connected.sid, running[0].id, StatementState.CANCELLED)
    connected.run("del os.environ['HAIL_EMR_LAB_LIVY_RETRY_TIMEOUT']")


def _wait_state(client, sid, statement_id, state, timeout=60):
    deadline = time.monotonic() + timeout
    while client.get_statement(sid, statement_id).state is not state:
        assert time.monotonic() < deadline, client.get_statement(sid, statement_id)
        time.sleep(0.3)


def test_ctrl_c_shows_one_friendly_message(connected):
    res = connected.run("%%hail\nimport time\ntime.sleep(60)", interrupt_after=5, timeout=120)
    assert res.status == "error", res.text
    shown = "\n".join(res.traceback)
    assert "Interrupted: the cell was cancelled on the cluster" in shown, shown
    assert "Traceback" not in shown + res.stderr and "KeyboardInterrupt" not in shown + res.stderr, res.text
    assert res.ename == "HailInterrupted"  # still a KeyboardInterrupt for the code that ran the cell
    res = connected.run("%%hail\nprint('still here', x)")
    assert res.status == "ok" and "still here 21" in res.stdout, res.text


def test_ctrl_c_when_the_cancel_request_fails(connected, proxy):
    proxy.add("POST", _statement_path(connected) + "/cancel", "502", for_seconds=120)
    try:
        res = connected.run("%%hail\nimport time\ntime.sleep(60)", interrupt_after=5, timeout=120)
    finally:
        proxy.clear()
    assert res.status == "error", res.text
    shown = "\n".join(res.traceback)
    assert "continues on the cluster" in shown and "%hail cancel" in shown, shown
    assert "Traceback" not in shown + res.stderr, res.text
    res = connected.run("%hail cancel")
    assert res.status == "ok" and "Cancelled the running statement" in res.stdout, res.text


# ----------------------------------------------------------------- a session that ended: one message


def _one_message(res, *expected):
    """The command failed with one paragraph that says why and what to do, once."""
    assert res.status == "error" and res.ename == "HailMagicError", res.text
    shown = "\n".join(res.traceback)
    for text in expected:
        assert text in shown, shown
    assert shown.count("%hail connect") == 1, shown
    assert "HTTP 404" not in shown and "Traceback" not in shown, shown
    return shown


def test_a_crashed_session_is_explained(connected, livy_server):
    os_kill = __import__("os").kill
    os_kill(livy_server.worker_pid(connected.sid), 9)
    deadline = time.monotonic() + 60
    while connected.client.session_state(connected.sid).is_alive:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    for command in ("%hail info", "%%hail\nprint(x)"):
        _one_message(connected.run(command, timeout=120), f"session {connected.sid} ({NAME}) has ended (error)",
                     "crashed: its interpreter was killed (signal 9", "remote variables are lost")
    res = connected.run("%hail logs -n 5")  # the log of an ended session is still there to read
    assert res.status == "ok" and "exited with code -9" in res.stdout, res.text


def test_a_deleted_session_is_explained_by_every_subcommand(connected):
    connected.client.delete_session(connected.sid)
    connected.run("local_value = 1")
    for command in ("%hail info", "%%hail\nprint(x)", "%hail logs", "%hail cancel", "%hail push local_value",
                    "%%hail sql\nSELECT 1", "%hail plots"):
        _one_message(connected.run(command, timeout=120), f"Livy no longer knows session {connected.sid} ({NAME})",
                     "killed: it was deleted", "remote variables are lost")


def test_a_lost_heartbeat_is_explained(connected):
    res = connected.run(f"%hail connect --url {connected.url} --name {NAME}-hb --new --heartbeat-timeout 3 "
                        "--no-hail --no-plots --wait", timeout=900)
    assert res.status == "ok", res.text
    sid = connected.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    # The kernel stops touching the session, as when the notebook instance sleeps; Livy reaps it.
    connected.run("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.close()")
    deadline = time.monotonic() + 60
    while any(s.id == sid for s in connected.client.list_sessions()):
        assert time.monotonic() < deadline, "the embedded Livy did not reap the session"
        time.sleep(0.5)
    for command in ("%hail info", "%%hail\n1 + 1"):
        _one_message(connected.run(command, timeout=120), f"Livy no longer knows session {sid}",
                     "heartbeat lost: this kernel did not reach Livy for", "heartbeat timeout (3 s)")


def test_connect_after_a_crash_starts_a_new_session_under_the_same_name(connected, livy_server):
    """What the crash message says to do works: Livy keeps an ended session's name taken for
    10 minutes ("Duplicate session name"), so connect deletes the ended one first and says so."""
    name = f"{NAME}-crash"
    flags = f"--url {connected.url} --name {name} --no-hail --no-plots --wait"
    assert connected.run(f"%hail connect {flags}", timeout=900).status == "ok"
    current = "__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id"
    crashed = connected.value(current)
    os.kill(livy_server.worker_pid(crashed), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while connected.client.session_state(crashed).is_alive:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    for new in ("", " --new"):
        res = connected.run(f"%hail connect {flags}{new}", timeout=900)
        assert res.status == "ok", res.text
        assert "had ended; it was deleted so the name could be used again" in res.text, res.text
        fresh = connected.value(current)
        assert fresh != crashed and connected.client.session_state(fresh).is_alive
        res = connected.run("%%hail\nprint('works', 6 * 7)", timeout=300)
        assert res.status == "ok" and "works 42" in res.stdout, res.text
        os.kill(livy_server.worker_pid(fresh), signal.SIGKILL)  # crash it too, for the --new round
        while connected.client.session_state(fresh).is_alive:
            assert time.monotonic() < deadline + 300
            time.sleep(0.5)
        crashed = fresh

