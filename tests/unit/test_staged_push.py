"""Which local frames a staged push can carry unchanged, and the Arrow types it gives them."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hail_emr_lab.notebook.staged_push import NotStageable, staged_table


def types(frame: pd.DataFrame) -> list[str]:
    return [str(t) for t in staged_table(frame, False).table.schema.types]


def test_unsigned_ints_widen_as_the_inline_push_types_them():
    frame = pd.DataFrame({"a": np.array([255], dtype="uint8"), "b": np.array([1], dtype="uint16"),
                          "c": np.array([1], dtype="uint32"), "d": np.array([1], dtype="uint64"),
                          "e": pd.array([None], dtype="UInt8")})
    assert types(frame) == ["int16", "int32", "int64", "int64", "int16"]
    with pytest.raises(NotStageable, match="column 'big' holds values Spark's LongType cannot"):
        staged_table(pd.DataFrame({"big": np.array([2**63], dtype="uint64")}), False)


def test_nan_stays_apart_from_null():
    frame = pd.DataFrame({"f": [1.0, float("nan")],
                          "nf": pd.arrays.FloatingArray(np.array([np.nan, 0.0]), np.array([False, True]))})
    table = staged_table(frame, False).table
    assert table.column(0).null_count == 0 and np.isnan(table.column(0).to_pylist()[1])
    assert table.column(1).null_count == 1 and np.isnan(table.column(1).to_pylist()[0])


def test_timestamps_travel_as_utc_microseconds_and_naive_ones_are_marked():
    frame = pd.DataFrame({
        "naive": pd.to_datetime(["1960-01-01 00:00:00.0000019", None], format="ISO8601"),
        "aware": pd.to_datetime(["2020-06-01 12:00"]).tz_localize("Europe/Paris").repeat(2),
    })
    staged = staged_table(frame, False)
    assert staged.naive == [0]
    assert [str(t) for t in staged.table.schema.types] == ["timestamp[us, tz=UTC]"] * 2
    col = staged.table.column(0).cast(pa.int64()).to_pylist()
    assert col == [int(pd.Timestamp("1960-01-01 00:00:00.000001").value // 1000), None]  # floor, as the text
    assert staged.table.column(1).to_pylist()[0] == datetime.datetime(2020, 6, 1, 10, tzinfo=datetime.timezone.utc)


def test_object_columns_as_the_codec_reads_them():
    frame = pd.DataFrame({"s": ["a", float("nan"), None], "b": [b"x", bytearray(b"y"), None],
                          "d": [datetime.date(1, 1, 1), None, datetime.date(2020, 1, 1)],
                          "dec": [decimal.Decimal("1.10"), decimal.Decimal("-3"), None],
                          "cat": pd.Categorical(["x", "y", "x"])})
    staged = staged_table(frame, False)
    assert [str(t) for t in staged.table.schema.types] == ["string", "binary", "date32[day]", "decimal128(38, 2)",
                                                           "string"]
    assert staged.table.column(0).to_pylist() == ["a", None, None]


@pytest.mark.parametrize("values, why", [
    ([[1, 2], None], "holds values other than"),
    (["a", 1], "holds values other than"),
    ([decimal.Decimal("NaN")], "NaN or infinity"),
])
def test_what_has_no_exact_parquet_form_is_not_staged(values, why):
    with pytest.raises(NotStageable, match=why):
        staged_table(pd.DataFrame({"x": values}), False)
    with pytest.raises(NotStageable, match="timedeltas"):
        staged_table(pd.DataFrame({"t": pd.to_timedelta([1], unit="s")}), True)
    with pytest.raises(NotStageable, match="without columns"):
        staged_table(pd.DataFrame(index=range(3)), False)


def test_repeated_names_travel_as_placeholders_and_the_index_as_columns():
    frame = pd.DataFrame([[1, "a"]], columns=["k", "k"], index=pd.Index(["r"], name="key"))
    staged = staged_table(frame, False)
    assert staged.names == ["key", "k", "k"]
    assert staged.table.column_names == ["_hel_col_0", "_hel_col_1", "_hel_col_2"]
    assert staged_table(frame, True).names == ["key", "k", "k"]
