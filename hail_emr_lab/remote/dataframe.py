"""Cluster side of ``-o NAME``: encode a Spark DataFrame, Hail Table or pandas DataFrame.

Sent to the session as source text (after ``codec.py``) and exec'd once, so it runs on
Python 3.7+ with only pyspark, pandas and numpy. With pyarrow on the driver the frame
travels as an Arrow IPC stream (Spark's own Arrow collect: exact types, nulls kept) whose
buffers Arrow compresses itself (zstd, else lz4), written batch by batch (:class:`IpcPayload`);
without it, as the codec's compact columnar blob, zlib-compressed whole. Either way the
payload is base64-encoded for Livy's text channel: inline in the answer when it fits, else kept
here and handed out in order by :func:`chunk`, each part freed once sent.
"""

import base64
import json
import os
import uuid
import zlib
from collections import deque

if "_Writer" not in globals():  # imported locally (tests); on the cluster codec.py was exec'd first
    from hail_emr_lab.remote.codec import _Writer, encode_pandas

MARKER = "@@hail-emr-lab@@"
#: Environment variable of the driver process: "0" (or off/false/no) sends every frame in the
#: codec format, exactly as when pyarrow is missing (a way round an Arrow problem, and how the
#: tests drive that path). Set it in a cell (``os.environ[...] = "0"``) or for the whole
#: cluster (e.g. ``spark.yarn.appMasterEnv.HAIL_EMR_LAB_ARROW`` in Livy's session conf).
ARROW_SWITCH = "HAIL_EMR_LAB_ARROW"
#: Kept payloads (:class:`_Kept`) by token, until their last chunk is sent or :func:`drop`.
_BLOBS = {}
#: Record batches above this many bytes (uncompressed) are written as row slices, so that no
#: IPC message, and no part the notebook decodes at once, grows with the result.
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: Arrow IPC buffer codecs, in order of preference (Arrow columnar format: BodyCompression).
IPC_CODECS = ("zstd", "lz4_frame")


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
    """Spark's Arrow collect written as a compressed IPC stream: ``(IpcPayload, rows, truncated)``.

    Each collected batch is released as soon as it is written, so the driver holds the
    collected batches once plus their compressed form, never an uncompressed second copy.
    """
    batches = df._collect_as_arrow()
    if batches:
        schema = batches[0].schema
    else:
        from pyspark.sql.pandas.types import to_arrow_schema

        schema = to_arrow_schema(df.schema)
    keep = None if limit is None else int(limit)
    total = sum(b.num_rows for b in batches)
    truncated = keep is not None and total > keep
    payload = IpcPayload(schema)
    batches.reverse()  # pop() from the end: each batch leaves the list as it is written
    while batches:
        batch = batches.pop()
        if keep is not None:
            batch = batch.slice(0, max(0, keep - payload.rows))
        payload.write(batch)
        del batch  # the last reference: the batch's memory goes back now
    payload.close()
    return payload, payload.rows, truncated


class _Pieces(object):
    """A write-only file for pyarrow's IPC writer that keeps what is written as a list of bytes."""

    closed = False

    def __init__(self):
        self.parts = []
        self.size = 0

    def write(self, data):
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.closed = True


