"""The embedded Livy's interactive sessions over HTTP: real PySpark + Hail in a worker process.

One Spark session serves the whole module (each costs ~15 s and ~1 GB). The last test kills
its worker on purpose, so keep it last.
"""

from __future__ import annotations

import base64
import os
import signal
import time

import pytest
import requests

pytestmark = pytest.mark.slow

FINAL = ("available", "cancelled", "error")


class Livy:
    """Plain-requests helpers bound to one session (independent of hail_emr_lab.livy)."""

    def __init__(self, url: str, sid: int) -> None:
        self.url = url
        self.sid = sid
        self.http = requests.Session()
        self.http.headers["X-Requested-By"] = "tests"

    @property
    def base(self) -> str:
        return f"{self.url}/sessions/{self.sid}"

    def session(self) -> dict:
        return self.http.get(self.base, timeout=10).json()

    def post(self, code: str, kind: str | None = None) -> dict:
        body = {"code": code} if kind is None else {"code": code, "kind": kind}
        resp = self.http.post(self.base + "/statements", json=body, timeout=10)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def statement(self, stid: int) -> dict:
        resp = self.http.get(f"{self.base}/statements/{stid}", timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait(self, stid: int, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.statement(stid)
            if st["state"] in FINAL:
                return st
            assert time.monotonic() < deadline, f"statement {stid} still {st['state']} after {timeout} s"
            time.sleep(0.05)

    def run(self, code: str, kind: str | None = None, timeout: float = 120.0) -> dict:
        return self.wait(self.post(code, kind)["id"], timeout)

    def ok_text(self, code: str, **kw) -> str:
        st = self.run(code, **kw)
        assert st["state"] == "available", st
        assert st["output"]["status"] == "ok", st["output"]
        return st["output"]["data"]["text/plain"]

    def wait_state(self, states: tuple[str, ...], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            view = self.session()
            if view["state"] in states:
                return view
            assert time.monotonic() < deadline, f"session still {view['state']}, wanted {states}"
            time.sleep(0.1)


RETAINED = 60  # livy.rsc.retained-statements, given as Livy's spark.__livy__ conf
SQL_ROWS = 7  # livy.rsc.sql.num-rows
MAX_OUTPUT = 2_000_000  # livy.rsc.rpc.max.size: characters of a statement's output as JSON


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A file shipped with the session's ``files``."""
    path = tmp_path_factory.mktemp("shipped") / "shipped_data.txt"
    path.write_text("shipped with the session\n")
    return path


@pytest.fixture(scope="module")
def livy(livy_server, shipped):
    resp = requests.post(
        livy_server.url + "/sessions",
        json={
            "kind": "pyspark",
            "name": "test-local-session",
            "driverMemory": "1g",
            "files": [str(shipped)],
            "conf": {
                "spark.test.marker": "42",
                "spark.__livy__.livy.rsc.retained-statements": str(RETAINED),
                "spark.__livy__.livy.rsc.sql.num-rows": str(SQL_ROWS),
                "spark.__livy__.livy.rsc.rpc.max.size": str(MAX_OUTPUT),
            },
        },
        headers={"X-Requested-By": "tests"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["state"] == "starting"
    client = Livy(livy_server.url, created["id"])
    view = client.wait_state(("idle", "error", "dead"), timeout=300)
    assert view["state"] == "idle", requests.get(client.base + "/log?size=-1", timeout=10).json()["log"]
    yield client
    requests.delete(client.base, headers={"X-Requested-By": "tests"}, timeout=30)


def test_ready_session_reports_app_and_spark_ui(livy):
    view = livy.session()
    assert view["kind"] == "pyspark"
    assert view["name"] == "test-local-session"
    assert view["appId"].startswith("local-")
    ui = view["appInfo"]["sparkUiUrl"]
    assert ui.startswith("http://127.0.0.1:")
    apps = requests.get(ui + "/api/v1/applications", timeout=60).json()  # slow on a busy machine
    assert [app["id"] for app in apps] == [view["appId"]]
    assert requests.get(livy.base + "/state", timeout=10).json() == {"id": livy.sid, "state": "idle"}


def test_namespace_and_spark_conf(livy, livy_server):
    text = livy.ok_text(
        "import os\n"
        "print(type(spark).__name__, type(sc).__name__, type(sqlContext).__name__)\n"
        "conf = sc.getConf()\n"
        "(conf.get('spark.serializer'), conf.get('spark.kryo.registrator'), conf.get('spark.test.marker'),\n"
        " conf.get('spark.driver.memory'), 'hail-all-spark.jar' in conf.get('spark.jars'),\n"
        " os.environ['HAIL_EMR_LAB_PLOTS_DIR'])"
    )
    first, rest = text.split("\n", 1)
    assert first == "SparkSession SparkContext SQLContext"
    assert "org.apache.spark.serializer.KryoSerializer" in rest
    assert "is.hail.kryo.HailKryoRegistrator" in rest
    assert "'42'" in rest and "'1g'" in rest and "True" in rest
    assert repr(livy_server.plots_dir) in rest


def test_stdout_and_trailing_expression(livy):
    assert livy.ok_text("print('hello')\nx = 20\nx + 22") == "hello\n42"
    assert livy.ok_text("x = 1") == ""
    assert livy.ok_text("None") == ""
    assert livy.ok_text("import sys\nprint('to stderr', file=sys.stderr)") == "to stderr"


def test_error_output_shape(livy):
    st = livy.run("def f():\n    return undefined_name\nf()")
    assert st["state"] == "available"
    out = st["output"]
    assert out["status"] == "error"
    assert out["ename"] == "NameError"
    assert out["evalue"] == "name 'undefined_name' is not defined"
    assert out["execution_count"] == st["id"]
    assert isinstance(out["traceback"], list) and all(isinstance(line, str) for line in out["traceback"])
    assert any("in f" in line for line in out["traceback"])
    assert not any("hail_emr_lab" in line for line in out["traceback"]), "our own frames leak into tracebacks"


def test_incomplete_statement_is_pythons_syntax_error(livy):
    """Livy's PySpark REPL answers Python's own SyntaxError ("incomplete statement" is Scala's)."""
    for code in ("def f(x):", "if True:"):
        with pytest.raises(SyntaxError) as raised:
            compile(code, "<stdin>", "exec")
        out = livy.run(code)["output"]
        name = type(raised.value).__name__  # IndentationError, a SyntaxError
        assert (out["status"], out["ename"], out["evalue"]) == ("error", name, str(raised.value))
        assert out["traceback"] and out["traceback"][-1].startswith(f"{name}:")
    assert livy.run("x = )")["output"]["ename"] == "SyntaxError"


def test_statement_location_header(livy):
    resp = livy.http.post(livy.base + "/statements", json={"code": "1"}, timeout=10)
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"/sessions/{livy.sid}/statements/{resp.json()['id']}"
    livy.wait(resp.json()["id"])


def test_shipped_files_are_in_the_working_directory(livy, shipped):
    """Livy runs the interpreter in the SparkFiles root: a shipped file opens by its name."""
    text = livy.ok_text(
        "import os\nfrom pyspark import SparkFiles\n"
        f"print(open({shipped.name!r}).read().strip())\n"
        "print(os.path.samefile(os.getcwd(), SparkFiles.getRootDirectory()))"
    )
    assert text == "shipped with the session\nTrue"
    # Python, Spark and Hail agree on what a relative path names.
    text = livy.ok_text(
        "open('py_written.csv', 'w').write('a,b\\n1,2\\n')\n"
        "spark.range(3).write.mode('overwrite').parquet('spark_written.parquet')\n"
        "import hail as hl\nhl.init(sc, quiet=True, idempotent=True)\n"
        "(spark.read.csv('py_written.csv').count(), os.path.isdir('spark_written.parquet'),\n"
        " hl.import_table('py_written.csv', no_header=True, delimiter=',').count())",
        timeout=300,
    )
    assert text.splitlines()[-1] == "(2, True, 2)"


def test_livy_settings_are_not_spark_settings(livy):
    """spark.__livy__.* keys configure the session, they are not in Spark's conf."""
    text = livy.ok_text("sorted(k for k, _ in sc.getConf().getAll() if '__livy__' in k)")
    assert text == "[]"
    st = livy.run(f"SELECT id FROM range({SQL_ROWS + 5})", kind="sql")
    assert len(st["output"]["data"]["application/json"]["data"]) == SQL_ROWS


def test_session_info_of_a_ready_session(livy, shipped):
    view = livy.session()
    assert view["files"] == [str(shipped)] and view["driverMemory"] == "1g"
    assert view["conf"]["spark.__livy__.livy.rsc.retained-statements"] == str(RETAINED)


def test_json_table_and_matplot_magics(livy):
    st = livy.run("d = {'a': [1, 2], 'b': 'x'}\n%json d")
    assert st["output"]["data"] == {"application/json": {"a": [1, 2], "b": "x"}}
    st = livy.run("rows = [{'n': 1, 's': 'a'}, {'n': 2, 's': None}]\n%table rows")
    assert st["output"]["data"]["application/vnd.livy.table.v1+json"] == {
        "headers": [{"name": "n", "type": "INT_TYPE"}, {"name": "s", "type": "STRING_TYPE"}],
        "data": [[1, "a"], [2, None]],
    }
    st = livy.run("import matplotlib.pyplot as plt\nplt.figure()\nplt.plot([1, 3, 2])\n%matplot plt")
    png = base64.b64decode(st["output"]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert livy.run("%nosuchmagic x")["output"]["ename"] == "UnknownMagic"


def test_sql_statements_answer_like_livy(livy):
    st = livy.run("SELECT n, s FROM VALUES (1, 'a'), (2, 'b') AS t(n, s) ORDER BY n", kind="sql")
    data = st["output"]["data"]["application/json"]
    assert [(f["name"], f["type"]) for f in data["schema"]["fields"]] == [("n", "integer"), ("s", "string")]
    assert data["data"] == [[1, "a"], [2, "b"]]
    bad = livy.run("SELECT nope FROM VALUES (1) AS t(n)", kind="sql")["output"]
    assert bad["status"] == "error" and bad["ename"] == "Error" and "nope" in bad["evalue"]


def test_large_outputs_arrive_exact_and_the_limit_counts_json_characters(livy):
    """Megabytes of text (a plot chunk) come back exactly, in the statement and in the listing;
    the output limit counts the output's JSON text, so escaped characters count double."""
    plain = "QUJD" * 400_000  # 1.6 MB of base64-like text: under the limit
    st = livy.run(f"print('{plain[:4]}' * {len(plain) // 4}, end='')")
    assert st["output"] == {"status": "ok", "execution_count": st["id"], "data": {"text/plain": plain}}
    listed = livy.http.get(livy.base + "/statements", timeout=10).json()["statements"]
    assert [item["output"] for item in listed if item["id"] == st["id"]] == [st["output"]]
    mixed = livy.ok_text("print('\\u00e9\"\\\\\\t' * 100_000 + 'end')")
    assert mixed == '\u00e9"\\\t' * 100_000 + "end"
    # 700,000 quotes are 1,400,000 JSON characters (each escaped): over the limit of 2,000,000
    # only together with the 700,000 plain characters after them.
    too_large = livy.run("print('\"' * 700_000 + 'x' * 700_000)")
    assert too_large["output"]["status"] == "error"
    assert too_large["output"]["ename"] == "OutputTooLarge"
    assert "livy.rsc.rpc.max.size" in too_large["output"]["evalue"]
    fits = livy.run("print('\"' * 600_000 + 'x' * 700_000, end='')")
    assert fits["output"]["data"]["text/plain"] == '"' * 600_000 + "x" * 700_000


def test_statements_run_in_submission_order(livy, livy_server):
    before = dict(livy_server.stats)
    ids = [livy.post(code)["id"] for code in ("seq = []", "seq.append(1)", "seq.append(2)", "seq")]
    assert ids == sorted(ids) and len(set(ids)) == 4
    last = livy.wait(ids[-1])
    assert last["output"]["data"]["text/plain"] == "[1, 2]"
    assert last["output"]["execution_count"] == ids[-1]
    assert livy_server.stats["statements_submitted"] - before["statements_submitted"] == 4
    assert livy_server.stats["statements_executed"] - before["statements_executed"] == 4


def test_progress_job_group_and_responsive_http(livy):
    st = livy.post("import time\nsc.parallelize(range(8), 8).map(lambda x: time.sleep(0.6) or x).count()")
    seen = []
    slowest_poll = 0.0
    states = set()
    while True:
        t0 = time.monotonic()
        view = livy.session()
        cur = livy.statement(st["id"])
        slowest_poll = max(slowest_poll, time.monotonic() - t0)
        states.add(view["state"])
        seen.append(cur["progress"])
        if cur["state"] in FINAL:
            break
        time.sleep(0.1)
    assert cur["output"]["data"]["text/plain"] == "8"
    assert "busy" in states
    assert any(0.0 < p < 1.0 for p in seen), f"no intermediate progress in {seen}"
    assert cur["progress"] == 1.0
    assert 0 < cur["started"] <= cur["completed"]
    assert slowest_poll < 1.0, f"HTTP polls took up to {slowest_poll:.2f} s while a statement ran"
    assert livy.session()["state"] == "idle"
    # The Spark job carries the statement id as its job group (how the sidebar maps jobs back).
    view = livy.session()
    jobs = requests.get(f"{view['appInfo']['sparkUiUrl']}/api/v1/applications/{view['appId']}/jobs", timeout=60).json()
    assert str(st["id"]) in {job.get("jobGroup") for job in jobs}


def test_hail_runs_inside_the_session(livy):
    text = livy.ok_text(
        "import hail as hl\nhl.init(sc, quiet=True, idempotent=True)\nhl.balding_nichols_model(3, 50, 100).count()",
        timeout=300,
    )
    assert text.splitlines()[-1] == "(100, 50)"
    assert "Hail requires additional configuration" not in text  # the session has Hail's conf


def test_cancel_running_spark_job(livy):
    st = livy.post("import time\nsc.parallelize(range(1000), 4).map(lambda x: time.sleep(0.5) or x).count()")
    deadline = time.monotonic() + 60
    while livy.statement(st["id"])["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # let the job's tasks start
    resp = livy.http.post(f"{livy.base}/statements/{st['id']}/cancel", timeout=10)
    assert (resp.status_code, resp.json()) == (200, {"msg": "canceled"})
    t0 = time.monotonic()
    done = livy.wait(st["id"], timeout=30)
    assert done["state"] == "cancelled"
    livy.wait_state(("idle",), timeout=10)
    assert time.monotonic() - t0 < 10
    # The session is healthy afterwards: Python and Spark both answer.
    assert livy.ok_text("sc.parallelize(range(10), 2).sum()") == "45"


def test_cancel_pure_python_sleep_within_a_second_or_two(livy):
    st = livy.post("import time\ntime.sleep(60)\nreached = True")
    deadline = time.monotonic() + 30
    while livy.statement(st["id"])["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    livy.http.post(f"{livy.base}/statements/{st['id']}/cancel", timeout=10)
    done = livy.wait(st["id"], timeout=30)
    assert done["state"] == "cancelled"
    assert time.monotonic() - t0 < 3.0
    assert done["output"]["ename"] == "KeyboardInterrupt"
    assert livy.run("reached")["output"]["ename"] == "NameError"


def test_cancel_waiting_statement_never_runs_it(livy):
    first = livy.post("import time\ntime.sleep(30)")
    second = livy.post("never_ran = True")
    resp = livy.http.post(f"{livy.base}/statements/{second['id']}/cancel", timeout=10)
    assert resp.json() == {"msg": "canceled"}
    assert livy.statement(second["id"])["state"] == "cancelled"
    livy.http.post(f"{livy.base}/statements/{first['id']}/cancel", timeout=10)
    assert livy.wait(first["id"], timeout=30)["state"] == "cancelled"
    assert livy.run("never_ran")["output"]["ename"] == "NameError"
    assert livy.statement(second["id"])["output"] is None


def test_completion(livy):
    livy.ok_text("import os\nmy_variable_for_completion = 1")
    resp = livy.http.post(livy.base + "/completion", json={"code": "os.pa", "kind": "pyspark", "cursor": 5}, timeout=10)
    assert resp.status_code == 200
    assert "os.path" in resp.json()["candidates"]
    resp = livy.http.post(livy.base + "/completion", json={"code": "x = my_var", "cursor": 10}, timeout=10)
    assert resp.json()["candidates"] == ["my_variable_for_completion"]


def test_statement_listing_paging_and_order(livy):
    body = requests.get(livy.base + "/statements", timeout=10).json()
    total = body["total_statements"]
    assert total == len(body["statements"]) > 5
    ids = [st["id"] for st in body["statements"]]
    assert ids == sorted(ids)
    desc = requests.get(livy.base + "/statements?order=desc&size=2", timeout=10).json()
    assert desc["total_statements"] == total
    assert [st["id"] for st in desc["statements"]] == [ids[-1], ids[-2]]
    window = requests.get(livy.base + "/statements?from=1&size=2", timeout=10).json()
    assert [st["id"] for st in window["statements"]] == ids[1:3]
    missing = requests.get(livy.base + "/statements/99999", timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"msg": "Statement not found"})


def test_only_the_retained_number_of_statements_is_kept(livy):
    """livy.rsc.retained-statements, set through the session's spark.__livy__ conf."""
    last = None
    for _ in range(RETAINED + 5):
        last = livy.post("pass")
    livy.wait(last["id"])
    body = requests.get(livy.base + "/statements", timeout=10).json()
    assert body["total_statements"] == RETAINED
    assert body["statements"][-1]["id"] == last["id"]
    assert body["statements"][0]["id"] == last["id"] - (RETAINED - 1)


def test_session_log_has_worker_and_spark_lines(livy):
    body = requests.get(livy.base + "/log?from=0&size=3", timeout=10).json()
    assert body["id"] == livy.sid and body["from"] == 0 and body["size"] == 3 and len(body["log"]) == 3
    assert body["total"] >= 3
    everything = requests.get(livy.base + "/log?from=0&size=-1", timeout=10).json()["log"]
    assert any("started worker pid" in line for line in everything)
    assert any("Spark" in line and "ready" in line for line in everything)
    tail = requests.get(livy.base + "/log", timeout=10).json()
    assert tail["log"] == everything[-len(tail["log"]) :]


def test_worker_death_puts_session_in_error_with_log(livy, livy_server):
    """Kill the worker mid-statement: 'Interpreter died', state error, log kept, JVM gone."""
    jvm_pid = int(livy.ok_text("sc._jvm.java.lang.ProcessHandle.current().pid()"))
    st = livy.post("import time\ntime.sleep(60)")
    deadline = time.monotonic() + 30
    while livy.statement(st["id"])["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(livy_server.worker_pid(livy.sid), signal.SIGKILL)
    done = livy.wait(st["id"], timeout=30)
    assert done["output"]["status"] == "error"
    assert done["output"]["evalue"].startswith("Interpreter died:\n")
    view = livy.wait_state(("error",), timeout=10)
    assert view["log"], "the session keeps its log"
    log = requests.get(livy.base + "/log?size=-1", timeout=10).json()["log"]
    assert any("exited with code -9" in line for line in log)
    refused = livy.http.post(livy.base + "/statements", json={"code": "1"}, timeout=10)
    assert (refused.status_code, refused.json()) == (400, {"msg": "Session is in state error"})
    # The JVM notices its parent is gone (its stdin closes) and exits: no orphan.
    deadline = time.monotonic() + 30
    while _alive(jvm_pid):
        assert time.monotonic() < deadline, f"JVM {jvm_pid} outlived its worker"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
