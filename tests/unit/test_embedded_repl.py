"""Fast checks of the embedded Livy's pieces without Spark: REPL semantics, conf, reaping rules.

The same behaviour is exercised end to end over HTTP with real Spark in test_embedded_session.py;
these cover the corner cases that would cost a Spark round trip each.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import time

import pytest

from hail_emr_lab.embedded import sparkconf
from hail_emr_lab.embedded.common import ApiError, LogBuffer, parse_duration
from hail_emr_lab.embedded.repl import Repl, table_data
from hail_emr_lab.embedded.sessions import SessionRegistry
from hail_emr_lab.livy.protocol import SessionState


@pytest.fixture
def repl():
    return Repl()


def ok(repl: Repl, code: str) -> dict:
    out = repl.run(code, 7)
    assert out["status"] == "ok", out
    assert out["execution_count"] == 7
    return out["data"]


def test_trailing_expression_and_stdout_order(repl):
    assert ok(repl, "print('a')\nimport sys\nprint('b', file=sys.stderr)\n'c'") == {"text/plain": "a\nb\n'c'"}
    assert ok(repl, "x = [1]") == {"text/plain": ""}
    assert ok(repl, "x.append(2)\nx") == {"text/plain": "[1, 2]"}
    assert ok(repl, "for i in range(2):\n    i") == {"text/plain": "0\n1"}  # 'single' mode, like Livy
    assert ok(repl, "_") == {"text/plain": "1"}  # the last displayed value, as in a REPL


def test_errors_and_tracebacks(repl):
    out = repl.run("def f():\n    raise ValueError('bad value')\n\nf()", 3)
    assert out["status"] == "error" and out["execution_count"] == 3
    assert (out["ename"], out["evalue"]) == ("ValueError", "bad value")
    assert out["traceback"][0] == "Traceback (most recent call last):\n"
    assert out["traceback"][-1] == "ValueError: bad value\n"
    assert all("repl.py" not in line for line in out["traceback"])
    syntax = repl.run("x = )", 4)
    assert syntax["ename"] == "SyntaxError" and syntax["traceback"]


@pytest.mark.parametrize("code", ["def f():", "x = (1,", "print('a'", "'''doc", "if True:"])
def test_incomplete_statements_are_pythons_syntax_errors(repl, code):
    """As Livy's PySpark REPL: Python's SyntaxError, not the Scala REPL's "incomplete statement"."""
    with pytest.raises(SyntaxError) as raised:
        compile(code, "<stdin>", "exec")
    out = repl.run(code, 1)
    name = type(raised.value).__name__  # SyntaxError or its subclass IndentationError
    assert (out["status"], out["execution_count"], out["ename"]) == ("error", 1, name)
    assert out["evalue"] == str(raised.value)
    assert out["traceback"][-1].startswith(f"{name}:")


def test_json_magic(repl):
    data = ok(repl, "import numpy as np\nv = {'a': np.int64(3), 'b': [1.5, None], 'c': np.arange(2)}\n%json v")
    assert data == {"application/json": {"a": 3, "b": [1.5, None], "c": [0, 1]}}
    bad = repl.run("o = object()\n%json o", 1)
    assert bad["ename"] == "TypeError" and "not JSON serializable" in bad["evalue"]
    missing = repl.run("%json nothing_here", 1)
    assert (missing["ename"], missing["evalue"]) == ("KeyError", "'nothing_here'")
    assert repl.run("%json", 1)["ename"] == "UsageError"


def test_table_magic_types_like_livy():
    rows = [
        {
            "i": 1,
            "f": 1.5,
            "s": "x",
            "b": True,
            "d": datetime.date(2024, 1, 2),
            "n": None,
            "dec": decimal.Decimal("1.1"),
        },
        {"i": 2, "f": 2.5, "s": "y", "b": False, "d": datetime.date(2024, 1, 3), "n": 5, "dec": decimal.Decimal("2")},
    ]
    table = table_data(rows)
    assert [(h["name"], h["type"]) for h in table["headers"]] == [
        ("b", "BOOLEAN_TYPE"),
        ("d", "DATE_TYPE"),
        ("dec", "DECIMAL_TYPE"),
        ("f", "DOUBLE_TYPE"),
        ("i", "INT_TYPE"),
        ("n", "INT_TYPE"),  # NULL_TYPE upgraded by a later non-null value
        ("s", "STRING_TYPE"),
    ]
    assert table["data"][0] == [True, "2024-01-02", "1.1", 1.5, 1, None, "x"]
    assert table_data([[1, "a"], [2, "b"]])["headers"] == [
        {"name": "0", "type": "INT_TYPE"},
        {"name": "1", "type": "STRING_TYPE"},
    ]
    assert table_data(5) == {"headers": [{"name": "0", "type": "INT_TYPE"}], "data": [[5]]}
    with pytest.raises(ValueError, match="different types"):
        table_data([{"a": 1}, {"a": "x"}])


def test_table_magic_in_repl_and_pandas(repl):
    data = ok(repl, "import pandas as pd\npdf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\n%table pdf")
    assert data["application/vnd.livy.table.v1+json"]["data"] == [[1, "x"], [2, "y"]]
    bad = repl.run("mixed = [{'a': 1}, {'a': 'x'}]\n%table mixed", 1)
    assert bad["status"] == "error" and bad["evalue"] == "table rows have different types"


