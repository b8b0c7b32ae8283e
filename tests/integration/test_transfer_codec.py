"""Pull/push encoding with real Spark: exact values and dtypes, both wire formats.

The cluster-side encoder (hail_emr_lab/remote/dataframe.py) runs against a local
SparkSession in this process; the local decoder (hail_emr_lab/transfer.py) reads what it
made. The Arrow path and the no-pyarrow codec path must give identical frames.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math

import numpy as np
import pandas as pd
import pytest

from hail_emr_lab.notebook import transfer
from hail_emr_lab.remote import bootstrap_code, codec
from hail_emr_lab.remote import dataframe as rdf
from hail_emr_lab.remote import push as rpush

TZ = "America/New_York"


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("test_transfer_codec")
        .config("spark.sql.session.timeZone", TZ)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def _all_types_df(spark):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("b", T.ByteType()),
            T.StructField("s", T.ShortType()),
            T.StructField("i", T.IntegerType()),
            T.StructField("l", T.LongType()),
            T.StructField("l_null", T.LongType()),
            T.StructField("f", T.FloatType()),
            T.StructField("d", T.DoubleType()),
            T.StructField("d_null", T.DoubleType()),
            T.StructField("flag", T.BooleanType()),
            T.StructField("flag_null", T.BooleanType()),
            T.StructField("txt", T.StringType()),
            T.StructField("day", T.DateType()),
            T.StructField("ts", T.TimestampType()),
            T.StructField("dec", T.DecimalType(20, 6)),
            T.StructField("bin", T.BinaryType()),
            T.StructField("arr", T.ArrayType(T.LongType())),
            T.StructField("st", T.StructType([T.StructField("x", T.IntegerType()), T.StructField("y", T.StringType())])),
            T.StructField("mp", T.MapType(T.StringType(), T.DoubleType())),
        ]
    )
    big = 2**62 + 7  # not representable exactly as float64
    rows = [
        (1, 300, 70000, big, big, 1.5, float("nan"), float("nan"), True, True, "héllo ✓ 你好",
         datetime.date(2024, 2, 29), datetime.datetime(2024, 3, 10, 1, 30, 0, 123456),
         decimal.Decimal("12345678901234.123456"), b"\x00\xff", [1, None, 3], (1, "a"), {"k": 1.25}),
        (-2, -300, -70000, -big, None, -0.5, float("inf"), None, False, None, "",
         datetime.date(1900, 1, 1), datetime.datetime(1969, 12, 31, 23, 59, 59),
         decimal.Decimal("-0.000001"), b"", [], (None, None), {}),
        (0, 0, 0, 0, 3, 0.0, -0.0, 2.5, True, False, None, None, None, None, None, None, None, None),
    ]
    return spark.createDataFrame(rows, schema)


def _inline(fmt, blob, rows, extra):
    """Decode what the driver encoded as it travels inline (the driver's own packing)."""
    entry = {"format": fmt, "rows": rows, **extra}
    rdf.keep_inline(entry, blob, 10**12)
    return transfer.decode(entry, entry["data"])


def _pull_local(df, use_arrow, limit=None):
    fmt, blob, rows, truncated, extra, kind = rdf.encode_object(df, limit=limit, use_arrow=use_arrow)
    return _inline(fmt, blob, rows, extra), fmt, truncated, extra


def _check_all_types(pdf, expected_ts):
    big = 2**62 + 7
    assert pdf["b"].dtype == np.int8 and pdf["s"].dtype == np.int16 and pdf["i"].dtype == np.int32
    assert pdf["l"].dtype == np.int64 and pdf["l"].tolist() == [big, -big, 0]
    assert str(pdf["l_null"].dtype) == "Int64"
    assert pdf["l_null"].iloc[0] == big and pdf["l_null"].iloc[1] is pd.NA and pdf["l_null"].iloc[2] == 3
    assert pdf["f"].dtype == np.float32
    assert pdf["d"].dtype == np.float64 and math.isnan(pdf["d"][0]) and pdf["d"][1] == math.inf
    assert math.copysign(1, pdf["d"][2]) == -1.0
    # NaN (a value) and null stay apart.
    assert str(pdf["d_null"].dtype) == "Float64"
    assert not pd.isna(pdf["d_null"].array[0]) or np.isnan(pdf["d_null"].array._data[0])
    assert pdf["d_null"].array._mask.tolist() == [False, True, False]
    assert np.isnan(pdf["d_null"].array._data[0]) and pdf["d_null"].array[2] == 2.5
    assert pdf["flag"].dtype == bool and pdf["flag"].tolist() == [True, False, True]
    assert str(pdf["flag_null"].dtype) == "boolean" and pdf["flag_null"].iloc[1] is pd.NA
    assert pdf["txt"].tolist() == ["héllo ✓ 你好", "", None]
    assert pdf["day"].tolist() == [datetime.date(2024, 2, 29), datetime.date(1900, 1, 1), None]
    assert str(pdf["ts"].dtype) == "datetime64[ns]"
    # Wall-clock time in the Spark session time zone, exactly as Spark's own toPandas shows it.
    assert pdf["ts"].tolist()[:2] == expected_ts[:2] and pd.isna(pdf["ts"][2])
    assert pdf["ts"][0] == pd.Timestamp("2024-03-09 20:30:00.123456")  # 01:30 UTC in New York
    assert pdf["dec"].tolist() == [decimal.Decimal("12345678901234.123456"), decimal.Decimal("-0.000001"), None]
    assert pdf["bin"].tolist() == [b"\x00\xff", b"", None]
    assert pdf["arr"].tolist() == [[1, None, 3], [], None]
    assert pdf["st"].tolist() == [{"x": 1, "y": "a"}, {"x": None, "y": None}, None]
    assert pdf["mp"].tolist() == [{"k": 1.25}, {}, None]


@pytest.mark.slow
@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_spark_all_types_round_trip(spark, use_arrow):
    df = _all_types_df(spark)
    pdf, fmt, truncated, _ = _pull_local(df, use_arrow)
    assert fmt == ("arrow" if use_arrow else "helc")
    assert not truncated
    _check_all_types(pdf, df.select("ts").toPandas()["ts"].tolist())


@pytest.mark.slow
def test_arrow_and_codec_agree(spark):
    df = _all_types_df(spark)
    a, *_ = _pull_local(df, True)
    c, *_ = _pull_local(df, False)
    pd.testing.assert_frame_equal(a, c)


@pytest.mark.slow
def test_limit_reports_truncation(spark):
    df = spark.range(0, 1000)
    for use_arrow in (True, False):
        pdf, _, truncated, _ = _pull_local(df, use_arrow, limit=10)
        assert truncated and len(pdf) == 10 and pdf["id"].tolist() == list(range(10))
        pdf, _, truncated, _ = _pull_local(df, use_arrow, limit=1000)
        assert not truncated and len(pdf) == 1000


@pytest.mark.slow
def test_empty_frame_keeps_columns(spark):
    df = spark.range(0, 10).filter("id < 0").selectExpr("id", "cast(id as string) as s")
    for use_arrow in (True, False):
        pdf, *_ = _pull_local(df, use_arrow)
        assert list(pdf.columns) == ["id", "s"] and len(pdf) == 0


def _sample_pandas():
    return pd.DataFrame(
        {
            "i": np.array([1, -2, 3], dtype="int64"),
            "i32": np.array([1, 2, 3], dtype="int32"),
            "ni": pd.array([1, None, 2**62 + 7], dtype="Int64"),
            "f": [0.5, float("nan"), float("-inf")],
            "nf": pd.arrays.FloatingArray(np.array([1.0, np.nan, 0.0]), np.array([False, False, True])),
            "b": [True, False, True],
            "nb": pd.array([True, None, False], dtype="boolean"),
            "s": ["a", None, "ü ✓"],
            "t": pd.to_datetime(["2020-01-01 00:00:00.000001", None, "1960-05-05 00:00:00.000000"]),
            "tz": pd.to_datetime(["2020-01-01", "2021-06-01", None]).tz_localize("Europe/Paris"),
            "td": pd.to_timedelta([1, None, -5], unit="s"),
            "d": [datetime.date(2020, 1, 1), None, datetime.date(1, 1, 1)],
            "dec": [decimal.Decimal("1.10"), None, decimal.Decimal("-3")],
            "raw": [b"\x00", None, b"xyz"],
            "j": [[1, 2], {"a": [None]}, None],
            "cat": pd.Categorical(["x", "y", "x"]),
        }
    )


def test_codec_pandas_round_trip():
    src = _sample_pandas()
    out = codec.decode_pandas(codec.unpack(codec.pack(codec.encode_pandas(src))))
    expected = src.copy()
    expected["cat"] = expected["cat"].astype(object)
    pd.testing.assert_frame_equal(out, expected)
    assert np.isnan(out["nf"].array._data[1]) and not out["nf"].array._mask[1] and out["nf"].array._mask[2]


def test_codec_keeps_non_default_index():
    src = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="key"))
    out = codec.decode_pandas(codec.encode_pandas(src))
    assert out.to_dict("list") == {"key": ["a", "b"], "v": [1, 2]}


