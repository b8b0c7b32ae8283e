"""Cluster side of ``%hail push``: rebuild a value sent in parts, bind it to a name.

Exec'd after ``codec.py``, ``dataframe.py`` and ``staged.py`` (Python 3.7+, pyspark/pandas/numpy
only). Inline, frames arrive in the codec format (no pyarrow needed here) and become a Spark
DataFrame with an explicit schema (dtypes kept: nullable ints stay LongType with nulls, NaN stays
NaN and null stays null), or stay pandas. Staged, the notebook wrote Parquet with those same
Spark types (``notebook/staged_push.py``) and the executors read it (:func:`push_staged`).
"""

import json

if "decode_pandas" not in globals():  # imported locally (tests); on the cluster codec.py came first
    from hail_emr_lab.remote.codec import decode_pandas, unpack
    from hail_emr_lab.remote.dataframe import MARKER, _session_tz
    from hail_emr_lab.remote.staged import StagingRefused, read_pandas, read_spark, readable_location

_PARTS = {}


def push_part(token, text):
    """Keep one part of a value being pushed."""
    _PARTS.setdefault(token, []).append(text)
    print(MARKER + str(sum(len(p) for p in _PARTS[token])))


def push_finish(ns, token, name, kind, as_pandas=False):
    """Join the parts of ``token``, decode them and bind the value to ``ns[name]``."""
    text = "".join(_PARTS.pop(token, []))
    raw = unpack(text)
    if kind == "frame":
        pdf = decode_pandas(raw)
        value = pdf if as_pandas else pandas_to_spark(ns["spark"], pdf)
        shape = "%d rows x %d columns" % (len(pdf), len(pdf.columns))
    else:
        value = json.loads(raw.decode("utf-8"))
        shape = type(value).__name__
    _bind(ns, name, value, shape)


def _bind(ns, name, value, shape, **extra):
    """``ns[name] = value`` and the one marker line the notebook reads back."""
    ns[name] = value
    summary = {"name": name, "type": type(value).__module__ + "." + type(value).__name__, "shape": shape}
    summary.update(extra)
    print(MARKER + json.dumps(summary))


def push_where(ns, stagings, as_pandas=False):
    """Print which offered staging location this session can read a pushed frame from.

    Marker payload: ``{"location": url}``, or ``{"refused": why}`` (the notebook then pushes
    inline, or stops when staging was forced). Checked again when reading (:func:`push_staged`).
    """
    try:
        staging = readable_location(ns["spark"], stagings, as_pandas)
    except StagingRefused as exc:
        print(MARKER + json.dumps({"refused": str(exc)}))
        return
    print(MARKER + json.dumps({"location": staging["url"]}))


def push_staged(ns, staging, files, name, names, naive, rows, as_pandas=False):
    """Read a frame the notebook staged as Parquet and bind it to ``ns[name]``.

    ``files``: the Parquet file names under ``<staging>/data`` in row order; ``names``: the
    column names by position (the files hold placeholders); ``naive``: positions of naive
    timestamp columns, written as their wall clock in UTC and moved here into the session time
    zone (``to_utc_timestamp``, java.time's rules, as the inline path's text cast); ``rows``:
    how many rows were written. A Spark DataFrame is read by the executors and materialised
    with ``localCheckpoint`` (the notebook deletes the files next; the driver never holds the
    rows). Raises :class:`StagingRefused` for a location or file name not of the notebook's
    making, ``ValueError`` when the rows read are not the rows written (nothing is bound).
    """
    if as_pandas:
        value = read_pandas(staging, files).set_axis(list(names), axis=1)
        got = len(value)
    else:
        from pyspark.sql import functions as F

        spark = ns["spark"]
        df = read_spark(spark, staging, files)
        tz = _session_tz(spark)
        cols = [F.to_utc_timestamp(F.col(c), tz).alias(c) if i in naive else F.col(c)
                for i, c in enumerate(df.columns)]
        value = df.select(*cols).localCheckpoint(eager=True)
        got = value.count()
        value = value.toDF(*[str(n) for n in names])
    if got != int(rows):
        raise ValueError("the staged push wrote %d rows but the session read %d; nothing was bound" % (rows, got))
    _bind(ns, name, value, "%d rows x %d columns" % (got, len(names)), via="staged")


