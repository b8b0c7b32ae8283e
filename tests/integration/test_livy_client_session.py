"""The Livy client against the embedded server: real HTTP, real PySpark + Hail.

One session is shared by the whole module (each costs a Spark JVM); the test that kills
its interpreter runs last.
"""

from __future__ import annotations

import _thread
import os
import signal
import textwrap
import threading
import time

import pytest
from support.fault_proxy import FaultProxy

from hail_emr_lab.livy import (
    Heartbeat,
    LivyClient,
    LivyError,
    LivySession,
    SessionDead,
    SessionState,
    StatementCancelled,
    StatementError,
    StatementInDoubt,
    StatementInterrupted,
    StatementState,
    transient_reason,
)

pytestmark = pytest.mark.slow
NAME = "client-tests"


@pytest.fixture(scope="module")
def client(livy_server):
    with LivyClient(livy_server.url) as c:
        yield c


@pytest.fixture(scope="module")
def session(client):
    s = LivySession.create(client, name=NAME, heartbeat_timeout=120)
    s.wait_ready(timeout=300)
    yield s
    s.delete()


def test_run_returns_typed_output(session):
    out = session.run("print('hello')\n1 + 1")
    assert out.ok
    assert out.text.splitlines() == ["hello", "2"]
    assert session.state() in (SessionState.IDLE, SessionState.BUSY)


def test_error_output_and_check(session):
    out = session.run("undefined_name + 1")
    assert not out.ok and out.ename == "NameError"
    assert "undefined_name" in out.evalue
    with pytest.raises(StatementError) as err:
        session.run("1 / 0", check=True)
    assert err.value.output.ename == "ZeroDivisionError"


def test_json_table_magics_and_hail(session):
    out = session.run("d = {'a': [1, 2], 'b': 'x'}\n%json d")
    assert out.json == {"a": [1, 2], "b": "x"}
    out = session.run(
        "import hail as hl\nhl.init(sc, quiet=True, idempotent=True)\n"
        "mt = hl.balding_nichols_model(3, 20, 50)\nmt.count()"
    )
    assert out.ok, out.traceback
    assert "(50, 20)" in out.text


def test_reattach_finds_the_same_session(client, session):
    again = LivySession.reattach(client, NAME)
    assert again is not None and again.id == session.id
    assert LivySession.reattach(client, "no-such-session") is None
    assert LivySession.connect(client, NAME).id == session.id


def test_statement_list_get_log_and_progress(client, session):
    seen = []
    out = session.run(
        "sc.parallelize(range(400), 8).map(lambda x: x * 2).sum()",
        on_progress=lambda st: seen.append((st.state, st.progress)),
    )
    assert out.text.strip() == str(sum(x * 2 for x in range(400)))
    assert seen and seen[-1][0] is StatementState.AVAILABLE and seen[-1][1] == pytest.approx(1.0)
    newest = client.list_statements(session.id, size=1, order="desc")[0]
    assert newest.id == session.last_statement_id
    assert client.get_statement(session.id, newest.id).output.ok
    assert client.session_log(session.id, size=50), "the session log should have lines"


def test_heartbeat_touches_the_session(client, session):
    beat = Heartbeat(client, session.id, interval=1.0).start()
    try:
        deadline = time.monotonic() + 10
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        beat.stop()
    assert beat.beats >= 2 and beat.last_error is None


def test_cancel_long_spark_job(session):
    result = {}

    def run_long():
        try:
            result["out"] = session.run(
                "import time\nsc.parallelize(range(200), 4).map(lambda x: time.sleep(0.5) or x).count()"
            )
        except StatementCancelled as exc:
            result["cancelled"] = exc

    worker = threading.Thread(target=run_long)
    worker.start()
    deadline = time.monotonic() + 30
    while session.current_statement_id is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    started = time.monotonic()
    assert session.cancel()
    worker.join(30)
    assert "cancelled" in result, result
    while session.state() is not SessionState.IDLE:
        assert time.monotonic() - started < 10, "session did not go back to idle"
        time.sleep(0.1)
    assert session.run("21 * 2").text.strip() == "42"


