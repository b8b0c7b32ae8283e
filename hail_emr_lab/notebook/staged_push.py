"""A local pandas frame as the Arrow table a staged ``%hail push`` writes as Parquet.

The inline push sends a frame through the codec (``remote/codec.py``) and the cluster builds a
Spark DataFrame with ``remote/push.py: pandas_to_spark``. The staged push must give the very same
columns, types and values, so each column is converted here to the Arrow type that Spark reads
back as the type ``pandas_to_spark`` would have chosen (Spark SQL guide, "Parquet Files"):

* numbers and booleans keep their width; unsigned ints widen to the next signed type (uint64
  to int64, refused above 2**63 - 1); NaN stays NaN and a masked value becomes null;
* naive timestamps are wall-clock time in the Spark session time zone: they travel as that wall
  clock written as UTC, and the cluster moves them into the session zone with
  ``to_utc_timestamp`` (java.time's rules for gaps and overlaps, as ``CAST(text AS TIMESTAMP)``
  of the inline path); aware ones travel as the instant. Both are cut to microseconds;
* strings, bytes, dates and decimals (precision 38, the largest scale of the column) as such.

What has no exact Parquet form here (timedeltas, JSON-like values, mixed object columns, no
columns at all) raises :class:`NotStageable`: the caller then pushes inline, or refuses when
staging was forced. Columns travel under positional names (``_hel_col_<i>``), since Parquet
cannot hold a name twice; the cluster gives the names back by position.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..remote.codec import _is_null, _object_kind, index_as_columns
from ..remote.staged import placeholder

#: Microseconds of one unit of pandas' datetime64 resolutions.
_NS_PER_US = 1000


class NotStageable(ValueError):
    """A frame (or one of its columns) cannot travel staged without changing; says which and why."""


@dataclass
class StagedTable:
    """What a staged push writes and tells the cluster.

    ``table``: a ``pyarrow.Table`` with placeholder column names; ``names``: the real names by
    position; ``naive``: positions of naive timestamp columns (moved into the session zone on
    the cluster); ``rows``: the row count the cluster checks it read.
    """

    table: object
    names: list[str]
    naive: list[int]
    rows: int


def staged_table(frame: pd.DataFrame, as_pandas: bool) -> StagedTable:
    """``frame`` (index kept as columns when it carries information, as inline) ready to write.

    ``as_pandas``: the cluster keeps pandas, so pandas' own Arrow conversion (with its
    metadata) is used, for the column kinds whose inline round trip it matches. Raises
    :class:`NotStageable`.
    """
    import pyarrow as pa

    frame = index_as_columns(frame)
    if frame.shape[1] == 0:
        raise NotStageable("a frame without columns has no Parquet form")
    names = [str(c) for c in frame.columns]
    series = [frame.iloc[:, i] for i in range(frame.shape[1])]
    for i, s in enumerate(series):
        if isinstance(s.dtype, pd.CategoricalDtype):
            series[i] = s.astype(object)  # as the codec does: the values, not the categories
    if as_pandas:
        for name, s in zip(names, series):
            _check_pandas_kind(name, s)
        flat = pd.concat([s.rename(placeholder(i)) for i, s in enumerate(series)], axis=1)
        flat.index = pd.RangeIndex(len(frame))
        return StagedTable(pa.Table.from_pandas(flat, preserve_index=False), names, [], len(frame))
    arrays, naive = [], []
    for i, (name, s) in enumerate(zip(names, series)):
        array, is_naive = spark_column(name, s)
        arrays.append(array)
        if is_naive:
            naive.append(i)
    table = pa.Table.from_arrays(arrays, names=[placeholder(i) for i in range(len(names))])
    return StagedTable(table, names, naive, len(frame))


def _check_pandas_kind(name: str, s: pd.Series) -> None:
    """Refuse what pandas' Parquet round trip does not give back as the codec does."""
    kind = getattr(s.dtype, "kind", "O")
    if kind == "m":
        raise NotStageable(f"column {name!r} holds timedeltas")
    if kind == "O" and _object_kind(s.tolist()) not in ("str", "bytes", "date"):
        raise NotStageable(f"column {name!r} holds values other than text, bytes or dates")


def spark_column(name: str, s: pd.Series):
    """``(pyarrow array, naive timestamp?)`` for one column bound for Spark; raises NotStageable."""
    import pyarrow as pa

    dname, kind = str(s.dtype), getattr(s.dtype, "kind", "O")
    if dname in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                 "Float32", "Float64", "boolean"):
        arr = s.array
        return _signed(name, pa.array(np.asarray(arr._data), mask=np.asarray(arr._mask))), False
    if kind in "iufb" and hasattr(s.dtype, "itemsize") and dname != "float16":
        return _signed(name, pa.array(s.to_numpy())), False  # from numpy: NaN stays NaN
    if kind == "M":
        return _timestamps(s), getattr(s.dtype, "tz", None) is None
    if kind == "O":
        return _objects(name, s.tolist())
    raise NotStageable(f"column {name!r} ({dname}) has no staged form")


def _signed(name: str, array):
    """Unsigned ints as the next wider signed type, as ``pandas_to_spark`` types them."""
    import pyarrow as pa

    wider = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}
    if array.type not in wider:
        return array
    try:
        return array.cast(wider[array.type])  # a safe cast: a uint64 above 2**63 - 1 raises
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise NotStageable(f"column {name!r} holds values Spark's LongType cannot: {exc}") from None


def _timestamps(s: pd.Series):
    """Microseconds since the epoch, as UTC: an aware column's instants, a naive one's wall clock."""
    import pyarrow as pa

    if getattr(s.dtype, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    values = s.to_numpy().astype("datetime64[ns]").view("i8")
    micros = np.floor_divide(values, _NS_PER_US)  # floor: the wall clock's microsecond, as the text is
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=s.isna().to_numpy())


def _objects(name: str, values: list):
    """An object column as the codec's kind of it: text, bytes, dates or decimals."""
    import pyarrow as pa

    kind = _object_kind(values)
    clean = [None if _is_null(v) else v for v in values]
    try:
        if kind == "str":
            return pa.array(clean, type=pa.string()), False
        if kind == "bytes":
            return pa.array([None if v is None else bytes(v) for v in clean], type=pa.binary()), False
        if kind == "date":
            return pa.array(clean, type=pa.date32()), False
        if kind == "decimal":
            return pa.array(clean, type=pa.decimal128(38, _decimal_scale(clean))), False
    except (pa.ArrowInvalid, pa.ArrowTypeError, decimal.InvalidOperation, TypeError) as exc:
        raise NotStageable(f"column {name!r}: {exc}") from None
    raise NotStageable(f"column {name!r} holds values other than text, bytes, dates or decimals")


def _decimal_scale(values: list) -> int:
    """The largest scale of the column, within 0..38 (``remote/push.py: spark_type_for``)."""
    exps = [v.as_tuple().exponent for v in values if v is not None]
    if any(not isinstance(e, int) for e in exps):
        raise NotStageable("a decimal column holds NaN or infinity")
    return max(0, min(max([-e for e in exps] or [0]), 38))
