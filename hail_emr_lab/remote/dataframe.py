"""Cluster side of ``-o NAME``: encode a Spark DataFrame, Hail Table or pandas DataFrame.

Sent to the session as source text (after ``codec.py``) and exec'd once, so it runs on
Python 3.7+ with only pyspark, pandas and numpy. With pyarrow on the driver the frame
travels as an Arrow IPC stream (Spark's own Arrow collect: exact types, nulls kept);
without it, as the codec's compact columnar blob. Either way it is zlib-compressed and
base64-encoded, and printed on one line after a marker; blobs bigger than one Livy output
may carry are kept here and fetched in chunks by :func:`chunk`.
"""

import json
import os
import uuid

if "_Writer" not in globals():  # imported locally (tests); on the cluster codec.py was exec'd first
    from hail_emr_lab.remote.codec import _Writer, encode_pandas, pack

MARKER = "@@hail-emr-lab@@"
#: Environment variable of the driver process: "0" (or off/false/no) sends every frame in the
#: codec format, exactly as when pyarrow is missing (a way round an Arrow problem, and how the
#: tests drive that path). Set it in a cell (``os.environ[...] = "0"``) or for the whole
#: cluster (e.g. ``spark.yarn.appMasterEnv.HAIL_EMR_LAB_ARROW`` in Livy's session conf).
ARROW_SWITCH = "HAIL_EMR_LAB_ARROW"
_BLOBS = {}