def test_faults_never_run_a_statement_twice(livy_server, session):
    proxy = FaultProxy(livy_server.url).start()
    try:
        flaky = LivyClient(proxy.url, backoff=0.01)
        via_proxy = LivySession(flaky, session.id, name=NAME)
        session.run("fault_counter = 0")
        via_proxy.last_statement_id = session.last_statement_id
        before = livy_server.stats["statements_submitted"]
        expected = 0
        # The server receives the POST but the answer is lost, or a gateway answers 502 after
        # the server acted. The client must learn from the statement list whether it ran; what
        # it concludes is checked against what reached the server (the proxy knows).
        for action in ("drop_after", "502_after", "drop_after"):
            proxy.add("POST", rf"/sessions/{session.id}/statements", action)
            posts_before = len([e for e in proxy.log if e[0] == "POST"])
            try:
                out = via_proxy.run("fault_counter += 1\nfault_counter")
                concluded_ran = True
            except LivyError as exc:
                assert "nothing was re-sent" in str(exc)
                concluded_ran = False
            posts = [e for e in proxy.log if e[0] == "POST"][posts_before:]
            assert len(posts) == 1, f"expected exactly one POST, got {posts}; log: {proxy.log}"
            reached = posts[0][3]
            assert concluded_ran == reached, f"client concluded ran={concluded_ran}, server got it={reached}"
            if reached:
                expected += 1
                assert out.text.strip() == str(expected)
        assert expected >= 1, "no faulted POST reached the server: the reconcile path was not exercised"
        # Polling GETs of the next statement fail twice (dropped, then 502): retried, recovered.
        proxy.add("GET", rf"/sessions/{session.id}/statements/\d+", "drop_before")
        proxy.add("GET", rf"/sessions/{session.id}/statements/\d+", "502")
        out = via_proxy.run("import time; time.sleep(0.3); fault_counter += 1\nfault_counter")
        expected += 1
        assert out.text.strip() == str(expected)
        assert {"drop_before", "502"} <= {e[2] for e in proxy.log}
        assert session.run("fault_counter").text.strip() == str(expected)
        # Server side: exactly one statement per POST that reached it, plus our two direct ones.
        reached_posts = len([e for e in proxy.log if e[0] == "POST" and e[3]])
        assert livy_server.stats["statements_submitted"] - before == reached_posts + 1
    finally:
        proxy.stop()


@pytest.fixture
def proxied(livy_server, session):
    """A second view of the module's session whose HTTP goes through a fault-injecting proxy."""
    proxy = FaultProxy(livy_server.url).start()
    try:
        via_proxy = LivySession(LivyClient(proxy.url, backoff=0.01), session.id, name=NAME)
        via_proxy.last_statement_id = session.last_statement_id
        yield proxy, via_proxy
    finally:
        proxy.stop()


def _wait_final(client, session_id, statement_id, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        st = client.get_statement(session_id, statement_id)
        if st.state.is_final:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.2)


def test_gateway_errors_while_a_statement_runs_are_ridden_out(livy_server, session, proxied):
    proxy, via_proxy = proxied
    session.run("gw_counter = 0")
    via_proxy.last_statement_id = session.last_statement_id
    before = livy_server.stats["statements_submitted"]
    # Every poll of the running statement gets a 502 for 5 s, then three connection resets.
    burst = proxy.add("GET", rf"/sessions/{session.id}/statements/\d+", "502", for_seconds=5)
    resets = proxy.add("GET", rf"/sessions/{session.id}/statements/\d+", "drop_before", times=3)
    retries = []
    out = via_proxy.run(
        "import time\ntime.sleep(8)\ngw_counter += 1\ngw_counter",
        on_retry=lambda n, err, secs: retries.append((n, err and transient_reason(err), secs)),
    )
    assert out.ok and out.text.strip() == "1", out
    assert burst.hits >= 4 and resets.hits == 3
    assert any(reason == "answered 502" and secs >= 3 for _, reason, secs in retries), retries
    assert retries[-1] == (0, None, 0.0), "the recovery is reported"
    assert livy_server.stats["statements_submitted"] - before == 1, "the statement was submitted once"
    assert session.run("gw_counter").text.strip() == "1"


