"""A compact, dtype-keeping columnar frame format that needs only numpy and pandas.

Used on both sides of the Livy channel: on the cluster (sent as source text and exec'd,
so Python 3.7+ and no pyarrow) and locally (imported). It is the fallback when the cluster
has no pyarrow, and the format of ``%hail push``.

Layout of one blob (then zlib-compressed and base64-encoded for the text channel)::

    b"HELC1" | uint32 header length | header JSON | buffer bytes...

The header lists the columns; each names its logical type and the byte ranges of its
buffers. Numbers travel as raw little-endian arrays with a bit-packed null mask, text as
JSON. Nothing in it is ever evaluated or unpickled: it is JSON and raw numbers.
"""

import base64
import datetime
import decimal
import json
import struct
import zlib

import numpy as np
import pandas as pd

MAGIC = b"HELC1"
EPOCH_DATE = datetime.date(1970, 1, 1)
EPOCH_DT = datetime.datetime(1970, 1, 1)
_INT_DTYPES = {"Int8": "<i1", "Int16": "<i2", "Int32": "<i4", "Int64": "<i8",
               "UInt8": "<u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8"}
_NULLABLE_INT = {v: k for k, v in _INT_DTYPES.items()}


class _Writer(object):
    """Collects buffers and column descriptors."""

    def __init__(self):
        self.parts = []
        self.offset = 0
        self.columns = []

    def buf(self, data):
        data = bytes(data)
        ref = [self.offset, len(data)]
        self.parts.append(data)
        self.offset += len(data)
        return ref

    def mask(self, isnull):
        """Bit-packed null mask, or None when nothing is null."""
        isnull = np.asarray(isnull, dtype=bool)
        if not isnull.any():
            return None
        return self.buf(np.packbits(isnull).tobytes())

    def json_buf(self, values):
        return self.buf(json.dumps(values, separators=(",", ":"), allow_nan=True).encode("utf-8"))

    def finish(self, rows, extra=None):
        header = {"rows": int(rows), "columns": self.columns}
        if extra:
            header.update(extra)
        head = json.dumps(header, separators=(",", ":")).encode("utf-8")
        return MAGIC + struct.pack("<I", len(head)) + head + b"".join(self.parts)


def _json_scalar(v):
    """A pandas/numpy object value as JSON-able data (tagged only by the column type)."""
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.ndarray):
        return [_json_scalar(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_json_scalar(x) for x in v]
    if isinstance(v, dict):
        return dict((str(k), _json_scalar(x)) for k, x in v.items())
    return v


def _object_kind(values):
    """What an object column holds: str, bytes, date, decimal, json, or text (anything else)."""
    kinds = set()
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            continue
        if isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, (bytes, bytearray)):
            kinds.add("bytes")
        elif isinstance(v, datetime.datetime):
            kinds.add("text")
        elif isinstance(v, datetime.date):
            kinds.add("date")
        elif isinstance(v, decimal.Decimal):
            kinds.add("decimal")
        elif isinstance(v, (bool, int, float, list, tuple, dict, np.ndarray, np.generic)):
            kinds.add("json")
        else:
            kinds.add("text")
        if len(kinds) > 1:
            return "text"
    return kinds.pop() if kinds else "str"


def _is_null(v):
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def index_as_columns(df):
    """``df`` with its index as leading columns, unless it is the default 0..n-1 (then ``df``)."""
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
        # The index becomes columns, even when a column has its name (set_index("k", drop=False)).
        try:
            return df.reset_index(allow_duplicates=True)
        except TypeError:  # pandas < 1.5 (a cluster's): the same by hand
            return pd.concat([df.index.to_frame(index=False), df.reset_index(drop=True)], axis=1)
    return df


def encode_pandas(df):
    """Encode a pandas DataFrame (index dropped unless it carries information)."""
    w = _Writer()
    df = index_as_columns(df)
    # By position: names may repeat (after a join, say) and each column must travel.
    for i, name in enumerate(df.columns):
        w.columns.append(_encode_series(w, str(name), df.iloc[:, i]))
    return w.finish(len(df))


