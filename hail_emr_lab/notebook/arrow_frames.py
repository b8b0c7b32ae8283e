"""Arrow tables as pandas frames with exact dtypes: the one set of rules for every transport.

Spark columns become exact pandas dtypes: integers with nulls -> nullable ``Int64`` (etc.),
floats with nulls -> ``Float64`` keeping NaN apart from null, booleans with nulls ->
``boolean``, timestamps -> ``datetime64[ns]`` wall-clock in the Spark session time zone (as
``toPandas``), strings and binary -> Python objects, dates/decimals/arrays/structs/maps ->
Python objects. Every numpy array handed to pandas is writable and owned by it.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..remote.codec import check_ns_range, frame_from_columns, session_zone, wall_clock


def arrow_to_pandas(table, session_tz: str = "UTC") -> pd.DataFrame:
    """A Spark Arrow table as pandas with exact dtypes (see the module docstring)."""
    arrays = [arrow_column(name, col, session_tz) for name, col in zip(table.column_names, table.columns)]
    return frame_from_columns(list(table.column_names), arrays, table.num_rows)


def arrow_batches_to_pandas(schema, batches: Iterable[Any], rows: int, session_tz: str = "UTC") -> pd.DataFrame:
    """:func:`arrow_to_pandas` of record ``batches`` (of ``schema``) as they arrive, ``rows`` in all.

    Numbers, booleans and strings are copied straight into the frame's preallocated columns and
    each batch is released once copied, so a pull never holds the whole table beside the frame;
    other types (dates, timestamps, decimals, nested) are kept as Arrow until the end and
    converted by :func:`arrow_column`, the same rules either way. Raises ``ValueError`` when the
    batches hold more or fewer than ``rows`` rows.
    """
    sinks = [_sink(field.type, rows) for field in schema]
    at = 0
    for batch in batches:
        n = batch.num_rows
        if at + n > rows:
            raise ValueError(f"the cluster announced {rows} rows but sent more")
        for sink, arr in zip(sinks, batch.columns):
            sink.put(at, arr)
        at += n
        arr = batch = None  # release the batch before the next one is read
    if at != rows:
        raise ValueError(f"the cluster announced {rows} rows but sent {at}")
    arrays = [sink.finish(name, session_tz) for sink, name in zip(sinks, schema.names)]
    sinks.clear()
    return frame_from_columns(list(schema.names), arrays, rows)


class _NumberSink:
    """An int, float or bool column filled batch by batch; a null mask only once a null arrives."""

    def __init__(self, kind: str, dtype, rows: int):
        self.kind = kind
        self.values = np.empty(rows, dtype=dtype)
        self.mask: Optional[np.ndarray] = None

    def put(self, at: int, arr) -> None:
        n = len(arr)
        if arr.null_count:
            if self.mask is None:
                self.mask = np.zeros(len(self.values), dtype=bool)
            self.mask[at : at + n] = arr.is_null().to_numpy(zero_copy_only=False)
            arr = arr.fill_null(False if self.kind == "bool" else 0)  # NaN stays NaN
        self.values[at : at + n] = arr.to_numpy(zero_copy_only=False)

    def finish(self, name: str, session_tz: str):
        if self.mask is None:
            return self.values
        if self.kind == "int":
            return pd.arrays.IntegerArray(self.values, self.mask)
        if self.kind == "float":
            return pd.arrays.FloatingArray(self.values, self.mask)  # keeps NaN (a value) apart from NA
        return pd.arrays.BooleanArray(self.values, self.mask)


class _ObjectSink:
    """A string or binary column: Python str/bytes objects, None for null."""

    def __init__(self, rows: int):
        self.values = np.empty(rows, dtype=object)

    def put(self, at: int, arr) -> None:
        self.values[at : at + len(arr)] = arr.to_numpy(zero_copy_only=False)

    def finish(self, name: str, session_tz: str):
        return pd.Series(self.values, dtype=object, copy=False)


class _ArrowSink:
    """Any other column: its Arrow chunks, converted at the end by :func:`arrow_column`."""

    def __init__(self, arrow_type):
        self.type = arrow_type
        self.chunks: list = []

    def put(self, at: int, arr) -> None:
        self.chunks.append(arr)

    def finish(self, name: str, session_tz: str):
        import pyarrow as pa

        col = pa.chunked_array(self.chunks, type=self.type)
        self.chunks = []
        return arrow_column(name, col, session_tz)


def _sink(t, rows: int):
    import pyarrow.types as pt

    if pt.is_string(t) or pt.is_large_string(t) or pt.is_binary(t) or pt.is_large_binary(t):
        return _ObjectSink(rows)
    if pt.is_integer(t):
        return _NumberSink("int", t.to_pandas_dtype(), rows)
    if pt.is_float32(t) or pt.is_float64(t):
        return _NumberSink("float", t.to_pandas_dtype(), rows)
    if pt.is_boolean(t):
        return _NumberSink("bool", bool, rows)
    return _ArrowSink(t)


def arrow_column(name: str, col, session_tz: str):
    """One Spark Arrow column (Array or ChunkedArray) as a numpy/pandas array with the exact dtype."""
    import pyarrow as pa
    import pyarrow.types as pt

    t = col.type
    if pt.is_string(t) or pt.is_large_string(t) or pt.is_binary(t) or pt.is_large_binary(t):
        # Straight from the chunks: str/bytes objects, None for null, no combined copy of the buffers.
        return pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    utc = _utc_type(col.type)
    if utc != col.type:
        col = col.view(utc)  # same instants, same layout: only the zone label changes
    t = col.type
    nulls = col.null_count > 0
    if pt.is_integer(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False, writable=True)
        values = col.fill_null(0).to_numpy(zero_copy_only=False)
        mask = col.is_null().to_numpy(zero_copy_only=False)
        dtype = str(values.dtype).replace("int", "Int").replace("uInt", "UInt")
        return pd.arrays.IntegerArray(values, mask).astype(dtype)
    if pt.is_floating(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False, writable=True)
        values = col.fill_null(0).to_numpy(zero_copy_only=False)  # NaN stays NaN
        mask = col.is_null().to_numpy(zero_copy_only=False)
        return pd.arrays.FloatingArray(values.astype("float64" if values.dtype == np.float64 else values.dtype), mask)
    if pt.is_boolean(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False).astype(bool)
        values = col.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return pd.arrays.BooleanArray(values, col.is_null().to_numpy(zero_copy_only=False))
    if pt.is_timestamp(t):
        if t.unit == "us":  # Spark's unit; datetime64[ns] would not hold every value
            check_ns_range(name, col.view(pa.int64()).drop_null().to_numpy())
        series = pd.Series(col.to_pandas())
        if t.tz is not None:
            return series.dt.tz_convert(session_zone(session_tz)).dt.tz_localize(None).astype("datetime64[ns]")
        return series.astype("datetime64[ns]")
    if pt.is_date(t) or pt.is_decimal(t):
        # pyarrow's own conversion: the same date / Decimal objects and None as to_pylist, ~80x faster.
        return col.to_pandas(date_as_object=True).astype(object, copy=False)
    values = col.to_pylist()
    if _needs_fix(t):
        values = [_fix_nested(v, t, session_tz) for v in values]
    return pd.Series(values, dtype=object)


def _utc_type(t):
    """``t`` with every zoned timestamp labelled UTC.

    Spark labels them with the session time zone id, which pyarrow cannot always read
    ("GMT+8"); the instants are UTC either way, and we apply the zone ourselves.
    """
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, tz="UTC")
    if pt.is_map(t):
        return pa.map_(t.key_field.with_type(_utc_type(t.key_type)), t.item_field.with_type(_utc_type(t.item_type)),
                       t.keys_sorted)
    if pt.is_list(t):
        return pa.list_(t.value_field.with_type(_utc_type(t.value_type)))
    if pt.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_utc_type(t.value_type)))
    if pt.is_struct(t):
        return pa.struct([t.field(i).with_type(_utc_type(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _needs_fix(t) -> bool:
    import pyarrow.types as pt

    if pt.is_map(t) or (pt.is_timestamp(t) and t.tz is not None):
        return True
    if pt.is_list(t) or pt.is_large_list(t):
        return _needs_fix(t.value_type)
    if pt.is_struct(t):
        return any(_needs_fix(t.field(i).type) for i in range(t.num_fields))
    return False


def _fix_nested(v, t, tz: str):
    """Maps as dicts (like the codec), nested timestamps as wall-clock time in the session zone."""
    import pyarrow.types as pt

    if v is None:
        return None
    if pt.is_map(t):
        return {_fix_nested(k, t.key_type, tz): _fix_nested(x, t.item_type, tz) for k, x in v}
    if pt.is_list(t) or pt.is_large_list(t):
        return [_fix_nested(x, t.value_type, tz) for x in v]
    if pt.is_struct(t):
        return {t.field(i).name: _fix_nested(v[t.field(i).name], t.field(i).type, tz) for i in range(t.num_fields)}
    if pt.is_timestamp(t) and isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return wall_clock(v, tz)
    return v




def pandas_from_arrow(table, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """A table made from a pandas frame (its pandas metadata kept) back as that frame.

    ``columns`` are the real names when repeated ones travelled as placeholders. The table's
    buffers are released as columns convert (pyarrow ``self_destruct``), so the peak stays
    near one frame.
    """
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    # Zero-copy columns are views of Arrow's immutable buffers: a user's ``df.loc[0, "a"] = 1``
    # would fail ("read-only"). Copy those one column at a time; each column's Arrow buffer is
    # freed as its copy replaces it, so the peak grows by one column, not one frame.
    for i in range(frame.shape[1]):
        if _read_only(frame.iloc[:, i]._values):
            frame.isetitem(i, frame.iloc[:, i].copy(deep=True))
    if columns is not None:
        frame.columns = list(columns)
    return frame


def _read_only(values: Any) -> bool:
    """Does this column's data (a numpy array, or an extension array over some) refuse writes?"""
    parts = [values] if isinstance(values, np.ndarray) else [
        getattr(values, name, None) for name in ("_ndarray", "_data", "_mask", "_codes")]
    return any(isinstance(a, np.ndarray) and not a.flags.writeable for a in parts)
