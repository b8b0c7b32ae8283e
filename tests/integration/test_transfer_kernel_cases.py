"""Pulls and pushes that must come back exactly: a real kernel against the embedded Livy.

Each case runs on every way a frame can travel: inline through Livy as Arrow IPC (pyarrow on
the driver) or as the codec (``HAIL_EMR_LAB_ARROW=0`` in the session, the very code a driver
without pyarrow runs), and staged as Parquet in the embedded server's staging folder
(``--via staged``); the pulled line names the format used, and the tests check it. One kernel
and one Livy session for the module (each session is a Spark JVM).
"""

from __future__ import annotations

import json
import time

import pytest
from support.kernel import Kernel, kernel_env

pytestmark = pytest.mark.slow
NAME = "transfer-cases-test"

#: Defined in the kernel and in the Livy session: a frame's names and values by position
#: (NaN/NA/NaT as None, timestamps at any depth as wall-clock text, Rows as dicts).
SHOW = '''
def _hel_show(df):
    import datetime, numpy as np, pandas as pd

    def wall(v):
        if v is None:
            return None
        if isinstance(v, (datetime.datetime, np.datetime64, pd.Timestamp)):
            return None if pd.isna(v) else str(pd.Timestamp(v))
        if hasattr(v, "asDict"):
            return {k: wall(x) for k, x in v.asDict().items()}
        if isinstance(v, dict):
            return {str(k): wall(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [wall(x) for x in v]
        if isinstance(v, float) and v != v or v is pd.NA:
            return None
        if isinstance(v, np.generic):
            return v.item()
        return v

    return [[str(c) for c in df.columns],
            [[wall(v) for v in df.iloc[:, i].tolist()] for i in range(df.shape[1])],
            [str(t) for t in df.dtypes]]
'''