def have_arrow():
    """True when pyarrow can be imported on the driver."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def arrow_enabled():
    """True when frames travel as Arrow: pyarrow is importable and not switched off."""
    if os.environ.get(ARROW_SWITCH, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    return have_arrow()


def check_struct_names(schema):
    """Refuse structs (at any depth) whose fields repeat a name: they arrive as dicts.

    Top-level columns may repeat (they are kept by position); a dict cannot hold two
    fields of one name, so one would be lost. Raises ``ValueError`` naming the column.
    """
    from pyspark.sql import types as T

    def walk(dt, where):
        if isinstance(dt, T.StructType):
            names = [f.name for f in dt.fields]
            dups = sorted(set(n for n in names if names.count(n) > 1))
            if dups:
                raise ValueError(
                    "column %r holds a struct with repeated field names %s: it would arrive as a dict, "
                    "which keeps only one of them. Give the fields distinct names first, e.g. "
                    "F.struct(a.v.alias('v_a'), b.v.alias('v_b'))" % (where, ", ".join(repr(d) for d in dups))
                )
            for f in dt.fields:
                walk(f.dataType, where)
        elif isinstance(dt, T.ArrayType):
            walk(dt.elementType, where)
        elif isinstance(dt, T.MapType):
            walk(dt.keyType, where)
            walk(dt.valueType, where)

    for f in schema.fields:
        walk(f.dataType, f.name)


def _spark_session(df):
    return df.sparkSession if hasattr(df, "sparkSession") else df.sql_ctx.sparkSession


def _session_tz(spark):
    try:
        return spark.conf.get("spark.sql.session.timeZone")
    except Exception:  # very old Spark: fall back to UTC, the JVM default on EMR
        return "UTC"


def encode_spark(df, limit=None, use_arrow=None):
    """Collect ``df`` (at most ``limit`` rows): ``(format, blob, rows, truncated, extra)``."""
    truncated = False
    if limit is not None:
        df = df.limit(int(limit) + 1)
    spark = _spark_session(df)
    tz = _session_tz(spark)
    check_struct_names(df.schema)
    if use_arrow is None:
        use_arrow = arrow_enabled() and hasattr(df, "_collect_as_arrow")
    fallback_reason = None
    if use_arrow:
        try:
            blob, rows, truncated = _spark_arrow(df, limit)
            return "arrow", blob, rows, truncated, {"session_tz": tz}
        except Exception as exc:  # a type Spark's Arrow path does not support: use the codec
            fallback_reason = "%s: %s" % (type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
    blob, rows, truncated = _spark_codec(df, limit, tz)
    extra = {"session_tz": tz}
    if fallback_reason:
        extra["arrow_fallback"] = fallback_reason
    return "helc", blob, rows, truncated, extra


def _spark_arrow(df, limit):
    import pyarrow as pa

    batches = df._collect_as_arrow()
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        from pyspark.sql.pandas.types import to_arrow_schema

        table = to_arrow_schema(df.schema).empty_table()
    truncated = limit is not None and table.num_rows > int(limit)
    if truncated:
        table = table.slice(0, int(limit))
    sink = pa.BufferOutputStream()
    writer = pa.ipc.new_stream(sink, table.schema)
    writer.write_table(table)
    writer.close()
    return sink.getvalue().to_pybytes(), table.num_rows, truncated


def _spark_codec(df, limit, tz):
    """Without pyarrow: collect rows (timestamps as epoch micros) into the codec's columns."""
    import numpy as np
    from pyspark.sql import functions as F

    fields = df.schema.fields
    if fields:
        # Columns by position (names may repeat after a join), every timestamp as an instant.
        df = df.toDF(*["c%d" % i for i in range(len(fields))])
        cols = [_exact_instants(F.col("c%d" % i), f.dataType).alias("c%d" % i) for i, f in enumerate(fields)]
        rows = df.select(*cols).collect()
    else:
        rows = df.collect()
    truncated = limit is not None and len(rows) > int(limit)
    if truncated:
        rows = rows[: int(limit)]
    n = len(rows)
    w = _Writer()
    num = {
        "ByteType": "<i1", "ShortType": "<i2", "IntegerType": "<i4", "LongType": "<i8",
        "FloatType": "<f4", "DoubleType": "<f8", "BooleanType": "|u1",
    }
    for i, f in enumerate(fields):
        values = [r[i] for r in rows]
        tname = type(f.dataType).__name__
        col = {"name": f.name}
        isnull = np.array([v is None for v in values], dtype=bool)
        if tname in num:
            dt = num[tname]
            zero = False if tname == "BooleanType" else 0
            arr = np.array([zero if v is None else v for v in values], dtype=dt)
            kind = "bool" if tname == "BooleanType" else ("float" if dt[1] == "f" else "int")
            col.update(t=kind, data=w.buf(arr.tobytes()), mask=w.mask(isnull))
            if kind != "bool":
                col["dtype"] = dt
        elif tname == "StringType":
            col.update(t="str", data=w.json_buf(values))
        elif tname == "DateType":
            import datetime

            epoch = datetime.date(1970, 1, 1)
            arr = np.array([0 if v is None else (v - epoch).days for v in values], dtype="<i4")
            col.update(t="date", data=w.buf(arr.tobytes()), mask=w.mask(isnull))
        elif tname == "TimestampType":
            arr = np.array([0 if v is None else v for v in values], dtype="<i8")
            col.update(t="ts", unit="us", tz="UTC", naive_in=tz, data=w.buf(arr.tobytes()), mask=w.mask(isnull))
        elif tname == "TimestampNTZType":
            import datetime

            epoch = datetime.datetime(1970, 1, 1)
            arr = np.array([0 if v is None else (v - epoch) // datetime.timedelta(microseconds=1) for v in values],
                           dtype="<i8")
            col.update(t="ts", unit="us", data=w.buf(arr.tobytes()), mask=w.mask(isnull))
        elif tname == "DecimalType":
            col.update(t="decimal", data=w.json_buf([None if v is None else str(v) for v in values]))
        elif tname == "BinaryType":
            import base64

            col.update(t="bytes", data=w.json_buf(
                [None if v is None else base64.b64encode(bytes(v)).decode("ascii") for v in values]))
        elif tname in ("ArrayType", "MapType", "StructType"):
            conv = _nested_to_json(f.dataType)
            col.update(t="spark", type=f.dataType.jsonValue(),
                       data=w.json_buf([None if v is None else conv(v) for v in values]))
        elif tname == "NullType":
            col.update(t="str", data=w.json_buf([None] * n))
        else:  # intervals and anything newer: their text form, clearly a string
            col.update(t="str", data=w.json_buf([None if v is None else str(v) for v in values]))
        w.columns.append(col)
    return w.finish(n, {"session_tz": tz}), n, truncated


def _has_instant(dt):
    from pyspark.sql import types as T

    if isinstance(dt, T.TimestampType):
        return True
    if isinstance(dt, T.ArrayType):
        return _has_instant(dt.elementType)
    if isinstance(dt, T.MapType):
        return _has_instant(dt.keyType) or _has_instant(dt.valueType)
    if isinstance(dt, T.StructType):
        return any(_has_instant(f.dataType) for f in dt.fields)
    return False


def _exact_instants(c, dt):
    """Column ``c`` of type ``dt`` with every TimestampType value, at any depth, as epoch micros.

    Spark computes the instant (``unix_micros``), so the Python process's own time zone never
    touches it; the notebook shows it in the session time zone, one rule at every depth.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not _has_instant(dt):
        return c
    if isinstance(dt, T.TimestampType):
        return F.unix_micros(c)
    if isinstance(dt, T.ArrayType):
        return F.transform(c, lambda x: _exact_instants(x, dt.elementType))
    if isinstance(dt, T.MapType):
        if _has_instant(dt.keyType):
            c = F.transform_keys(c, lambda k, _v: _exact_instants(k, dt.keyType))
        if _has_instant(dt.valueType):
            c = F.transform_values(c, lambda _k, v: _exact_instants(v, dt.valueType))
        return c
    # A struct: cast to positional field names (a struct cast goes by position), convert each.
    plain = c.cast(T.StructType([T.StructField("f%d" % i, f.dataType, f.nullable) for i, f in enumerate(dt.fields)]))
    rebuilt = F.struct(*[_exact_instants(plain.getField("f%d" % i), f.dataType).alias(f.name)
                         for i, f in enumerate(dt.fields)])
    return F.when(c.isNull(), F.lit(None)).otherwise(rebuilt)


def _nested_to_json(dt):
    """A function turning a collected nested value into JSON the local decoder understands."""
    import base64
    import datetime

    from pyspark.sql import types as T

    if isinstance(dt, T.ArrayType):
        inner = _nested_to_json(dt.elementType)
        return lambda v: [None if x is None else inner(x) for x in v]
    if isinstance(dt, T.MapType):
        kc, vc = _nested_to_json(dt.keyType), _nested_to_json(dt.valueType)
        return lambda v: [[kc(k), None if x is None else vc(x)] for k, x in v.items()]
    if isinstance(dt, T.StructType):
        convs = [_nested_to_json(f.dataType) for f in dt.fields]
        return lambda v: [None if x is None else c(x) for c, x in zip(convs, v)]
    if isinstance(dt, T.DateType):
        epoch = datetime.date(1970, 1, 1)
        return lambda v: (v - epoch).days
    if isinstance(dt, T.TimestampType):
        return int  # already epoch micros (_exact_instants)
    if type(dt).__name__ == "TimestampNTZType":
        epoch = datetime.datetime(1970, 1, 1)
        return lambda v: (v.replace(tzinfo=None) - epoch) // datetime.timedelta(microseconds=1)
    if isinstance(dt, T.DecimalType):
        return str
    if isinstance(dt, T.BinaryType):
        return lambda v: base64.b64encode(bytes(v)).decode("ascii")
    return lambda v: v


def encode_pandas_frame(pdf, limit=None, use_arrow=None):
    """A pandas DataFrame on the driver: Arrow IPC (pandas metadata kept) or the codec."""
    truncated = limit is not None and len(pdf) > int(limit)
    if truncated:
        pdf = pdf.iloc[: int(limit)]
    if use_arrow is None:
        use_arrow = arrow_enabled()
    if use_arrow:
        try:
            import pyarrow as pa

            extra = {}
            names = list(pdf.columns)
            sent = pdf
            if len(set(names)) != len(names):
                # Arrow refuses repeated names: send placeholders and the real names beside them.
                extra["columns"] = [str(n) for n in names]
                sent = pdf.set_axis(["_hel_col_%d" % i for i in range(len(names))], axis=1)
            table = pa.Table.from_pandas(sent)
            sink = pa.BufferOutputStream()
            writer = pa.ipc.new_stream(sink, table.schema)
            writer.write_table(table)
            writer.close()
            return "arrow-pandas", sink.getvalue().to_pybytes(), len(pdf), truncated, extra
        except Exception as exc:  # mixed object columns Arrow cannot type: the codec copes
            reason = "%s: %s" % (type(exc).__name__, str(exc)[:200])
            return "helc", encode_pandas(pdf), len(pdf), truncated, {"arrow_fallback": reason}
    return "helc", encode_pandas(pdf), len(pdf), truncated, {}


def hail_to_spark(ht):
    """``ht.to_spark()`` (flattened: struct field ``a.b`` becomes column "a.b") keeping every column.

    Hail's own flatten keys the new columns by name, so a field called "a.b" and the field
    b of a struct a would become one column; then we flatten here, by position, the same way
    (key order first, names joined with "."), and let the names repeat as Spark allows.
    """
    import hail as hl

    table = ht.expand_types()
    names = []

    def walk(name, dtype, out):
        if isinstance(dtype, hl.tstruct):
            for f, t in dtype.items():
                walk(name + "." + f, t, out)
        else:
            out.append(name)

    for f, t in table.row.dtype.items():
        walk(f, t, names)
    if len(set(names)) == len(names):
        return ht.to_spark()
    table = table.order_by(*table.key)
    leaves = []

    def leaves_of(e):
        if isinstance(e, hl.expr.StructExpression):
            for f in e:
                leaves_of(e[f])
        else:
            leaves.append(e)

    for f in table.row:
        leaves_of(table.row[f])
    flat = table.select(**dict(("_hel_col_%d" % i, e) for i, e in enumerate(leaves)))
    return flat.to_spark(flatten=False).toDF(*names)


def frame_of(obj, limit=None):
    """``(kind, frame)``: "spark", "hail" (its Spark DataFrame, made once), "pandas", or None (JSON)."""
    mod = type(obj).__module__ or ""
    cls = type(obj).__name__
    if cls == "DataFrame" and mod.startswith("pyspark"):
        return "spark", obj
    if cls == "Table" and mod.startswith("hail"):
        return "hail", hail_to_spark(obj.head(int(limit) + 1) if limit is not None else obj)
    if cls == "DataFrame" and mod.startswith("pandas"):
        return "pandas", obj
    return None, obj


def encode_frame(kind, frame, limit=None, use_arrow=None):
    """Encode what :func:`frame_of` gave: ``(format, blob, rows, truncated, extra)``."""
    if kind in ("spark", "hail"):
        return encode_spark(frame, limit, use_arrow)
    if kind == "pandas":
        return encode_pandas_frame(frame, limit, use_arrow)
    try:
        text = json.dumps(frame, allow_nan=True)
    except (TypeError, ValueError):
        raise TypeError(
            "cannot pull a %s.%s: -o takes a Spark DataFrame, a Hail Table, a pandas DataFrame or "
            "JSON-able data (convert it first, e.g. ht.to_spark() or df.toPandas())"
            % (type(frame).__module__, type(frame).__name__)
        ) from None
    return "json", text.encode("utf-8"), None, False, {}


def encode_object(obj, limit=None, use_arrow=None):
    """Encode any supported value: ``(format, blob, rows, truncated, extra, kind)``."""
    kind, frame = frame_of(obj, limit)
    return encode_frame(kind, frame, limit, use_arrow) + (kind or "json",)


def keep_inline(entry, blob, budget):
    """Put ``blob`` into ``entry`` (``data`` if it fits ``budget`` characters, else kept under a
    ``token`` for :func:`chunk`); returns the budget left."""
    text = pack(blob)
    entry.update(length=len(text), raw_length=len(blob))
    if len(text) <= budget:
        entry["data"] = text
        return budget - len(text)
    token = uuid.uuid4().hex
    _BLOBS[token] = text
    entry["token"] = token
    return budget


def chunk(token, start, size):
    """Print part of a kept blob; the last part frees it."""
    text = _BLOBS[token]
    start, size = int(start), int(size)
    if start + size >= len(text):
        del _BLOBS[token]
    print(MARKER + text[start:start + size])


def drop(token):
    """Forget a kept blob (the local side gave up)."""
    _BLOBS.pop(token, None)
