"""The inline ``-o`` channel: Arrow's own buffer compression, a driver that frees what it sent,
and a kernel that decodes chunks as they arrive and refuses what does not add up.

The chunked pulls run through the embedded Livy over HTTP with real Spark (chunks made small
so that a modest frame needs many); the format checks feed the kernel's decoder the bytes an
older driver, or a broken transfer, would send. What no test here covers: Livy on EMR, where the
chunk size is the same but the driver's memory is the cluster's.
"""

from __future__ import annotations

import base64
import datetime
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hail_emr_lab.livy import LivyClient, LivySession
from hail_emr_lab.notebook import transfer
from hail_emr_lab.notebook.arrow_frames import arrow_to_pandas
from hail_emr_lab.remote import NAMESPACE, bootstrap_code

pytestmark = pytest.mark.slow

ROWS = 60_000
#: Base64 characters per chunk in these tests (a multiple of 4, like the real one).
SMALL_CHUNK = 64_000

MAKE = f"""
from pyspark.sql import functions as F
g = spark.range({ROWS}, numPartitions=4).select(
    F.concat(F.lit('1:'), (F.col('id') * 37 + 10000).cast('string'), F.lit(':A:G')).alias('variant'),
    (F.col('id') * 37 + 10000).alias('position'),
    F.when(F.col('id') % 7 == 0, F.lit(None)).otherwise((F.col('id') % 9973 + 1) / 9974.0).alias('pvalue'),
    F.when(F.col('id') % 11 == 0, F.lit(None)).otherwise(F.col('id') % 5).cast('int').alias('n'),
    (F.col('id') % 3 == 0).alias('flag'),
    F.when(F.col('id') % 13 == 0, F.lit(None)).otherwise(F.col('id') % 2 == 0).alias('flag_null'),
    F.date_add(F.lit('2020-01-01').cast('date'), (F.col('id') % 365).cast('int')).alias('day'),
    F.timestamp_seconds(F.col('id') * 60).alias('ts'),
    F.array(F.col('id'), F.lit(None).cast('long')).alias('arr'),
)
import pandas as _pd
p = _pd.DataFrame({{'a': range({ROWS}), 'b': [str(i) * 3 for i in range({ROWS})]}})
print(g.count())
"""


@pytest.fixture(scope="module")
def session(livy_server):
    with LivyClient(livy_server.url) as client:
        s = LivySession.create(client, name="inline-tests", heartbeat_timeout=120)
        try:
            s.wait_ready(timeout=300)
            s.run(bootstrap_code(), check=True, timeout=120)
            s.run(MAKE, check=True, timeout=300)
            yield s
        finally:
            s.delete()


def _held(session) -> list[int]:
    """Bytes the driver still keeps for each value waiting to be fetched."""
    out = session.run(f"print([k.held() for k in {NAMESPACE}._BLOBS.values()])", check=True, timeout=60)
    return [int(x) for x in out.text.strip().strip("[]").split(",") if x.strip()]


def _pull(session, monkeypatch, name, use_arrow=None, probe=False):
    """Pull ``name`` in small chunks: ``(Pulled, [(chars done, bytes the driver still held)])``."""
    monkeypatch.setattr(transfer, "CHUNK_CHARS", SMALL_CHUNK)
    seen = []

    def on_chunk(_name, done, total, **_how):
        seen.append((done, _held(session) if probe else None))

    (pulled,) = transfer.pull(session, [name], use_arrow=use_arrow, on_chunk=on_chunk, via="livy", timeout=300)
    return pulled, seen


def test_spark_frame_travels_as_compressed_ipc_in_chunks_the_driver_frees(session, monkeypatch):
    pulled, seen = _pull(session, monkeypatch, "g", probe=True)
    meta = pulled.meta
    assert pulled.format == "arrow" and meta["packing"] == "ipc" and meta["ipc_compression"] == "zstd"
    # Arrow's buffer compression, not zlib over the stream: far smaller than the raw batches.
    assert meta["bytes"] < meta["raw_length"] / 2 and meta["length"] == (meta["bytes"] + 2) // 3 * 4
    assert len(seen) >= 5, "the value should have needed many chunks"
    assert seen[0][0] == 0  # told before the first chunk, as the progress line needs
    held = [h[0] if h else 0 for done, h in seen if done]
    # Each chunk sent is freed on the driver: what it keeps shrinks with every chunk, to nothing.
    assert all(a > b for a, b in zip(held, held[1:])) and held[-1] == 0
    assert held[0] <= meta["bytes"] - SMALL_CHUNK // 4 * 3
    assert _held(session) == []

    g = pulled.value
    assert len(g) == ROWS
    assert [str(t) for t in g.dtypes] == ["object", "int64", "Float64", "Int32", "bool", "boolean", "object",
                                          "datetime64[ns]", "object"]
    ids = np.arange(ROWS)
    assert g["variant"].tolist() == [f"1:{i * 37 + 10000}:A:G" for i in ids]
    assert g["pvalue"].isna().tolist() == (ids % 7 == 0).tolist()
    assert g["n"].isna().sum() == (ids % 11 == 0).sum() and g["n"].iloc[1] == 1
    assert g["flag_null"].isna().sum() == (ids % 13 == 0).sum()
    assert g["day"].iloc[366] == datetime.date(2020, 1, 2)
    assert g["arr"].iloc[5] == [5, None]

    # The codec (no pyarrow on the driver) gives the very same frame, zlib-packed.
    codec, _ = _pull(session, monkeypatch, "g", use_arrow=False)
    assert codec.format == "helc" and codec.meta["packing"] == "zlib"
    pd.testing.assert_frame_equal(codec.value, g, check_exact=True)


