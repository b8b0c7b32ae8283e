"""A pandas frame pulled with ``-o`` is the user's to edit: every column accepts writes, on the
inline transport (Arrow IPC) and the staged one (Parquet), as ``toPandas()`` or a plain pandas
frame would. Zero-copy conversion from Arrow had left views of Arrow's read-only buffers."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from hail_emr_lab.config import Config
from hail_emr_lab.notebook import staging, transfer
from hail_emr_lab.remote import pull as remote_pull
from hail_emr_lab.remote import staged as rstaged


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "a": [1, 2], "b": [1.5, 2.5], "i": pd.array([1, None], dtype="Int64"),
        "t": pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("Europe/Paris"),
        "c": pd.Categorical(["x", "y"]), "s": ["u", "v"],
    })


def _edit(df: pd.DataFrame) -> None:
    df.loc[0, "a"] = 5
    df.loc[0, "b"] = 1.0
    df.loc[0, "i"] = 7
    df.loc[0, "t"] = pd.Timestamp("2021-01-01", tz="Europe/Paris")
    df.loc[0, "c"] = "y"
    df.loc[0, "s"] = "w"
    assert df.iloc[0].tolist() == [5, 1.0, 7, pd.Timestamp("2021-01-01", tz="Europe/Paris"), "y", "w"]


def test_an_inline_pull_of_a_driver_pandas_frame_is_writable():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        remote_pull.pull({"pdf": _frame()}, ["pdf"], use_arrow=True)
    (entry,) = json.loads(out.getvalue().split("@@hail-emr-lab@@", 1)[1])
    assert entry["format"] == "arrow-pandas"
    df = transfer.decode(entry, entry["data"])
    pd.testing.assert_frame_equal(df, _frame())
    _edit(df)


@pytest.mark.parametrize("limit", [None, 1])
def test_a_staged_pull_of_a_driver_pandas_frame_is_writable(tmp_path, monkeypatch, limit):
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path))
    area = staging.StagingArea.open(Config())
    (loc,) = area.locations
    fields = rstaged.stage_pandas(_frame(), loc.wire(), limit)
    df, *_ = area.read(dict(format="parquet-pandas", name="pdf", **fields), limit)
    pd.testing.assert_frame_equal(df, _frame() if limit is None else _frame().iloc[:1])
    if limit is None:
        _edit(df)
    else:
        df.loc[0, "a"] = 5
    area.cleanup()