@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_index_named_like_a_column_keeps_both(use_arrow):
    src = pd.DataFrame({"k": [1, 2], "v": ["a", "b"]}).set_index("k", drop=False)
    fmt, blob, rows, truncated, extra, kind = rdf.encode_object(src, use_arrow=use_arrow)
    out = _inline(fmt, blob, rows, extra)
    if use_arrow:  # pandas metadata travels: the index is restored as an index
        pd.testing.assert_frame_equal(out, src)
    else:
        assert _columns(out) == (["k", "k", "v"], [[1, 2], [1, 2], ["a", "b"]])
    pushed = codec.decode_pandas(codec.unpack(transfer.encode_for_push(src)[1]))
    assert _columns(pushed) == (["k", "k", "v"], [[1, 2], [1, 2], ["a", "b"]])


def test_codec_rejects_garbage():
    with pytest.raises(ValueError, match="bad magic"):
        codec.decode_pandas(b"PK\x03\x04 not ours")


@pytest.mark.slow
def test_push_to_spark_keeps_types(spark):
    src = _sample_pandas().drop(columns=["td", "j", "cat", "tz"])
    kind, text = transfer.encode_for_push(src)
    assert kind == "frame"
    ns = {"spark": spark}
    rpush.push_part("tok", text)
    rpush.push_finish(ns, "tok", "df", kind)
    sdf = ns["df"]
    types = {f.name: f.dataType.simpleString() for f in sdf.schema.fields}
    assert types["ni"] == "bigint" and types["nf"] == "double" and types["nb"] == "boolean"
    assert types["t"] == "timestamp" and types["d"] == "date" and types["dec"] == "decimal(38,2)"
    rows = sdf.collect()
    assert rows[1]["ni"] is None and rows[2]["ni"] == 2**62 + 7
    assert math.isnan(rows[1]["nf"]) and rows[2]["nf"] is None
    assert rows[2]["s"] == "ü ✓" and rows[1]["d"] is None and rows[0]["raw"] == bytearray(b"\x00")
    # And back: what we pull is what we pushed.
    back, *_ = _pull_local(sdf, True)
    assert back["ni"].tolist()[2] == 2**62 + 7 and back["s"].tolist() == ["a", None, "ü ✓"]