@pytest.fixture(scope="module")
def kernel(livy_server, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("kcfg")
    k = Kernel(kernel_env(str(cfg)), cwd=str(cfg))
    k.url = livy_server.url
    k.staging = cfg / "local" / "staging"  # the embedded state dir of kernel_env
    yield k
    k.run("%hail cleanup", timeout=120)
    k.shutdown()


@pytest.fixture(scope="module")
def connected(kernel):
    res = kernel.run(f"%hail connect --url {kernel.url} --name {NAME}")
    assert res.status == "ok", res.text
    res = kernel.run("%%hail\n" + SHOW + "\nprint('ready')", timeout=900)
    assert res.status == "ok" and "ready" in res.stdout, res.text
    res = kernel.run(SHOW)
    assert res.status == "ok", res.text
    return kernel


def _use(kernel: Kernel, param: str):
    switch = "0" if param == "codec" else "1"
    res = kernel.run(f"%%hail\nimport os\nos.environ['HAIL_EMR_LAB_ARROW'] = {switch!r}")
    assert res.status == "ok", res.text
    yield param
    kernel.run("%%hail\nos.environ.pop('HAIL_EMR_LAB_ARROW', None)")
    assert leftovers(kernel) == []


@pytest.fixture(params=["arrow", "codec", "staged"])
def transport(connected, request):
    """How frames travel in this test: ``"arrow"``, ``"codec"`` (both inline) or ``"staged"``."""
    yield from _use(connected, request.param)


@pytest.fixture(params=["arrow", "codec"])
def inline_transport(connected, request):
    """The inline ways only (for paths without ``--via``)."""
    yield from _use(connected, request.param)


def via(transport: str) -> str:
    """The ``%%hail`` flag that makes ``-o`` use ``transport``."""
    return " --via staged" if transport == "staged" else " --via livy"


def leftovers(kernel: Kernel) -> list[str]:
    """What is left in the kernel's local staging folder."""
    return sorted(p.name for p in kernel.staging.iterdir()) if kernel.staging.exists() else []


def remote(kernel: Kernel, expr: str):
    """``expr`` evaluated in the Livy session, through JSON."""
    res = kernel.run(f"%%hail\nimport json as _j\nprint(_j.dumps({expr}, default=str))")
    assert res.status == "ok", res.text
    return json.loads(res.stdout.strip().splitlines()[-1])


def pulled(res, name: str, transport: str, source: str) -> None:
    """The cell succeeded and ``name`` travelled in the format of ``transport``."""
    assert res.status == "ok", res.text
    fmt = {"arrow": "arrow-pandas" if source == "pandas" else "arrow", "codec": "helc",
           "staged": "parquet-pandas" if source == "pandas" else "parquet"}[transport]
    kind = {"spark": "Spark DataFrame", "hail": "Hail Table", "pandas": "pandas DataFrame"}[source]
    assert f"{name}: pulled " in res.stdout and f"from the {kind} `{name}` ({fmt}," in res.stdout, res.stdout


def test_spark_join_keeps_both_columns(connected, transport):
    res = connected.run(
        f"%%hail -o dup{via(transport)}\n"
        "a = spark.createDataFrame([(1, 'left', 10), (2, 'l2', 20)], 'k long, v string, n long')\n"
        "b = spark.createDataFrame([(1, 'right', None), (2, None, 5)], 'k long, v string, n long')\n"
        "dup = a.join(b, 'k').orderBy('k')"
    )
    pulled(res, "dup", transport, "spark")
    names, values, dtypes = connected.value("_hel_show(dup)")
    assert names == ["k", "v", "n", "v", "n"]
    assert values == [[1, 2], ["left", "l2"], [10, 20], ["right", None], [None, 5]]
    assert dtypes == ["int64", "object", "int64", "object", "Int64"]
    assert [names, values] == remote(connected, "_hel_show(dup.toPandas())")[:2]


def test_sql_result_keeps_repeated_names(connected, inline_transport):
    res = connected.run("%%hail sql -o q -q\nSELECT 1 AS k, 'left' AS v, CAST(NULL AS BIGINT) AS n, "
                        "'right' AS v, 7L AS n")
    assert res.status == "ok", res.text
    assert connected.value("_hel_show(q)") == [
        ["k", "v", "n", "v", "n"], [[1], ["left"], [None], ["right"], [7]],
        ["int32", "object", "Int64", "object", "int64"]]
    names, values, _ = remote(connected, "_hel_show(q.toPandas())")
    assert connected.value("_hel_show(q)")[:2] == [names, values]


def test_remote_pandas_frame_keeps_repeated_names(connected, transport):
    res = connected.run(
        f"%%hail -o pdup{via(transport)}\nimport pandas as pd\n"
        "pdup = pd.concat([pd.DataFrame({'k': [1, 2], 'v': pd.array([1, None], dtype='Int64')}),\n"
        "                  pd.DataFrame({'v': ['a', None], 'k': [0.5, float('nan')]})], axis=1)"
    )
    pulled(res, "pdup", transport, "pandas")
    got = connected.value("_hel_show(pdup)")
    assert got == remote(connected, "_hel_show(pdup)")
    assert got == [["k", "v", "v", "k"], [[1, 2], [1, None], ["a", None], [0.5, None]],
                   ["int64", "Int64", "object", "float64"]]


def test_hail_table_flattened_names_that_collide(connected, transport):
    # The field b of a struct a and a field called "a.b" both flatten to the column "a.b";
    # Hail's own to_spark() keeps only one of them (toPandas of it would show two columns).
    res = connected.run(
        f"%%hail -o hdup{via(transport)}\n"
        "hdup = hl.utils.range_table(3)\n"
        "hdup = hdup.annotate(a=hl.struct(b=hdup.idx * 10, c=hl.float64(hdup.idx) / 4), **{'a.b': hl.str(hdup.idx)})",
        timeout=900,
    )
    pulled(res, "hdup", transport, "hail")
    assert connected.value("_hel_show(hdup)") == [
        ["idx", "a.b", "a.c", "a.b"], [[0, 1, 2], [0, 10, 20], [0.0, 0.25, 0.5], ["0", "1", "2"]],
        ["int32", "int32", "float64", "object"]]
    # Without a collision the table travels exactly as Hail's to_spark() gives it.
    res = connected.run(f"%%hail -o hone{via(transport)}\nhone = hdup.drop('a.b')", timeout=900)
    pulled(res, "hone", transport, "hail")
    assert connected.value("_hel_show(hone)")[:2] == remote(connected, "_hel_show(hone.to_spark().toPandas())")[:2]


def test_struct_with_repeated_field_names_fails_clearly(connected, transport):
    res = connected.run(f"%%hail -o sdup{via(transport)}\nsdup = spark.sql(\"SELECT named_struct('v', 1, 'v', 2) AS s\")")
    assert res.status == "error", res.text
    assert "column 's' holds a struct with repeated field names 'v'" in res.text, res.text
    assert connected.value("'sdup' in globals()") is False


def test_push_keeps_repeated_names_both_ways(connected, transport):
    res = connected.run(
        "import pandas as pd\n"
        "ldup = pd.concat([pd.DataFrame({'k': [1, 2], 'v': ['left', 'l2']}),\n"
        "                  pd.DataFrame({'v': ['right', None], 'n': pd.array([None, 5], dtype='Int64')})], axis=1)\n"
        "%hail push ldup\n%hail push ldup --as ldup_pd --pandas"
    )
    assert res.status == "ok", res.text
    assert "ldup: pushed (pyspark.sql" in res.stdout and "2 rows x 4 columns" in res.stdout
    want = [["k", "v", "v", "n"], [[1, 2], ["left", "l2"], ["right", None], [None, 5]]]
    assert remote(connected, "[ldup.columns, [list(r) for r in ldup.collect()]]") == [
        want[0], [[1, "left", "right", None], [2, "l2", None, 5]]]
    assert remote(connected, "_hel_show(ldup_pd)") == want + [["int64", "object", "object", "Int64"]]
    res = connected.run(f"%%hail -o back{via(transport)}\nback = ldup")
    pulled(res, "back", transport, "spark")
    assert connected.value("_hel_show(back)")[:2] == want


NESTED_TS = (
    "SELECT timestamp'2020-06-01 12:00:00' AS top,"
    " named_struct('t', timestamp'2020-06-01 12:00:00', 'n', 1) AS st,"
    " array(timestamp'2020-06-01 12:00:00', timestamp'1950-12-31 23:59:59.000001', NULL) AS arr,"
    " array(named_struct('t', timestamp'2020-11-01 01:30:00')) AS deep,"
    " map('k', timestamp'2020-03-08 03:00:00') AS mp"
)


def test_timestamps_follow_the_session_time_zone_at_every_depth(connected, transport):
    res = connected.run(
        f"%%hail -o tsdf{via(transport)}\n"
        "spark.conf.set('spark.sql.session.timeZone', 'America/New_York')\n"
        f"tsdf = spark.sql({NESTED_TS!r})"
    )
    try:
        pulled(res, "tsdf", transport, "spark")
        names, values, dtypes = connected.value("_hel_show(tsdf)")
        assert values == [["2020-06-01 12:00:00"], [{"t": "2020-06-01 12:00:00", "n": 1}],
                          [["2020-06-01 12:00:00", "1950-12-31 23:59:59.000001", None]],
                          [[{"t": "2020-11-01 01:30:00"}]], [{"k": "2020-03-08 03:00:00"}]]
        assert dtypes[0] == "datetime64[ns]"
        # What Spark's own toPandas (with Arrow) shows on the driver, in the same session.
        ref = remote(connected, "(spark.conf.set('spark.sql.execution.arrow.pyspark.enabled', 'true'), "
                                "_hel_show(tsdf.toPandas()))[1]")
        assert [names, values] == ref[:2]
    finally:
        connected.run("%%hail\nspark.conf.unset('spark.sql.session.timeZone')\n"
                      "spark.conf.unset('spark.sql.execution.arrow.pyspark.enabled')")


def test_pushed_timestamps_follow_the_session_time_zone(connected, transport):
    res = connected.run(
        "%%hail\nspark.conf.set('spark.sql.session.timeZone', 'America/New_York')\nprint('set')")
    assert res.status == "ok", res.text
    try:
        res = connected.run(
            "import pandas as pd\n"
            "lts = pd.DataFrame({'naive': pd.to_datetime(['2020-06-01 12:00:00.000001', None]),\n"
            "                    'aware': pd.to_datetime(['2020-06-01 16:00:00', '2021-01-01 00:00:00']).tz_localize('UTC')})\n"
            "%hail push lts"
        )
        assert res.status == "ok", res.text
        shown = remote(connected, "[list(r) for r in lts.selectExpr("
                                  "\"date_format(naive, 'yyyy-MM-dd HH:mm:ss.SSSSSS')\", "
                                  "\"date_format(aware, 'yyyy-MM-dd HH:mm:ss.SSSSSS')\").collect()]")
        # Naive: wall-clock time in the session zone (as Spark's createDataFrame(pandas)); aware: the instant.
        assert shown == [["2020-06-01 12:00:00.000001", "2020-06-01 12:00:00.000000"],
                         [None, "2020-12-31 19:00:00.000000"]]
        res = connected.run(f"%%hail -o lts_back{via(transport)}\nlts_back = lts")
        pulled(res, "lts_back", transport, "spark")
        assert connected.value("_hel_show(lts_back)[1]") == [
            ["2020-06-01 12:00:00.000001", None], ["2020-06-01 12:00:00", "2020-12-31 19:00:00"]]
    finally:
        connected.run("%%hail\nspark.conf.unset('spark.sql.session.timeZone')")


def udf_frame_cell(name: str, body: str, rows: int) -> str:
    """A cell defining ``name``: ids through a Python UDF that runs ``body`` (indented) on each ``i``."""
    return (
        f"%%hail -o {name} --via staged\n"
        "from pyspark.sql import functions as F, types as T\n"
        "def _hel_each(i):\n"
        f"    {body}\n"
        "    return i\n"
        f"{name} = spark.range(0, {rows}, numPartitions=4).select(F.udf(_hel_each, T.LongType())('id').alias('v'))"
    )


def test_staged_pull_that_fails_half_way_leaves_no_files(connected):
    res = connected.run(udf_frame_cell("bad", "if i >= 3000:\n        raise RuntimeError(f'row {i} is bad')", 4000),
                        timeout=900)
    assert res.status == "error" and "row 3" in res.text, res.text
    assert connected.value("'bad' in globals()") is False
    assert leftovers(connected) == []


def test_auto_stages_a_big_result_and_keeps_small_ones_inline(connected):
    # A 4 MB threshold for this test (the default is larger), so 300,000 rows are enough to stage;
    # the kernel's configuration was resolved at connect, so it is set there.
    values = "__import__('hail_emr_lab.notebook.context').notebook.context.current().config.values"
    default = connected.value(f"{values}['transfer_inline_max']")
    connected.run(f"{values}['transfer_inline_max'] = 4_000_000")
    try:
        res = connected.run(
            "%%hail -o gwas -o tiny\n"
            "from pyspark.sql import functions as F\n"
            "gwas = spark.range(0, 300000, numPartitions=3).select(\n"
            "    F.concat(F.lit('1:'), F.col('id').cast('string'), F.lit(':A:G')).alias('variant'), 'id',\n"
            "    (F.col('id') % 97 / 97.0).alias('p'))\n"
            "tiny = gwas.limit(5)",
            timeout=900,
        )
        assert res.status == "ok", res.text
        assert "gwas: pulled 300,000 rows x 3 columns from the Spark DataFrame `gwas` (parquet," in res.stdout, res.stdout
        assert "tiny: pulled 5 rows x 3 columns from the Spark DataFrame `tiny` (arrow," in res.stdout, res.stdout
        assert connected.value("[gwas['variant'].iloc[-1], int(gwas['id'].sum()), [str(t) for t in gwas.dtypes]]") == [
            "1:299999:A:G", sum(range(300000)), ["object", "int64", "float64"]]
        assert leftovers(connected) == []
    finally:
        connected.run(f"{values}['transfer_inline_max'] = {default!r}")


def test_ctrl_c_during_a_staged_pull_stops_both_sides(connected):
    res = connected.run(udf_frame_cell("slow", "import time\n    time.sleep(0.5)", 600), timeout=600, interrupt_after=25)
    assert res.status == "error" and "was cancelled on the cluster" in res.text, res.text
    assert connected.value("'slow' in globals()") is False
    # The session is free again long before the write could have finished (about 150 s of sleeps on 2 cores).
    started = time.monotonic()
    res = connected.run("%%hail\nprint('after')", timeout=300)
    assert res.status == "ok" and "after" in res.stdout, res.text
    assert time.monotonic() - started < 90
    deadline = time.monotonic() + 30  # the driver's own clean-up may finish just after the cancel
    while leftovers(connected) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers(connected) == []