def _encode_series(w, name, s):
    dtype = s.dtype
    col = {"name": name}
    kind = getattr(dtype, "kind", "O")
    dname = str(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return _encode_series(w, name, s.astype(object))
    if dname in _INT_DTYPES:
        arr = s.array
        col.update(t="int", dtype=_INT_DTYPES[dname], nullable=True,
                   data=w.buf(np.asarray(arr._data).astype(_INT_DTYPES[dname]).tobytes()),
                   mask=w.mask(arr._mask))
    elif dname in ("Float32", "Float64"):
        arr = s.array
        col.update(t="float", dtype="<f4" if dname == "Float32" else "<f8", nullable=True,
                   data=w.buf(np.asarray(arr._data).astype("<f8" if dname == "Float64" else "<f4").tobytes()),
                   mask=w.mask(arr._mask))
    elif dname == "boolean":
        arr = s.array
        col.update(t="bool", nullable=True, data=w.buf(np.asarray(arr._data).astype("u1").tobytes()),
                   mask=w.mask(arr._mask))
    elif kind in "iu":
        col.update(t="int", dtype=dtype.newbyteorder("<").str, data=w.buf(s.to_numpy().astype(dtype.newbyteorder("<"))))
    elif kind == "f":
        col.update(t="float", dtype=dtype.newbyteorder("<").str, data=w.buf(s.to_numpy().astype(dtype.newbyteorder("<"))))
    elif kind == "b":
        col.update(t="bool", data=w.buf(s.to_numpy().astype("u1").tobytes()))
    elif kind == "M":
        tz = getattr(dtype, "tz", None)
        values = s.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else s
        ns = values.to_numpy().astype("datetime64[ns]").view("<i8")
        col.update(t="ts", unit="ns", tz=str(tz) if tz is not None else None,
                   data=w.buf(ns.astype("<i8").tobytes()), mask=w.mask(s.isna().to_numpy()))
    elif kind == "m":
        ns = s.to_numpy().astype("timedelta64[ns]").view("<i8")
        col.update(t="td", data=w.buf(ns.astype("<i8").tobytes()), mask=w.mask(s.isna().to_numpy()))
    else:
        values = s.tolist()
        ok = _object_kind(values)
        if ok == "str":
            col.update(t="str", data=w.json_buf([None if _is_null(v) else v for v in values]))
        elif ok == "bytes":
            col.update(t="bytes", data=w.json_buf(
                [None if _is_null(v) else base64.b64encode(bytes(v)).decode("ascii") for v in values]))
        elif ok == "date":
            days = np.array([0 if _is_null(v) else (v - EPOCH_DATE).days for v in values], dtype="<i4")
            col.update(t="date", data=w.buf(days.tobytes()), mask=w.mask([_is_null(v) for v in values]))
        elif ok == "decimal":
            col.update(t="decimal", data=w.json_buf([None if _is_null(v) else str(v) for v in values]))
        elif ok == "json":
            col.update(t="json", data=w.json_buf([None if _is_null(v) else _json_scalar(v) for v in values]))
        else:
            col.update(t="str", data=w.json_buf([None if _is_null(v) else str(v) for v in values]))
    return col


def decode_pandas(blob):
    """Decode a blob made by :func:`encode_pandas` (or the Spark encoder) into pandas."""
    if blob[:5] != MAGIC:
        raise ValueError("not a hail-emr-lab frame (bad magic)")
    (hlen,) = struct.unpack("<I", blob[5:9])
    header = json.loads(blob[9:9 + hlen].decode("utf-8"))
    body = memoryview(blob)[9 + hlen:]
    rows = int(header["rows"])
    tz = header.get("session_tz")
    names = [c["name"] for c in header["columns"]]
    return frame_from_columns(names, [_decode_column(c, body, rows, tz) for c in header["columns"]], rows)


def frame_from_columns(names, arrays, rows):
    """A DataFrame of ``arrays`` (one per column, in order) named ``names``, which may repeat.

    Built by position, as ``toPandas`` does: keying by name would keep only the last of
    two columns called the same. The arrays (fresh and writable) are taken as they are, not
    copied into consolidated blocks: that copy would double the peak memory of a pull.
    """
    if not names:
        return pd.DataFrame(index=pd.RangeIndex(rows))
    frame = pd.DataFrame(dict(enumerate(arrays)), columns=list(range(len(arrays))), copy=False)
    frame.columns = list(names)
    return frame


def _raw(body, ref):
    return bytes(body[ref[0]:ref[0] + ref[1]])


def _mask(body, ref, rows):
    if ref is None:
        return None
    return np.unpackbits(np.frombuffer(_raw(body, ref), dtype="u1"), count=rows).astype(bool)


def _json(body, ref):
    return json.loads(_raw(body, ref).decode("utf-8"))


def _decode_column(col, body, rows, tz):
    t = col["t"]
    mask = _mask(body, col.get("mask"), rows)
    if t in ("int", "float", "bool"):
        return _decode_number(t, col, body, rows, mask)
    if t in ("date", "ts", "td"):
        return _decode_time(t, col, body, rows, mask)
    if t in _TEXT_KINDS:
        return pd.Series(_TEXT_KINDS[t](_json(body, col["data"]), col, tz), dtype=object)
    raise ValueError("unknown column type %r in a hail-emr-lab frame" % (t,))


def _decode_number(t, col, body, rows, mask):
    """An int, float or bool column; nullable ones as pandas' masked arrays."""
    nullable = mask is not None or col.get("nullable")
    if mask is None:
        mask = np.zeros(rows, bool)
    if t == "bool":
        values = np.frombuffer(_raw(body, col["data"]), dtype="u1", count=rows).astype(bool)
        return pd.arrays.BooleanArray(values, mask) if nullable else values
    native = np.dtype(col["dtype"]).newbyteorder("=")
    values = np.frombuffer(_raw(body, col["data"]), dtype=col["dtype"], count=rows).astype(native)
    if not nullable:
        return values
    if t == "int":
        return pd.arrays.IntegerArray(values, mask).astype(_NULLABLE_INT[np.dtype(col["dtype"]).newbyteorder("<").str])
    return pd.arrays.FloatingArray(values, mask)  # keeps NaN (a value) apart from NA (a null)


def _decode_time(t, col, body, rows, mask):
    """A date (Python dates), timestamp (datetime64[ns], see below) or timedelta column."""
    if t == "date":
        days = np.frombuffer(_raw(body, col["data"]), dtype="<i4", count=rows)
        out = [EPOCH_DATE + datetime.timedelta(days=int(d)) for d in days]
        if mask is not None:
            out = [None if m else v for v, m in zip(out, mask)]
        return pd.Series(out, dtype=object)
    raw = np.frombuffer(_raw(body, col["data"]), dtype="<i8", count=rows).astype("i8")
    if t == "td":
        values = raw.astype("timedelta64[ns]")
        if mask is not None:
            values[mask] = np.timedelta64("NaT")
        return values
    unit = col.get("unit", "ns")
    if unit == "us":
        check_ns_range(col["name"], raw if mask is None else raw[~mask])
    values = raw.astype("datetime64[%s]" % unit).astype("datetime64[ns]")
    if mask is not None:
        values[mask] = np.datetime64("NaT")
    s = pd.Series(values)
    if col.get("naive_in"):
        # A Spark TimestampType: shown as wall-clock time in the session's time zone (like toPandas).
        return s.dt.tz_localize("UTC").dt.tz_convert(session_zone(col["naive_in"])).dt.tz_localize(None)
    if col.get("tz"):
        s = s.dt.tz_localize("UTC").dt.tz_convert(col["tz"])
    return s


#: Columns that travel as JSON lists -> their values (the list, the column descriptor, the session zone).
_TEXT_KINDS = {
    "str": lambda values, col, tz: values,
    "json": lambda values, col, tz: values,
    "bytes": lambda values, col, tz: [None if v is None else base64.b64decode(v) for v in values],
    "decimal": lambda values, col, tz: [None if v is None else decimal.Decimal(v) for v in values],
    "spark": lambda values, col, tz: spark_values_from_json(col["type"], values, tz),
}


def spark_values_from_json(spark_type, values, tz=None):
    """Rebuild nested Spark values (lists, dicts) from their JSON form, guided by the type."""
    conv = _converter(spark_type, tz)
    return [None if v is None else conv(v) for v in values]


def _converter(spark_type, tz):
    if isinstance(spark_type, dict):
        kind = spark_type.get("type")
        if kind == "array":
            inner = _converter(spark_type["elementType"], tz)
            return lambda v: [None if x is None else inner(x) for x in v]
        if kind == "map":
            kconv = _converter(spark_type["keyType"], tz)
            vconv = _converter(spark_type["valueType"], tz)
            return lambda v: dict((kconv(k), None if x is None else vconv(x)) for k, x in v)
        if kind == "struct":
            fields = [(f["name"], _converter(f["type"], tz)) for f in spark_type["fields"]]
            return lambda v: dict((n, None if x is None else c(x)) for (n, c), x in zip(fields, v))
        return lambda v: v
    name = str(spark_type)
    if name == "date":
        return lambda v: EPOCH_DATE + datetime.timedelta(days=v)
    if name == "timestamp":
        # An instant (epoch microseconds) shown as wall-clock time in the Spark session time
        # zone, the rule for top-level TimestampType columns too (Spark's toPandas does the same).
        return lambda v: _wall_clock(v, tz)
    if name.startswith("timestamp"):  # timestamp_ntz: already wall-clock time, no zone
        return lambda v: EPOCH_DT + datetime.timedelta(microseconds=v)
    if name.startswith("decimal"):
        return decimal.Decimal
    if name == "binary":
        return base64.b64decode
    if name in ("double", "float"):
        return float
    return lambda v: v


#: Epoch microseconds pandas' datetime64[ns] can hold (about 1677-09-21 to 2262-04-11).
NS_RANGE_US = (-(2**63) // 1000 + 1, (2**63 - 1) // 1000)


def check_ns_range(name, micros):
    """Raise ``ValueError`` naming column ``name`` if any epoch-microsecond value in ``micros``
    lies outside datetime64[ns] (numpy would wrap it around silently: 1500 would become 2084)."""
    micros = np.asarray(micros, dtype="i8")
    bad = micros[(micros < NS_RANGE_US[0]) | (micros > NS_RANGE_US[1])]
    if len(bad):
        first = EPOCH_DT + datetime.timedelta(microseconds=int(bad[0]))
        raise ValueError(
            "column %r holds timestamps outside the years pandas can hold (1677-2262), e.g. %s (UTC): "
            "filter them out or cast the column to string on the cluster first" % (name, first.isoformat(" "))
        )


def _wall_clock(micros, tz):
    """Epoch microseconds as a naive ``datetime``: wall-clock time in Spark time zone ``tz``."""
    return wall_clock(datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
                      + datetime.timedelta(microseconds=int(micros)), tz)


def wall_clock(instant, tz):
    """An aware ``datetime`` as naive wall-clock time in ``tz`` (a Spark session time zone id).

    The one rule for timestamps nested in arrays, structs and maps, on both transports.
    ``tz`` is a region ("America/New_York") or an offset ("+05:30", "UTC-3"); None is UTC.
    """
    return instant.astimezone(session_zone(tz)).replace(tzinfo=None)


def session_zone(tz):
    """The ``tzinfo`` of a Spark session time zone id (see :func:`wall_clock`).

    Java's ZoneId rules (Spark's): a region id, or an offset with or without a UTC/GMT prefix.
    """
    import re

    if not tz or tz in ("UTC", "Z", "GMT"):
        return datetime.timezone.utc
    m = re.match(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", tz)
    if m:
        delta = datetime.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return datetime.timezone(-delta if m.group(1) == "-" else delta)
    from zoneinfo import ZoneInfo  # only where nested timestamps are decoded: the notebook (3.9+)

    return ZoneInfo(tz)


def pack(blob, level=1):
    """Compress and base64 a blob for the text channel."""
    return base64.b64encode(zlib.compress(blob, level)).decode("ascii")


def unpack(text):
    """Reverse of :func:`pack`."""
    return zlib.decompress(base64.b64decode(text))