def test_push_json_and_pandas(capsys):
    kind, text = transfer.encode_for_push({"a": [1, 2.5, None], "b": "x"})
    ns: dict = {}
    rpush.push_part("t1", text)
    rpush.push_finish(ns, "t1", "cfg", kind)
    assert ns["cfg"] == {"a": [1, 2.5, None], "b": "x"}
    kind, text = transfer.encode_for_push(pd.DataFrame({"x": [1, 2]}))
    rpush.push_part("t2", text)
    rpush.push_finish(ns, "t2", "pdf", kind, as_pandas=True)
    assert isinstance(ns["pdf"], pd.DataFrame) and ns["pdf"]["x"].tolist() == [1, 2]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1].split(rdf.MARKER)[-1])
    assert summary["shape"] == "2 rows x 1 columns"


def test_push_refuses_unsupported_values():
    with pytest.raises(transfer.TransferError, match="cannot push"):
        transfer.encode_for_push(object())


def test_bootstrap_defines_namespace_without_the_package():
    """The exec'd helpers work from source text alone (as on a cluster without hail_emr_lab)."""
    ns: dict = {"__name__": "__main__"}
    exec(bootstrap_code(), ns)  # our own package source, never anything from the cluster
    mod = ns["_hail_emr_lab"]
    # codec names came from the exec'd text, not from an import of hail_emr_lab
    assert mod.pull.__globals__ is mod.__dict__ and "_Writer" in mod.__dict__
    assert mod.encode_pandas.__module__ == "_hail_emr_lab"
    pdf = pd.DataFrame({"a": [1, None]}, dtype="Int64")
    ns["frame"] = pdf
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        mod.pull(ns, ["frame"], None, 1000, use_arrow=False)
    entry = json.loads(buf.getvalue().split(rdf.MARKER)[-1])[0]
    out = transfer.decode(entry, entry["data"])
    pd.testing.assert_frame_equal(out, pdf)


# ---------------------------------------------------------------- repeated column names


def _columns(pdf):
    """Names and values by position (NaN/NA/NaT as None): what must survive a transfer."""
    values = []
    for i in range(pdf.shape[1]):
        values.append([None if not isinstance(v, (list, dict)) and pd.isna(v) else v for v in pdf.iloc[:, i].tolist()])
    return [str(c) for c in pdf.columns], values