def test_pandas_frame_on_the_driver_in_chunks(session, monkeypatch):
    pulled, seen = _pull(session, monkeypatch, "p")
    assert pulled.format == "arrow-pandas" and pulled.meta["packing"] == "ipc" and len(seen) >= 2
    expected = pd.DataFrame({"a": range(ROWS), "b": [str(i) * 3 for i in range(ROWS)]})
    pd.testing.assert_frame_equal(pulled.value, expected)
    assert _held(session) == []


def test_a_failed_decode_frees_the_driver(session, monkeypatch):
    """A value the kernel cannot use is dropped on the driver, not kept there for the session's life."""
    monkeypatch.setattr(transfer, "CHUNK_CHARS", SMALL_CHUNK)
    monkeypatch.setattr(transfer, "PACKINGS", ("zlib",))  # this kernel "cannot read" the driver's packing
    with pytest.raises(transfer.TransferError, match="connect --new"):
        transfer.pull(session, ["g"], via="livy", timeout=300)
    assert _held(session) == []


# ------------------------------------------------------------------ formats, without a cluster


def _table(n=50_000):
    return pa.table({"v": pa.array([f"1:{i}:A:G" for i in range(n)]), "x": pa.array(np.arange(n) / 7.0),
                     "k": pa.array([None if i % 5 == 0 else i for i in range(n)], pa.int64())})


def _ipc(table, compression=None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        for batch in table.to_batches(max_chunksize=5_000):
            w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _chunks(text: str, size: int = 4_000):
    return iter([text[i : i + size] for i in range(0, len(text), size)])


def test_an_older_driver_zlib_stream_is_still_read_chunk_by_chunk():
    """Drivers before Arrow's buffer compression sent zlib over the whole IPC stream and named no packing."""
    table = _table()
    text = base64.b64encode(zlib.compress(_ipc(table), 1)).decode("ascii")
    entry = {"name": "old", "format": "arrow", "rows": table.num_rows, "length": len(text)}
    got = transfer._decode(entry, _chunks(text))
    pd.testing.assert_frame_equal(got, arrow_to_pandas(table), check_exact=True)
    assert str(got["k"].dtype) == "Int64"


def test_chunks_cut_anywhere_decode_the_same():
    table = _table()
    text = base64.b64encode(_ipc(table, "zstd")).decode("ascii")
    entry = {"name": "v", "format": "arrow", "rows": table.num_rows, "packing": "ipc"}
    got = transfer._decode(entry, _chunks(text, 4_001))  # not a multiple of 4: the rest carries over
    pd.testing.assert_frame_equal(got, arrow_to_pandas(table), check_exact=True)


@pytest.mark.parametrize("packing", ["brotli", None])
def test_an_unknown_packing_or_format_is_refused(packing):
    entry = {"name": "v", "format": "arrow" if packing else "arrow-v9", "rows": 1, "packing": packing or "ipc"}
    with pytest.raises(transfer.TransferError, match="unknown format.*connect --new"):
        transfer.decode(entry, "AAAA")


def test_data_that_does_not_add_up_is_refused_never_returned():
    table = _table()
    ipc = _ipc(table, "zstd")
    text = base64.b64encode(ipc).decode("ascii")
    entry = {"name": "v", "format": "arrow", "packing": "ipc"}
    with pytest.raises(transfer.TransferError, match="announced 50001 rows but sent 50000"):
        transfer.decode(dict(entry, rows=table.num_rows + 1), text)
    with pytest.raises(transfer.TransferError, match="announced 49999 rows but sent more"):
        transfer.decode(dict(entry, rows=table.num_rows - 1), text)
    cut = base64.b64encode(ipc[: len(ipc) // 2]).decode("ascii")
    with pytest.raises(transfer.TransferError, match="pulling v"):
        transfer.decode(dict(entry, rows=table.num_rows), cut)
    extra = base64.b64encode(ipc + b"\x00" * 12).decode("ascii")
    with pytest.raises(transfer.TransferError, match="more data than the value"):
        transfer.decode(dict(entry, rows=table.num_rows), extra)
    zipped = base64.b64encode(zlib.compress(b'{"a": 1}')[:-3]).decode("ascii")
    with pytest.raises(transfer.TransferError, match="cut short"):
        transfer.decode({"name": "v", "format": "json", "packing": "zlib"}, zipped)
    with pytest.raises(transfer.TransferError, match="not base64"):
        transfer.decode({"name": "v", "format": "json", "packing": "zlib"}, "eJ*r")
