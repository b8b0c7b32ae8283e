"""The %hail magics in a real IPython kernel against the embedded Livy server.

One kernel and one Livy session for the module (each session is a Spark JVM). Tests run
in file order: the session-death test is last because it kills the session.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from support.kernel import Kernel, kernel_env

from hail_emr_lab.livy import LivyClient

pytestmark = pytest.mark.slow
NAME = "magics-kernel-test"


@pytest.fixture(scope="module")
def kernel(livy_server, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("kcfg")
    k = Kernel(kernel_env(str(cfg)), cwd=str(cfg))
    k.url = livy_server.url
    k.cwd = cfg
    yield k
    k.run("%hail cleanup", timeout=120)
    k.shutdown()


@pytest.fixture(scope="module")
def connected(kernel):
    t0 = time.monotonic()
    res = kernel.run(f"%hail connect --url {kernel.url} --name {NAME}")
    took = time.monotonic() - t0
    assert res.status == "ok", res.text
    assert took < 15, f"connect blocked for {took:.1f} s"  # non-blocking: it returns before Spark is up
    shown = res.text
    assert f"on {kernel.url}" in shown and "(0 s)" in shown or "starting" in shown, shown
    res = kernel.run("%%hail\nx = 21\nprint('answer', x * 2)", timeout=900)
    assert res.status == "ok", res.text
    assert "answer 42" in res.stdout
    return kernel


def test_connect_shows_state_updating_in_place(connected):
    # The background thread updated the same display (display_id) with the state and elapsed time.
    res = connected.run("%hail info")
    assert res.status == "ok", res.text
    assert "state" in res.stdout and "idle" in res.stdout and NAME in res.stdout
    assert "Hail               0.2." in res.stdout and "Spark              3." in res.stdout


def test_output_kinds(connected):
    res = connected.run("%%hail\nimport json\nprint('line1')\n{'a': 1}")
    assert res.status == "ok" and "line1" in res.stdout and "{'a': 1}" in res.stdout
    res = connected.run("%%hail\nval = {'k': [1, 2]}\n%json val")
    assert res.status == "ok", res.text
    assert any(d.get("application/json") == {"k": [1, 2]} for d in res.data), res.data
    res = connected.run("%%hail\nrows = spark.range(3).selectExpr('id', 'id * 2 AS twice')\n%table rows")
    # The embedded server may not implement %table for DataFrames; if it answers, it is a table.
    if res.status == "ok" and res.data:
        assert any("text/html" in d or "text/plain" in d for d in res.data)
    res = connected.run("%%hail -q\nprint('hidden')")
    assert res.status == "ok" and "hidden" not in res.stdout


def test_remote_name_error_is_one_paragraph(connected):
    res = connected.run("%%hail\ndef f():\n    return not_defined_here\nf()")
    assert res.status == "error" and res.ename == "HailMagicError"
    tb = "\n".join(res.traceback)
    assert "NameError: name 'not_defined_here' is not defined" in tb
    assert 'File "<stdin>"' in tb and "%hail push not_defined_here" in tb
    assert "site-packages" not in tb and "Traceback (most recent call last)" not in tb


def test_unknown_flag_prints_usage(connected):
    # IPython shows a UsageError as its message on stderr (no traceback).
    res = connected.run("%%hail --bogus\n1")
    assert res.status == "error" and "UsageError: unrecognized arguments: --bogus" in res.stderr
    assert "%%hail [-o OUTPUT]" in res.stderr and "--no-plots]" in res.stderr
    res = connected.run("%hail connect --nope")
    assert res.status == "error" and "%hail connect [--url URL]" in res.stderr
    res = connected.run("%hail frobnicate")
    assert res.status == "error" and "unknown %hail subcommand 'frobnicate'" in res.stderr
    res = connected.run("%hail help")
    assert "%hail connect" in res.stdout


ALL_TYPES = '''
import datetime, decimal
from pyspark.sql import types as T
schema = T.StructType([T.StructField(n, t) for n, t in [
    ("l", T.LongType()), ("l_null", T.LongType()), ("i", T.IntegerType()), ("d", T.DoubleType()),
    ("d_null", T.DoubleType()), ("flag", T.BooleanType()), ("flag_null", T.BooleanType()),
    ("txt", T.StringType()), ("day", T.DateType()), ("ts", T.TimestampType()), ("dec", T.DecimalType(20, 6)),
    ("arr", T.ArrayType(T.LongType())),
    ("st", T.StructType([T.StructField("x", T.IntegerType()), T.StructField("y", T.StringType())]))]])
big = 2**62 + 7
alltypes = spark.createDataFrame([
    (big, big, 1, float("nan"), float("nan"), True, True, "héllo ✓ 你好", datetime.date(2024, 2, 29),
     datetime.datetime(2024, 3, 10, 1, 30, 0, 123456), decimal.Decimal("12345678901234.123456"), [1, None], (1, "a")),
    (-big, None, 2, 1.5, None, False, None, None, None, None, None, None, None),
], schema)
'''

CHECK_ALL_TYPES = '''
import math, decimal, datetime, json
import pandas as pd
big = 2**62 + 7
df = alltypes
checks = {
 "l": str(df.l.dtype) == "int64" and df.l.tolist() == [big, -big],
 "l_null": str(df.l_null.dtype) == "Int64" and df.l_null[0] == big and df.l_null[1] is pd.NA,
 "i": str(df.i.dtype) == "int32",
 "d": str(df.d.dtype) == "float64" and math.isnan(df.d[0]) and df.d[1] == 1.5,
 "d_null": str(df.d_null.dtype) == "Float64" and math.isnan(df.d_null.array._data[0])
           and df.d_null.array._mask.tolist() == [False, True],
 "flag": str(df.flag.dtype) == "bool",
 "flag_null": str(df.flag_null.dtype) == "boolean" and df.flag_null[1] is pd.NA,
 "txt": df.txt.tolist() == ["héllo ✓ 你好", None],
 "day": df.day.tolist() == [datetime.date(2024, 2, 29), None],
 "ts": str(df.ts.dtype) == "datetime64[ns]" and df.ts[0].microsecond == 123456 and pd.isna(df.ts[1]),
 "dec": df.dec.tolist() == [decimal.Decimal("12345678901234.123456"), None],
 "arr": df.arr.tolist() == [[1, None], None],
 "st": df.st.tolist() == [{"x": 1, "y": "a"}, None],
}
print(json.dumps({k: bool(v) for k, v in checks.items()}))
'''


def test_pull_every_dtype(connected):
    res = connected.run("%%hail -o alltypes\n" + ALL_TYPES)
    assert res.status == "ok", res.text
    assert "alltypes: pulled 2 rows x 13 columns from the Spark DataFrame `alltypes` (arrow" in res.stdout
    res = connected.run(CHECK_ALL_TYPES)
    assert res.status == "ok", res.text
    checks = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(checks.values()), {k: v for k, v in checks.items() if not v}


def test_pull_without_pyarrow_on_the_cluster(connected):
    """The no-pyarrow path (as on EMR nodes without it) gives the very same frame."""
    res = connected.run("%%hail\nimport sys\n_hel_saved = _hail_emr_lab.have_arrow\n"
                        "_hail_emr_lab.have_arrow = lambda: False")
    assert res.status == "ok", res.text
    try:
        res = connected.run("%%hail -o alltypes\nalltypes = alltypes")
        assert res.status == "ok" and "(helc," in res.stdout, res.text
        res = connected.run(CHECK_ALL_TYPES)
        checks = json.loads(res.stdout.strip().splitlines()[-1])
        assert all(checks.values()), {k: v for k, v in checks.items() if not v}
    finally:
        connected.run("%%hail\n_hail_emr_lab.have_arrow = _hel_saved")


def test_pull_several_outputs_limit_and_warning(connected):
    res = connected.run(
        "%%hail -o a -o b -o cfg -n 100\n"
        "a = spark.range(1000)\nimport pandas as pd\nb = pd.DataFrame({'x': [1, 2, None]}, dtype='Int64')\n"
        "cfg = {'k': [1, 2]}"
    )
    assert res.status == "ok", res.text
    assert "Warning: a was cut to its first 100 rows (-n 100)" in res.stderr
    assert "b was cut" not in res.stderr
    assert connected.value("[len(a), str(b.x.dtype), b.x.isna().tolist(), cfg]") == [
        100, "Int64", [False, False, True], {"k": [1, 2]}]


def test_pull_hail_table(connected):
    res = connected.run(
        "%%hail -o ht\n"
        "ht = hl.utils.range_table(50)\n"
        "ht = ht.annotate(sq = ht.idx * ht.idx, name = hl.str(ht.idx), half = hl.float64(ht.idx) / 2,\n"
        "                 maybe = hl.or_missing(ht.idx % 2 == 0, hl.int64(ht.idx)))",
        timeout=900,
    )
    assert res.status == "ok", res.text
    assert "from the Hail Table `ht`" in res.stdout
    got = connected.value("[list(ht.columns), str(ht.maybe.dtype), int(ht.sq.sum()), ht.name[7], "
                          "int(ht.maybe.isna().sum()), float(ht.half[3])]")
    assert got == [["idx", "sq", "name", "half", "maybe"], "Int64", sum(i * i for i in range(50)), "7", 25, 1.5]


def test_pull_200k_rows(connected):
    res = connected.run(
        "%%hail -o big\n"
        "from pyspark.sql import functions as F\n"
        "big = spark.range(200000).select('id', (F.col('id') * 0.5).alias('x'),\n"
        "    F.when(F.col('id') % 7 == 0, None).otherwise(F.col('id')).alias('maybe'),\n"
        "    F.concat(F.lit('s'), F.col('id').cast('string')).alias('s'), (F.col('id') % 2 == 0).alias('even'))",
        timeout=900,
    )
    assert res.status == "ok", res.text
    got = connected.value("[len(big), int(big.id.sum()), str(big.maybe.dtype), int(big.maybe.isna().sum()), "
                          "big.s[199999], bool(big.even[0]), float(big.x[3])]")
    assert got == [200000, sum(range(200000)), "Int64", len(range(0, 200000, 7)), "s199999", True, 1.5]


def test_push_values_and_frames(connected):
    res = connected.run(
        "import pandas as pd, numpy as np\n"
        "local_df = pd.DataFrame({'n': pd.array([1, None, 3], dtype='Int64'), 'f': [0.5, np.nan, 2.0],\n"
        "                         's': ['a', 'ü', None], 't': pd.to_datetime(['2020-01-01', None, '2021-01-01'])})\n"
        "msg = 'hello ✓'\nnum = 42\ncfg = {'a': [1, 2, {'b': None}]}\n"
        "%hail push local_df --as sdf\n%hail push local_df --as pdf_copy --pandas\n%hail push msg\n"
        "%hail push num\n%hail push cfg"
    )
    assert res.status == "ok", res.text
    assert "sdf: pushed (pyspark.sql" in res.stdout and "3 rows x 4 columns" in res.stdout
    res = connected.run(
        "%%hail\nprint(sorted((f.name, f.dataType.simpleString()) for f in sdf.schema.fields))\n"
        "print(sdf.orderBy('s').collect()[0]['n'], type(pdf_copy).__name__, msg, num + 1, cfg['a'][2])"
    )
    assert res.status == "ok", res.text
    assert "('n', 'bigint')" in res.stdout and "('t', 'timestamp')" in res.stdout
    assert "DataFrame hello ✓ 43 {'b': None}" in res.stdout
    res = connected.run("%hail push nothing_here")
    assert res.status == "error" and "no local variable 'nothing_here'" in res.evalue
    res = connected.run("%hail push msg --as 'bad name'")
    assert res.status == "error" and "not a Python variable name" in res.stderr


def test_push_large_frame_in_chunks(connected):
    from hail_emr_lab.notebook import transfer

    res = connected.run(
        "import hail_emr_lab.notebook.transfer as T\nT.PUSH_CHUNK_CHARS = 200_000\n"
        "import pandas as pd, numpy as np\n"
        "wide = pd.DataFrame({'v': np.arange(300_000, dtype='int64'), 'w': np.random.default_rng(1).random(300_000)})\n"
        "%hail push wide --pandas"
    )
    assert res.status == "ok", res.text
    assert transfer.PUSH_CHUNK_CHARS == 8_000_000  # the test process is untouched; the kernel used small chunks
    res = connected.run("%%hail\nprint(len(wide), int(wide.v.sum()))")
    assert f"300000 {sum(range(300000))}" in res.stdout


def test_sql(connected):
    res = connected.run("%%hail sql -o q\nSELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL")
    assert res.status == "ok", res.text
    assert connected.value("[q.a.tolist(), q.b.tolist()]") == [[1, 2], ["x", None]]
    res = connected.run("%%hail\nprint(q.count())")  # -o NAME also names the remote DataFrame
    assert "2" in res.stdout
    res = connected.run("%%hail sql -n 3\nSELECT * FROM range(10)")
    assert "showing the first 3 rows only" in res.stderr


def test_managing_commands(connected):
    res = connected.run("%hail sessions")
    assert res.status == "ok" and "current" in res.text and NAME in res.text
    res = connected.run("%hail logs -n 5")
    assert res.status == "ok" and res.stdout.strip()
    res = connected.run("%hail cancel")
    assert res.status == "ok" and "Nothing is running" in res.stdout
    res = connected.run("%hail config")
    assert res.status == "ok" and "heartbeat_timeout" in res.text and "default" in res.text
    res = connected.run("%hail delete 9999")
    assert res.status == "error" and "There is no session 9999" in res.evalue
    res = connected.run("%hail plots")
    assert res.status == "ok", res.text


def test_interrupt_cancels_on_the_cluster(connected):
    res = connected.run("%%hail\nimport time\nfor _ in range(120):\n    time.sleep(0.5)\nprint('finished')",
                        interrupt_after=4, timeout=120)
    assert res.status == "error" and res.ename == "HailInterrupted", res.text  # a KeyboardInterrupt
    assert "cancelled on the cluster" in "\n".join(res.traceback)
    client = LivyClient(connected.url)
    sid = connected.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    deadline = time.monotonic() + 60
    while True:
        last = client.list_statements(sid, size=5, order="desc")
        states = [s.state.value for s in last if "time.sleep(0.5)" in s.code]
        if states and states[0] == "cancelled":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    res = connected.run("%%hail\nprint('still alive', x)")
    assert res.status == "ok" and "still alive 21" in res.stdout


def test_reattach_after_kernel_restart(connected):
    sid = connected.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    connected.restart()
    res = connected.run(f"%hail connect --url {connected.url} --name {NAME}")
    assert res.status == "ok", res.text
    assert f"reattached to session {sid}" in res.text
    res = connected.run("%%hail\nprint('kept', x)")  # the remote variable survived the restart
    assert res.status == "ok" and "kept 21" in res.stdout, res.text


def test_session_death_is_explained(connected, livy_server):
    sid = connected.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    pid = livy_server.worker_pid(sid)
    assert pid
    os.kill(pid, 9)
    time.sleep(1)
    res = connected.run("%%hail\nprint(x)", timeout=120)
    assert res.status == "error" and res.ename == "HailMagicError", res.text
    tb = "\n".join(res.traceback)
    assert "remote" in tb and "variables are lost" in tb and "%hail connect" in tb