def _joined(spark):
    a = spark.createDataFrame(
        [(1, "left", 10, datetime.datetime(2020, 1, 1, 12))], "k long, v string, n long, t timestamp")
    b = spark.createDataFrame([(1, "right", None, datetime.datetime(2021, 6, 1, 8))],
                              "k long, v string, n long, t timestamp")
    return a.join(b, "k")


@pytest.mark.slow
@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_spark_repeated_names_keep_every_column(spark, use_arrow):
    df = _joined(spark)
    pdf, fmt, *_ = _pull_local(df, use_arrow)
    assert fmt == ("arrow" if use_arrow else "helc")
    assert list(pdf.columns) == ["k", "v", "n", "t", "v", "n", "t"]
    assert _columns(pdf) == _columns(df.toPandas())
    assert pdf.iloc[0, 1] == "left" and pdf.iloc[0, 4] == "right"
    assert str(pdf.dtypes.iloc[2]) == "int64" and str(pdf.dtypes.iloc[5]) == "Int64"
    assert str(pdf.dtypes.iloc[3]) == str(pdf.dtypes.iloc[6]) == "datetime64[ns]"


@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_pandas_repeated_names_keep_every_column(use_arrow):
    src = pd.concat([pd.DataFrame({"k": [1, 2], "v": pd.array([1, None], dtype="Int64")}),
                     pd.DataFrame({"v": ["a", None], "k": [0.5, float("nan")]})], axis=1)
    fmt, blob, rows, truncated, extra, kind = rdf.encode_object(src, use_arrow=use_arrow)
    assert fmt == ("arrow-pandas" if use_arrow else "helc") and "arrow_fallback" not in extra
    out = _inline(fmt, blob, rows, extra)
    pd.testing.assert_frame_equal(out, src)


def test_codec_repeated_names_round_trip():
    src = pd.DataFrame([[1, "x", 2.5, "y"]], columns=["a", "b", "a", "b"])
    out = codec.decode_pandas(codec.encode_pandas(src))
    pd.testing.assert_frame_equal(out, src)


@pytest.mark.slow
def test_push_repeated_names_keep_every_column(spark):
    src = pd.DataFrame([[1, "left", "right", pd.Timestamp("2020-01-01")]], columns=["k", "v", "v", "t"])
    kind, text = transfer.encode_for_push(src)
    ns = {"spark": spark}
    rpush.push_part("dup1", text)
    rpush.push_finish(ns, "dup1", "sdf", kind)
    assert ns["sdf"].columns == ["k", "v", "v", "t"]
    assert list(ns["sdf"].collect()[0])[:3] == [1, "left", "right"]
    rpush.push_part("dup2", text)
    rpush.push_finish(ns, "dup2", "pdf", kind, as_pandas=True)
    pd.testing.assert_frame_equal(ns["pdf"], src)


@pytest.mark.slow
@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_struct_with_repeated_field_names_is_refused(spark, use_arrow):
    df = spark.sql("SELECT 1 AS k, array(named_struct('v', 1, 'w', 2, 'v', 3)) AS s")
    with pytest.raises(ValueError, match=r"column 's' holds a struct with repeated field names 'v'"):
        rdf.encode_object(df, use_arrow=use_arrow)


# ---------------------------------------------------------------- session time zone at every depth