def spark_type_for(series):
    """The Spark type matching a pandas column's dtype."""
    from pyspark.sql import types as T

    name = str(series.dtype)
    simple = {
        "int8": T.ByteType(), "Int8": T.ByteType(), "int16": T.ShortType(), "Int16": T.ShortType(),
        "int32": T.IntegerType(), "Int32": T.IntegerType(), "int64": T.LongType(), "Int64": T.LongType(),
        "uint8": T.ShortType(), "UInt8": T.ShortType(), "uint16": T.IntegerType(), "UInt16": T.IntegerType(),
        "uint32": T.LongType(), "UInt32": T.LongType(), "uint64": T.LongType(), "UInt64": T.LongType(),
        "float32": T.FloatType(), "Float32": T.FloatType(), "float64": T.DoubleType(), "Float64": T.DoubleType(),
        "bool": T.BooleanType(), "boolean": T.BooleanType(),
    }
    if name in simple:
        return simple[name]
    if name.startswith("datetime64"):
        return T.TimestampType()
    first = next((v for v in series.tolist() if v is not None and not (isinstance(v, float) and v != v)), None)
    if first is None or isinstance(first, str):
        return T.StringType()
    import datetime
    import decimal

    if isinstance(first, datetime.datetime):
        return T.TimestampType()
    if isinstance(first, datetime.date):
        return T.DateType()
    if isinstance(first, decimal.Decimal):
        scale = max(-v.as_tuple().exponent for v in series.tolist() if isinstance(v, decimal.Decimal))
        return T.DecimalType(38, max(0, min(scale, 38)))
    if isinstance(first, (bytes, bytearray)):
        return T.BinaryType()
    from pyspark.sql.types import _infer_type

    return _infer_type(first)


def pandas_to_spark(spark, pdf):
    """A Spark DataFrame from ``pdf`` with an explicit schema (no type guessing from values).

    Timestamps follow the rule of pulls and of Spark's ``createDataFrame(pandas)``: a naive
    value is wall-clock time in the Spark session time zone, an aware one is that instant.
    They travel as text that Spark itself reads (``CAST(... AS TIMESTAMP)``), so the Python
    process's own time zone never touches them. Raises ``ValueError`` if Spark cannot read one.
    """
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # By position: names may repeat, and every column must arrive (as toPandas keeps them).
    series = [pdf.iloc[:, i] for i in range(len(pdf.columns))]
    types = [spark_type_for(s) for s in series]
    fields = [T.StructField("c%d" % i, T.StringType() if isinstance(t, T.TimestampType) else t, True)
              for i, t in enumerate(types)]
    cols = []
    for s, t in zip(series, types):
        if isinstance(t, T.TimestampType):
            cols.append([_timestamp_text(v) for v in s.tolist()])
        elif hasattr(s.array, "_mask"):
            mask = s.array._mask
            data = s.array._data.tolist()
            cols.append([None if m else v for v, m in zip(data, mask)])
        else:
            vals = s.tolist()
            if s.dtype == object:
                vals = [None if (v is None or v is pd.NA) else v for v in vals]
            cols.append(vals)
    rows = list(zip(*cols)) if cols else [()] * len(pdf)
    df = spark.createDataFrame(rows, T.StructType(fields))
    stamps = [i for i, t in enumerate(types) if isinstance(t, T.TimestampType)]
    if stamps:
        df = df.select(*[F.col("c%d" % i).cast("timestamp").alias("c%d" % i) if i in stamps else F.col("c%d" % i)
                         for i in range(len(types))])
        _check_timestamps_read(df, stamps, cols)
    return df.toDF(*[str(c) for c in pdf.columns])


def _timestamp_text(v):
    """A pandas/Python timestamp as text Spark reads: naive as is, aware in UTC with "Z"."""
    import pandas as pd

    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    zone = ""
    if getattr(v, "tzinfo", None) is not None:
        v = pd.Timestamp(v).tz_convert("UTC")
        zone = "Z"
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d%s" % (
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, zone)


def _check_timestamps_read(df, stamps, cols):
    """Fail loudly if Spark read any timestamp text as null (one small job, nulls counted)."""
    from pyspark.sql import functions as F

    sent = [sum(v is not None for v in cols[i]) for i in stamps]
    got = df.select(*[F.count(F.col("c%d" % i)) for i in stamps]).first()
    bad = [i for i, n, m in zip(stamps, sent, got) if n != m]
    if bad:
        raise ValueError("Spark could not read the timestamps of column(s) %s; nothing was bound"
                         % ", ".join("#%d" % (i + 1) for i in bad))