class IpcPayload(object):
    """An Arrow IPC stream written batch by batch with Arrow's buffer compression.

    ``compression`` is the first of :data:`IPC_CODECS` this pyarrow has (None: uncompressed
    buffers). Batches above :data:`MAX_BATCH_BYTES` are written as row slices. ``parts`` are
    the stream's bytes in order; ``size`` their total (bytes); ``rows`` the rows written.
    """

    packing = "ipc"

    def __init__(self, schema):
        import pyarrow as pa

        self.compression = next((c for c in IPC_CODECS if pa.Codec.is_available(c)), None)
        self._sink = _Pieces()
        options = pa.ipc.IpcWriteOptions(compression=self.compression)
        self._writer = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), schema, options=options)
        self.rows = 0
        self.raw_size = 0

    def write(self, batch):
        """Append one record batch (sliced to bounded messages)."""
        n = batch.num_rows
        if not n:
            return  # the schema travels anyway; an empty message would only cost a round trip
        step = n
        if batch.nbytes > MAX_BATCH_BYTES:
            step = max(1, int(n * MAX_BATCH_BYTES // batch.nbytes))
        for start in range(0, n, step):
            self._writer.write_batch(batch.slice(start, step))
        self.rows += n
        self.raw_size += batch.nbytes

    def write_table(self, table):
        for batch in table.to_batches():
            self.write(batch)

    def close(self):
        self._writer.close()

    @property
    def parts(self):
        return self._sink.parts

    @property
    def size(self):
        return self._sink.size


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
            payload = IpcPayload(table.schema)
            payload.write_table(table)
            payload.close()
            return "arrow-pandas", payload, len(pdf), truncated, extra
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
    """Put ``blob`` (bytes, or an :class:`IpcPayload`) into ``entry``; returns the budget left.

    The entry says how to read it: ``packing`` ("ipc": the IPC stream as it is, its buffers
    compressed by Arrow, ``ipc_compression`` naming the codec; "zlib": the bytes compressed
    whole), ``bytes`` (payload size), ``length`` (its base64 characters) and either ``data``
    (the whole base64 text, when it fits ``budget`` characters) or a ``token`` for :func:`chunk`.
    """
    if isinstance(blob, IpcPayload):
        parts, size = blob.parts, blob.size
        entry.update(packing="ipc", ipc_compression=blob.compression, raw_length=blob.raw_size)
    else:
        parts = [zlib.compress(blob, 1)]
        size = len(parts[0])
        entry.update(packing="zlib", raw_length=len(blob))
    length = (size + 2) // 3 * 4
    entry.update(length=length, bytes=size)
    if length <= budget:
        entry["data"] = base64.b64encode(b"".join(parts)).decode("ascii")
        return budget - length
    token = uuid.uuid4().hex
    _BLOBS[token] = _Kept(parts, size)
    entry["token"] = token
    return budget


class _Kept(object):
    """A payload waiting to be fetched: its parts (bytes) in order, each freed once sent."""

    def __init__(self, parts, size):
        self.parts = deque(memoryview(p) for p in parts)
        del parts[:]  # the only other reference: the parts now live here alone
        self.size = size
        self.sent = 0

    def take(self, start, size):
        """The base64 text of the next ``size`` characters (rounded down to whole groups of 4)
        from character ``start``, which must be where the last chunk ended. Raises ``ValueError``."""
        if start % 4 or start // 4 * 3 != self.sent:
            raise ValueError("chunk at character %d asked out of order (sent so far: %d characters); "
                             "pull the value again" % (start, (self.sent + 2) // 3 * 4))
        want = max(1, size // 4) * 3
        out = []
        while want > 0 and self.parts:
            part = self.parts[0]
            if len(part) <= want:
                self.parts.popleft()
            else:
                self.parts[0] = part[want:]
                part = part[:want]
            out.append(part)
            want -= len(part)
            self.sent += len(part)
        data = out[0] if len(out) == 1 else b"".join(out)
        return base64.b64encode(data).decode("ascii")

    def held(self):
        """Bytes still kept here (not sent yet)."""
        return sum(len(p) for p in self.parts)

    @property
    def done(self):
        return self.sent >= self.size


def chunk(token, start, size):
    """Print the next part of a kept payload (``size`` base64 characters at most from character
    ``start``); the last part frees it."""
    kept = _BLOBS[token]
    text = kept.take(int(start), int(size))
    if kept.done:
        del _BLOBS[token]
    print(MARKER + text)


def drop(token):
    """Forget a kept payload (the local side gave up)."""
    _BLOBS.pop(token, None)
