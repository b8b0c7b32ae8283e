"""Independent Livy clients work unchanged against the embedded server.

sparkmagic's own Livy classes (the ones its %spark magics use) and the PyPI ``livy`` client
(pylivy) create a session, run statements, pull a small DataFrame and delete the session.
If our server strayed from Livy's protocol, these third-party parsers would be the first to
notice. Two Spark sessions in all, one after the other.

What each needs to pass the embedded server's checks (as against a Livy with CSRF protection
on): sparkmagic its ``custom_headers`` setting with ``X-Requested-By``; pylivy a
``requests_session`` that carries that header. With a token, sparkmagic adds
``Authorization: Bearer TOKEN`` to ``custom_headers`` (or uses basic auth with the token as
password), pylivy passes ``auth=(any_name, token)``.
"""

from __future__ import annotations

import time

import pytest
import requests

pytestmark = pytest.mark.slow


@pytest.fixture
def sparkmagic_conf():
    """sparkmagic reads ~/.sparkmagic/config.json unless its settings are already set."""
    import sparkmagic.utils.configuration as conf

    saved = dict(conf.d)
    conf.override_all(
        {
            "livy_session_startup_timeout_seconds": 300,
            "retry_policy": "configurable",
            "configurable_retry_policy_max_retries": 3,
            "custom_headers": {"X-Requested-By": "sparkmagic"},
        }
    )
    yield conf
    conf.override_all(saved)


def test_sparkmagic_livy_session(livy_server, sparkmagic_conf):
    from hdijupyterutils.ipythondisplay import IpythonDisplay
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession
    from sparkmagic.livyclientlib.sqlquery import SQLQuery

    endpoint = Endpoint(livy_server.url, None)
    http = LivyReliableHttpClient.from_endpoint(endpoint)
    session = LivySession(
        http, {"kind": "pyspark", "name": "compat-sparkmagic"}, IpythonDisplay(), heartbeat_timeout=120
    )
    session.start()  # waits for idle, then probes `spark` exactly as %spark does
    try:
        assert session.status == "idle"
        assert session.sql_context_variable_name == "spark"
        assert session.get_app_id().startswith("local-")
        assert session.get_spark_ui_url().startswith("http://127.0.0.1:")
        assert "hail-emr-lab: started worker pid" in session.get_logs()

        success, out, mimetype = Command("print('hi')\n21 * 2").execute(session)
        assert (success, out, mimetype) == (True, "hi\n42", "text/plain")

        success, out, _ = Command("1 / 0").execute(session)
        assert not success and "ZeroDivisionError" in out

        success, _, _ = Command(
            "df = spark.createDataFrame([(1, 'a', 0.5), (2, 'b', 1.5)], 'n int, s string, x double')\n"
            "df.createOrReplaceTempView('compat_t')"
        ).execute(session)
        assert success
        frame = SQLQuery("SELECT n, s, x FROM compat_t ORDER BY n", maxrows=10).execute(session)
        assert list(frame.columns) == ["n", "s", "x"]
        assert frame.to_dict("records") == [{"n": 1, "s": "a", "x": 0.5}, {"n": 2, "s": "b", "x": 1.5}]
        # sparkmagic's heartbeat thread keeps the session touched while we work.
        assert requests.get(f"{livy_server.url}/sessions/{session.id}", timeout=10).json()["state"] == "idle"
    finally:
        sid = session.id
        session.delete()
    assert requests.get(f"{livy_server.url}/sessions/{sid}", timeout=10).status_code == 404


def _csrf_session() -> requests.Session:
    """What pylivy needs for a Livy with CSRF protection: a session carrying the header."""
    http = requests.Session()
    http.headers["X-Requested-By"] = "pylivy"
    return http


def test_pylivy_session(livy_server, capsys):
    from livy import LivySession, SessionKind, SessionState, SparkRuntimeError
    from livy.client import LivyClient
    from livy.models import StatementKind, StatementState

    http = _csrf_session()
    with LivySession.create(
        livy_server.url, kind=SessionKind.PYSPARK, name="compat-pylivy", heartbeat_timeout=120, requests_session=http
    ) as session:
        assert session.state == SessionState.IDLE
        out = session.run("1 + 1")
        assert out.text == "2"
        assert "2" in capsys.readouterr().out  # pylivy echoes the text output

        with pytest.raises(SparkRuntimeError) as failure:
            session.run("undefined_thing")
        assert failure.value.ename == "NameError"

        session.run("df = spark.createDataFrame([(1, 'a'), (2, 'b')], 'n int, s string')")
        frame = session.download("df")
        assert frame.to_dict("records") == [{"n": 1, "s": "a"}, {"n": 2, "s": "b"}]

        session.upload("up", frame.assign(n=frame.n * 10))
        assert session.run("sorted(r.n for r in up.collect())").text == "[10, 20]"

        # A statement of kind sql: Livy's application/json {schema, data}, as pylivy models it.
        client = LivyClient(livy_server.url, requests_session=http)
        try:
            assert not client.legacy_server()  # reads GET /version
            st = client.create_statement(session.session_id, "SELECT 1 AS one, 'x' AS s", StatementKind.SQL)
            deadline = time.monotonic() + 120
            while st.state in (StatementState.WAITING, StatementState.RUNNING):
                assert time.monotonic() < deadline
                time.sleep(0.1)
                st = client.get_statement(session.session_id, st.statement_id)
            assert st.state == StatementState.AVAILABLE
            assert [f["name"] for f in st.output.json["schema"]["fields"]] == ["one", "s"]
            assert st.output.json["data"] == [[1, "x"]]
            listed = {s.session_id: s for s in client.list_sessions()}
            assert listed[session.session_id].state == SessionState.IDLE
            sid = session.session_id
        finally:
            client.close()
    assert requests.get(f"{livy_server.url}/sessions/{sid}", timeout=10).status_code == 404


def test_both_clients_reach_a_server_with_a_token(tmp_path, sparkmagic_conf):
    """The settings the README gives for a token work as written (no Spark session needed)."""
    from livy.client import LivyClient as PyLivyClient
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.exceptions import HttpClientException
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient

    from hail_emr_lab.embedded.server import EmbeddedLivy

    token = "compat-" + "k" * 30
    server = EmbeddedLivy(port=0, max_sessions=1, plots_dir=str(tmp_path / "p"), token=token)
    server.start()
    try:
        assert PyLivyClient(server.url, auth=("anyone", token), requests_session=_csrf_session()).list_sessions() == []
        with pytest.raises(requests.HTTPError, match="401"):
            PyLivyClient(server.url, requests_session=_csrf_session()).list_sessions()

        sparkmagic_conf.override(
            "custom_headers", {"X-Requested-By": "sparkmagic", "Authorization": f"Bearer {token}"}
        )
        sparkmagic_conf.override("configurable_retry_policy_max_retries", 0)
        http = LivyReliableHttpClient.from_endpoint(Endpoint(server.url, None))
        assert http.get_sessions()["sessions"] == []
        with pytest.raises(HttpClientException, match="runs PySpark only"):
            http.post_session({"kind": "spark"})  # a POST passes every check and reaches validation
        sparkmagic_conf.override("custom_headers", {"X-Requested-By": "sparkmagic"})
        with pytest.raises(HttpClientException, match="401"):
            LivyReliableHttpClient.from_endpoint(Endpoint(server.url, None)).get_sessions()
    finally:
        server.stop()
    assert server.stats["sessions_created"] == 0