def test_matplot_magic(repl):
    data = ok(
        repl,
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "lines = plt.plot([1, 2])\n%matplot plt",
    )
    assert set(data) == {"image/png"}  # no empty text/plain next to the image, as in Livy
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    data = ok(repl, "print('drawn')\n%matplot plt")
    assert data["text/plain"] == "drawn"


def test_magic_after_failing_code_reports_the_code_error(repl):
    out = repl.run("1 / 0\n%json x", 1)
    assert out["ename"] == "ZeroDivisionError"
    assert repl.run("%bogus", 1)["evalue"].startswith("unknown magic command 'bogus'")


def test_keyboard_interrupt_becomes_an_error_output(repl):
    out = repl.run("raise KeyboardInterrupt('statement cancelled')", 1)
    assert (out["status"], out["ename"]) == ("error", "KeyboardInterrupt")


def test_completion(repl):
    ok(repl, "import os\nalpha_value = 1\nalphabet = 2")
    assert repl.complete("alph", 4) == ["alpha_value", "alphabet"]
    assert "os.path" in repl.complete("x = os.pa", 9)
    assert repl.complete("1 + ", 4) == []


def test_session_conf_carries_hail_and_request_fields():
    conf = sparkconf.session_conf(
        {
            "driverMemory": "2g",
            "driverCores": 2,
            "jars": ["/x/extra.jar"],
            "pyFiles": ["/x/mod.py"],
            "conf": {"spark.jars": "/x/user.jar", "spark.sql.shuffle.partitions": "4"},
        },
        "app",
    )
    jar = sparkconf.hail_jar()
    assert conf["spark.jars"] == f"/x/user.jar,{jar},/x/extra.jar"
    assert conf["spark.driver.extraClassPath"] == jar and conf["spark.executor.extraClassPath"] == jar
    assert conf["spark.kryo.registrator"] == "is.hail.kryo.HailKryoRegistrator"
    assert conf["spark.serializer"] == "org.apache.spark.serializer.KryoSerializer"
    assert (conf["spark.driver.memory"], conf["spark.master"], conf["spark.app.name"]) == ("2g", "local[2]", "app")
    assert conf["spark.submit.pyFiles"] == "/x/mod.py" and conf["spark.sql.shuffle.partitions"] == "4"
    assert conf["spark.ui.port"] == "0" and conf["spark.ui.showConsoleProgress"] == "false"
    assert sparkconf.session_conf({}, "a")["spark.driver.memory"] == "1g"


def test_log_buffer_paging_like_livy():
    buf = LogBuffer(maxlen=5)
    buf.extend(f"line {i}\n" for i in range(8))
    assert buf.lines() == [f"line {i}" for i in range(3, 8)]
    assert buf.page(None, None) == (0, 5, buf.lines())
    assert buf.page(None, 2) == (3, 5, ["line 6", "line 7"])
    assert buf.page(1, 2) == (1, 5, ["line 4", "line 5"])
    assert buf.page(0, -1)[2] == buf.lines()


@pytest.mark.parametrize("value,seconds", [("30s", 30), ("10m", 600), ("2h", 7200), ("500ms", 0.5), (1500, 1.5)])
def test_durations(value, seconds):
    assert parse_duration(value, "ttl") == seconds


def test_bad_duration():
    with pytest.raises(ApiError) as err:
        parse_duration("later", "idleTimeout")
    assert err.value.status == 400 and "'idleTimeout' must be a duration" in err.value.msg


def test_reaping_rules(tmp_path):
    """Which sessions the reaper deletes, checked on unstarted Session objects (no processes)."""
    registry = SessionRegistry(str(tmp_path), str(tmp_path), 4, 60.0, lambda key: None)
    try:
        from hail_emr_lab.embedded.sessions import Session

        def make(**request):
            return Session(0, request, "pyspark", str(tmp_path / "s"), str(tmp_path), lambda key: None, 60.0)

        now = time.monotonic()
        idle = make()
        idle.state = SessionState.IDLE
        assert registry._reap_reason(idle, now + 30) is None
        assert "idle for more than 60 s" in registry._reap_reason(idle, now + 61)
        idle.state = SessionState.BUSY  # a long statement is not idleness
        assert registry._reap_reason(idle, now + 600) is None

        beating = make(heartbeatTimeoutInSecond=5)
        beating.state = SessionState.BUSY
        assert registry._reap_reason(beating, now + 4) is None
        beating.touch()
        assert registry._reap_reason(beating, time.monotonic() + 4) is None
        assert "heartbeatTimeoutInSecond" in registry._reap_reason(beating, time.monotonic() + 6)

        custom = make(idleTimeout="10s", ttl="1h")
        custom.state = SessionState.IDLE
        assert "idle for more than 10 s" in registry._reap_reason(custom, now + 11)
        custom.state = SessionState.BUSY
        assert "ttl" in registry._reap_reason(custom, now + 3601)

        ended = make()
        ended.state = SessionState.ERROR
        ended.final_since = now
        assert registry._reap_reason(ended, now + 60) is None  # kept listed for a while, like Livy
        assert "ended" in registry._reap_reason(ended, now + 601)
    finally:
        registry.shutdown()