def _wall(v):
    """Timestamps anywhere in a value as text; containers as lists and dicts."""
    if v is None:
        return None
    if isinstance(v, (datetime.datetime, np.datetime64, pd.Timestamp)):
        return None if pd.isna(v) else str(pd.Timestamp(v))
    if hasattr(v, "asDict"):
        return {k: _wall(x) for k, x in v.asDict().items()}
    if isinstance(v, dict):
        return {k: _wall(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_wall(x) for x in v]
    return v


NESTED_TS = (
    "SELECT timestamp'2020-06-01 12:00:00' AS top,"
    " named_struct('t', timestamp'2020-06-01 12:00:00', 'n', 1) AS st,"
    " array(timestamp'2020-06-01 12:00:00', timestamp'1950-12-31 23:59:59.000001', NULL) AS arr,"
    " array(named_struct('t', timestamp'2020-11-01 01:30:00')) AS deep,"
    " map('k', timestamp'2020-03-08 03:00:00') AS mp"
)


@pytest.mark.slow
@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_nested_timestamps_follow_the_session_time_zone(spark, use_arrow):
    assert spark.conf.get("spark.sql.session.timeZone") == TZ
    df = spark.sql(NESTED_TS)
    pdf, fmt, *_ = _pull_local(df, use_arrow)
    assert fmt == ("arrow" if use_arrow else "helc")
    got = [_wall(pdf.iloc[0, i]) for i in range(pdf.shape[1])]
    assert got[:3] == ["2020-06-01 12:00:00", {"t": "2020-06-01 12:00:00", "n": 1},
                       ["2020-06-01 12:00:00", "1950-12-31 23:59:59.000001", None]]
    assert got[3:] == [[{"t": "2020-11-01 01:30:00"}], {"k": "2020-03-08 03:00:00"}]
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    try:
        ref = df.toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.pyspark.enabled")
    assert got == [_wall(ref.iloc[0, i]) for i in range(ref.shape[1])]


@pytest.mark.slow
@pytest.mark.parametrize("zone", ["+05:30", "GMT+8", "UTC-03:00"])
def test_offset_session_time_zones_at_every_depth(spark, zone):
    """Zone ids Spark takes besides regions: one rule at every depth, on both transports."""
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        df = spark.sql("SELECT timestamp_micros(1591012800000001) AS top, "
                       "named_struct('t', timestamp_micros(1591012800000001)) AS st, "
                       "array(timestamp_micros(1591012800000001)) AS arr, "
                       "map(timestamp_micros(1591012800000001), 1) AS mp")
        want = df.selectExpr("date_format(top, 'yyyy-MM-dd HH:mm:ss.SSSSSS')").first()[0]  # Spark's own text
        for use_arrow in (True, False):
            pdf, *_ = _pull_local(df, use_arrow)
            got = [str(pd.Timestamp(pdf["top"][0])), str(pd.Timestamp(pdf["st"][0]["t"])),
                   str(pd.Timestamp(pdf["arr"][0][0])), str(pd.Timestamp(next(iter(pdf["mp"][0]))))]
            assert got == [want] * 4, (use_arrow, got, want)
    finally:
        spark.conf.set("spark.sql.session.timeZone", TZ)


@pytest.mark.slow
def test_push_timestamps_follow_the_session_time_zone(spark):
    """Naive = wall-clock time in the session zone (as pulls and createDataFrame(pandas)); aware = the instant."""
    src = pd.DataFrame({
        "naive": pd.to_datetime(["2020-06-01 12:00:00.000001", None, "1950-01-01 00:00:00.000000"]),
        "aware": pd.to_datetime(["2020-06-01 16:00", "2021-01-01 00:00", None]).tz_localize("UTC"),
        "obj": [datetime.datetime(2020, 6, 1, 12), None, datetime.datetime(2020, 11, 1, 1, 30)],
    })
    from pyspark.sql import functions as F

    kind, text = transfer.encode_for_push(src)
    ns = {"spark": spark}
    rpush.push_part("tz1", text)
    rpush.push_finish(ns, "tz1", "sdf", kind)
    fmt = "yyyy-MM-dd HH:mm:ss.SSSSSS"
    shown = [list(r) for r in ns["sdf"].select(*[F.date_format(c, fmt) for c in ("naive", "aware", "obj")]).collect()]
    assert shown == [["2020-06-01 12:00:00.000001", "2020-06-01 12:00:00.000000", "2020-06-01 12:00:00.000000"],
                     [None, "2020-12-31 19:00:00.000000", None],
                     ["1950-01-01 00:00:00.000000", None, "2020-11-01 01:30:00.000000"]]
    back, *_ = _pull_local(ns["sdf"], False)
    assert back["naive"].tolist()[0] == pd.Timestamp("2020-06-01 12:00:00.000001")



@pytest.mark.slow
@pytest.mark.parametrize("use_arrow", [True, False], ids=["arrow", "codec"])
def test_timestamps_pandas_cannot_hold_fail_clearly(spark, use_arrow):
    """Year 1500 does not fit datetime64[ns]: a clear error, never a wrapped-around date."""
    df = spark.sql("SELECT 1 AS k, timestamp'1500-01-01 00:00:00' AS old")
    with pytest.raises(transfer.TransferError, match=r"column 'old' holds timestamps outside the years pandas can "
                                                     r"hold \(1677-2262\), e.g. 1500-01-01"):
        _pull_local(df, use_arrow)
    pdf, *_ = _pull_local(spark.sql("SELECT timestamp'1700-01-01 00:00:00' AS ok"), use_arrow)
    assert pdf["ok"][0] == pd.Timestamp("1700-01-01")