def test_sustained_outage_says_the_statement_may_still_run(client, session, proxied):
    proxy, via_proxy = proxied
    via_proxy.retry_timeout = 3
    session.run("gw_long = 0")
    via_proxy.last_statement_id = session.last_statement_id
    proxy.add("GET", rf"/sessions/{session.id}/statements/\d+", "502", for_seconds=60)
    started = time.monotonic()
    with pytest.raises(StatementInDoubt) as err:
        via_proxy.run("import time\ntime.sleep(6)\ngw_long += 1\ngw_long")
    assert time.monotonic() - started < 15
    sid = err.value.statement_id
    msg = str(err.value)
    assert f"statement {sid} of Livy session {session.id}" in msg and "may still be running" in msg
    assert "%hail cancel" in msg and "502" in msg
    assert "may point at a proxy" not in msg
    proxy.clear()
    assert _wait_final(client, session.id, sid).output.text.strip() == "1", "it went on and ran once"


def test_ctrl_c_when_the_cancel_request_fails_says_it_goes_on(client, session, proxied):
    proxy, via_proxy = proxied
    proxy.add("POST", rf"/sessions/{session.id}/statements/\d+/cancel", "502", for_seconds=60)
    timer = threading.Timer(3.0, _thread.interrupt_main)  # Ctrl-C, as a kernel interrupt delivers it
    timer.start()
    try:
        with pytest.raises(StatementInterrupted) as err:
            via_proxy.run("import time\ntime.sleep(30)")
    finally:
        timer.cancel()
    assert isinstance(err.value, KeyboardInterrupt)
    assert err.value.cancelled is False and "502" in err.value.problem
    assert "continues on the cluster" in str(err.value)
    sid = err.value.statement_id
    assert client.get_statement(session.id, sid).state.is_running
    proxy.clear()
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(StatementInterrupted) as err:
            via_proxy.wait(client.get_statement(session.id, sid))
    finally:
        timer.cancel()
    assert err.value.cancelled is True
    assert _wait_final(client, session.id, sid).state is StatementState.CANCELLED


def test_lost_post_after_reattach_is_not_matched_to_an_older_statement(livy_server, client, session):
    code = "reattach_counter += 1\nreattach_counter"
    session.run("reattach_counter = 0")
    assert session.run(code).text.strip() == "1"  # an identical statement is among the last 50
    proxy = FaultProxy(livy_server.url).start()
    try:
        again = LivySession.reattach(LivyClient(proxy.url, backoff=0.01), NAME)
        assert again is not None
        before = livy_server.stats["statements_submitted"]
        proxy.add("POST", rf"/sessions/{session.id}/statements", "drop_before")  # lost before reaching Livy
        with pytest.raises(LivyError) as err:
            again.run(code)
        assert "nothing was re-sent" in str(err.value)
        assert livy_server.stats["statements_submitted"] == before
        assert again.last_statement_id == session.last_statement_id  # the newest id seen at attach time
    finally:
        proxy.stop()
    assert session.run("reattach_counter").text.strip() == "1"


def test_batch_roundtrip(client, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.getOrCreate()
        print("batch-sum", spark.sparkContext.parallelize(range(10)).sum(), sys.argv[1:])
        spark.stop()
    """)
    )
    batch = client.submit_batch(str(script), args=["a1"], name="client-batch")
    deadline = time.monotonic() + 240
    while not client.batch_state(batch.id).is_final:
        assert time.monotonic() < deadline, "batch did not finish"
        time.sleep(0.5)
    assert client.get_batch(batch.id).state is SessionState.SUCCESS
    assert any("batch-sum 45 ['a1']" in line for line in client.batch_log(batch.id, size=500))
    client.delete_batch(batch.id)


def test_zz_dead_interpreter_raises_session_dead_with_log(session):
    pid = int(session.run("import os\nos.getpid()").text.strip())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SessionDead) as err:
        for _ in range(3):  # the first statement may be the one that finds it dead
            session.run("1 + 1")
            time.sleep(0.5)
    assert "remote variables are lost" in str(err.value)
    assert "%hail connect" in str(err.value)
    assert err.value.log_tail, "the error should carry the log tail"
