"""Arrow tables as pandas frames with exact dtypes: the one set of rules for every transport.

Spark columns become exact pandas dtypes: integers with nulls -> nullable ``Int64`` (etc.),
floats with nulls -> ``Float64`` keeping NaN apart from null, booleans with nulls ->
``boolean``, timestamps -> ``datetime64[ns]`` wall-clock in the Spark session time zone (as
``toPandas``), strings and binary -> Python objects, dates/decimals/arrays/structs/maps ->
Python objects. Every numpy array handed to pandas is writable and owned by it.
"""

from __future__ import annotations

import datetime
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..remote.codec import check_ns_range, frame_from_columns, session_zone, wall_clock


def arrow_to_pandas(table, session_tz: str = "UTC") -> pd.DataFrame:
    """A Spark Arrow table as pandas with exact dtypes (see the module docstring)."""
    arrays = [arrow_column(name, col, session_tz) for name, col in zip(table.column_names, table.columns)]
    return frame_from_columns(list(table.column_names), arrays, table.num_rows)


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
    if columns is not None:
        frame.columns = list(columns)
    return frame
