"""The staged ``%hail push`` against the embedded Livy over HTTP: the same frames as inline, no leftovers.

One Livy session for the module (a Spark JVM, the session's time zone set to one with DST, so
naive timestamps in a gap and an overlap are covered). The kernel side runs in this process,
writes Parquet to the embedded server's staging folder (the worker is another process that
proves it sees it by the token), and the session's executors read it. The S3 write runs against
moto over HTTP; the embedded Spark has no S3 filesystem, so there the files the notebook wrote
are read back with pyarrow and the cluster's read is exercised on the local folder.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import time

import boto3
import numpy as np
import pandas as pd
import pytest

from hail_emr_lab.config import load_config
from hail_emr_lab.livy import LivyClient, LivySession, StatementError
from hail_emr_lab.notebook import staging, transfer
from hail_emr_lab.notebook.staged_push import staged_table
from hail_emr_lab.remote import NAMESPACE, bootstrap_code

pytestmark = pytest.mark.slow
NAME = "push-staged-test"
ZONE = "America/New_York"


@pytest.fixture(scope="module")
def session(livy_server):
    client = LivyClient(livy_server.url)
    s = LivySession.create(client, name=NAME, kind="pyspark")
    s.wait_ready(timeout=600)
    out = s.run(bootstrap_code() + f"spark.conf.set('spark.sql.session.timeZone', {ZONE!r})\n", timeout=600)
    assert out.ok, out.text
    yield s
    client.delete_session(s.id)
    client.close()


@pytest.fixture(autouse=True)
def local_state(tmp_path, monkeypatch, isolated_config):
    """A private embedded state dir, so the staging folder holds only this test's files."""
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path / "local"))
    return isolated_config


def leftovers() -> list[str]:
    root = staging.local_root()
    return sorted(os.listdir(root)) if root.exists() else []


def remote(session, expr: str):
    """``expr`` evaluated in the session, through JSON."""
    out = session.run(f"import json as _j\nprint(_j.dumps({expr}, default=str))")
    assert out.ok, out.text
    return json.loads(out.text.strip().splitlines()[-1])


def spark_view(session, name: str):
    """Schema and rows of a pushed Spark DataFrame, values by repr (NaN compares equal)."""
    return remote(session, f"[{name}.columns, [f.dataType.simpleString() for f in {name}.schema.fields], "
                           f"[repr(list(r)) for r in {name}.collect()]]")


def pandas_view(session, name: str):
    return remote(session, f"[[str(c) for c in {name}.columns], [str(t) for t in {name}.dtypes], "
                           f"[repr({name}.iloc[:, i].tolist()) for i in range({name}.shape[1])], repr({name}.index)]")


def sample() -> pd.DataFrame:
    """Every kind the inline push tests cover that Parquet carries, with a repeated name."""
    frame = pd.DataFrame({
        "i": np.array([1, -2, 3], dtype="int64"),
        "i32": np.array([1, 2, 3], dtype="int32"),
        "u8": np.array([1, 2, 255], dtype="uint8"),
        "ni": pd.array([1, None, 2**62 + 7], dtype="Int64"),
        "f": [0.5, float("nan"), float("-inf")],
        "nf": pd.arrays.FloatingArray(np.array([1.0, np.nan, 0.0]), np.array([False, False, True])),
        "b": [True, False, True],
        "nb": pd.array([True, None, False], dtype="boolean"),
        "s": ["a", None, "ü ✓"],
        "snan": ["a", float("nan"), "b"],
        "t": pd.to_datetime(["2020-01-01 00:00:00.000001", None, "1960-05-05 00:00:00.000000"]),
        # an overlap and a gap of the session zone, and a nanosecond (cut to microseconds)
        "dst": pd.to_datetime(["2020-11-01 01:30:00", "2020-03-08 02:30:00", "2020-06-01 12:00:00.0000019"],
                              format="ISO8601"),
        "tz": pd.to_datetime(["2020-01-01", "2021-06-01", None]).tz_localize("Europe/Paris"),
        "d": [datetime.date(2020, 1, 1), None, datetime.date(1, 1, 1)],
        "dec": [decimal.Decimal("1.10"), None, decimal.Decimal("-3")],
        "raw": [b"\x00", None, b"xyz"],
        "cat": pd.Categorical(["x", "y", "x"]),
    })
    frame.columns = list(frame.columns[:-1]) + ["i"]
    return frame


def test_staged_push_gives_the_inline_spark_frame(session):
    src = sample()
    inline = transfer.push(session, src, "pinl", via="livy")
    seen: list[tuple[int, int]] = []
    staged = transfer.push(session, src, "pstg", via="staged", on_chunk=lambda n, d, t, **how: seen.append((d, t)))
    assert "via" not in inline and staged["via"] == "staged" and staged["shape"] == inline["shape"]
    assert spark_view(session, "pstg") == spark_view(session, "pinl")
    assert spark_view(session, "pstg")[1][:4] == ["bigint", "int", "smallint", "bigint"]
    # Progress is bytes written, ending at the Parquet size reported.
    assert seen and seen[-1] == (staged["bytes"], staged["bytes"]) > (0, 0)
    # No rows at all: the columns and their types still arrive.
    transfer.push(session, src.iloc[:0], "einl", via="livy")
    transfer.push(session, src.iloc[:0], "estg", via="staged")
    assert spark_view(session, "estg") == spark_view(session, "einl")
    assert leftovers() == []


def test_staged_push_gives_the_inline_pandas_frame(session):
    src = sample().drop(columns=["dec"])  # decimals keep their text inline; pandas' Parquet rescales them
    src.index = pd.Index(["a", "b", "c"], name="key")  # an index with information travels as a column
    transfer.push(session, src, "qinl", as_pandas=True, via="livy")
    staged = transfer.push(session, src, "qstg", as_pandas=True, via="staged")
    assert staged["via"] == "staged" and staged["type"] == "pandas.core.frame.DataFrame"
    assert pandas_view(session, "qstg") == pandas_view(session, "qinl")
    assert leftovers() == []


def test_a_large_frame_is_read_in_order_from_several_files(session, monkeypatch):
    monkeypatch.setattr(staging, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(staging, "FILE_BYTES", 1)  # one file per row group
    n = 20_000
    src = pd.DataFrame({"pos": np.arange(n, dtype="int64"), "variant": [f"1:{i}:A:G" for i in range(n)],
                        "p": np.random.default_rng(3).random(n)})
    summary = transfer.push(session, src, "many", via="staged")
    assert summary["shape"] == f"{n} rows x 3 columns"
    assert remote(session, "[many.rdd.getNumPartitions(), [r[0] for r in many.select('pos').collect()] "
                           f"== list(range({n})), many.agg({{'p': 'sum'}}).first()[0]]") == [
        20, True, pytest.approx(float(src["p"].sum()))]
    assert leftovers() == []


def test_auto_stages_above_transfer_inline_max(session, local_state):
    local_state.joinpath("config.json").write_text(json.dumps({"transfer_inline_max": 20_000}))
    config = load_config()
    small = pd.DataFrame({"k": [1, 2]})
    big = pd.DataFrame({"k": np.arange(5000, dtype="int64"), "v": np.arange(5000, dtype="float64")})
    assert "via" not in transfer.push(session, small, "asmall", via="auto", config=config)
    assert transfer.push(session, big, "abig", via="auto", config=config)["via"] == "staged"
    assert remote(session, "abig.count()") == 5000
    # What Parquet cannot carry as inline does goes inline under auto, with a note; forced, it is refused.
    nested = pd.DataFrame({"k": np.arange(3000), "j": [[1, 2]] * 3000, "td": pd.to_timedelta(np.arange(3000), "s")})
    summary = transfer.push(session, nested, "anested", via="auto", config=config)
    assert "via" not in summary and "pushed inline, not staged: column 'j'" in summary["note"]
    with pytest.raises(transfer.TransferError, match="--via staged cannot push anested: column 'j'.*--via livy"):
        transfer.push(session, nested, "anested", via="staged", config=config)
    assert leftovers() == []


def test_a_push_that_fails_leaves_no_files(session):
    src = pd.DataFrame({"k": np.arange(5000)})

    def interrupt(name, done, total, **how):
        raise KeyboardInterrupt  # Ctrl-C while the Parquet is being written

    with pytest.raises(KeyboardInterrupt):
        transfer.push(session, src, "never", via="staged", on_chunk=interrupt)
    assert leftovers() == []
    # The cluster fails after reading started. Stand-in: the session's own read is wrapped to
    # raise once it has seen the files (a real failure there would be Spark's error).
    out = session.run(
        f"_hel_real_push = {NAMESPACE}.push_staged\n"
        "def _hel_failing(ns, staging, files, *a, **k):\n"
        f"    {NAMESPACE}.read_spark(ns['spark'], staging, files).count()\n"
        "    raise RuntimeError('read failed half way')\n"
        f"{NAMESPACE}.push_staged = _hel_failing\n")
    assert out.ok, out.text
    try:
        with pytest.raises(StatementError, match="read failed half way"):
            transfer.push(session, src, "never", via="staged")
    finally:
        assert session.run(f"{NAMESPACE}.push_staged = _hel_real_push").ok
    assert leftovers() == [] and remote(session, "'never' in globals()") is False


def test_a_location_outside_the_staging_root_is_refused(session, tmp_path):
    area = staging.StagingArea.open(load_config())
    try:
        loc = area.locations[0]
        files, _ = area.write(loc, staged_table(pd.DataFrame({"k": [1]}), False).table)
        elsewhere = tmp_path / "elsewhere"
        (elsewhere / "data").mkdir(parents=True)
        (elsewhere / "token").write_text(loc.token or "")
        forged = [
            ({"url": "s3://bucket/alice/data/", "local": False}, "not an s3:// URL under a .hail-emr-lab/staging/"),
            ({"url": str(elsewhere) + "/", "local": True, "token": "0" * 32}, "not visible to the Spark driver"),
            ({"url": "/etc/", "local": True, "token": loc.token}, "not visible to the Spark driver"),
        ]
        for bad, why in forged:
            with pytest.raises(StatementError, match=why):
                transfer._run(session, f"{NAMESPACE}.push_staged(globals(), {bad!r}, {files!r}, 'x', ['k'], [], 1)",
                              "pushing x")
        # Only file names of the notebook's own making are read, inside the checked location.
        with pytest.raises(StatementError, match="files not of its own naming"):
            transfer._run(session, f"{NAMESPACE}.push_staged(globals(), {loc.wire()!r}, ['../token'], 'x', ['k'], "
                                   "[], 1)", "pushing x")
        where = json.loads(transfer._run(session, f"{NAMESPACE}.push_where(globals(), {[b for b, _ in forged]!r})",
                                         "pushing x"))
        assert "not an s3:// URL" in where["refused"] and "not visible" in where["refused"]
    finally:
        assert area.cleanup() == []
    assert leftovers() == [] and remote(session, "'x' in globals()") is False


def test_s3_staging_against_moto(session, aws_env, local_state):
    """The notebook writes the push to S3 (moto over HTTP) with the staged pull's filesystem, and deletes it."""
    import pyarrow.parquet as pq

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lab-bucket")
    local_state.joinpath("config.json").write_text(json.dumps({"bucket": "lab-bucket", "prefix": "alice"}))
    src = sample()
    table = staged_table(src, False)
    area = staging.StagingArea.open(load_config())
    local, on_s3 = area.locations
    try:
        files, size = area.write(on_s3, table.table)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lab-bucket", Prefix="alice/")["Contents"]]
        root = on_s3.url[len("s3://lab-bucket/"):]
        assert keys == [root + "data/" + f for f in files] and size > 0
        filesystem, path = area._filesystem(on_s3)
        back = pq.read_table(f"{path}/data/{files[0]}", filesystem=filesystem)
        assert back.schema == table.table.schema and repr(back.to_pylist()) == repr(table.table.to_pylist())
        # The cluster reads what the notebook wrote (from the local folder: no S3 in embedded Spark).
        local_files, _ = area.write(local, table.table)
        code = (f"{NAMESPACE}.push_staged(globals(), {local.wire()!r}, {local_files!r}, 'fromfiles', "
                f"{table.names!r}, {table.naive!r}, {table.rows})")
        transfer._run(session, code, "pushing")
        transfer.push(session, src, "frominline", via="livy")
        assert spark_view(session, "fromfiles") == spark_view(session, "frominline")
    finally:
        assert area.cleanup() == []
    assert s3.list_objects_v2(Bucket="lab-bucket", Prefix="alice/").get("Contents", []) == []
    assert leftovers() == []


def test_the_magic_pushes_staged_and_says_how(session, livy_server, tmp_path):
    """``%hail push`` in a real kernel, attached to this module's session (no second Spark JVM)."""
    from support.kernel import Kernel, kernel_env

    cfg = tmp_path / "kcfg"
    cfg.mkdir()
    cfg.joinpath("config.json").write_text(json.dumps({"transfer_inline_max": 20_000}))
    kernel = Kernel(kernel_env(str(cfg)), cwd=str(cfg))
    try:
        res = kernel.run(f"%hail connect --url {livy_server.url} --name {NAME} --no-hail", timeout=600)
        assert res.status == "ok", res.text
        res = kernel.run("import numpy as np, pandas as pd\n"
                         "big = pd.DataFrame({'k': np.arange(5000)})\n"
                         "nested = pd.DataFrame({'j': [[1]] * 3000})\n"
                         "%hail push big\n%hail push nested\n%hail push big --as big_inline --via livy")
        assert res.status == "ok", res.text
        assert "big: pushed (pyspark.sql.dataframe.DataFrame, 5000 rows x 1 columns, staged as " in res.stdout
        assert "nested: pushed inline, not staged: column 'j' holds values other than" in res.stderr
        assert "big_inline: pushed (pyspark.sql.dataframe.DataFrame, 5000 rows x 1 columns)" in res.stdout
        res = kernel.run("%hail push nested --as nested2 --via staged")
        assert "--via staged cannot push nested2: column 'j'" in res.text and "--via livy" in res.text
        assert remote(session, "'nested2' in globals()") is False
        staging_dir = cfg / "local" / "staging"
        assert not staging_dir.exists() or list(staging_dir.iterdir()) == []
        # Ctrl-C while the cluster reads. Stand-in: the session's read is wrapped so that, after
        # reading the files, it runs a slow Spark job (what a big read on a busy cluster is).
        out = session.run(
            f"_hel_real_push = {NAMESPACE}.push_staged\n"
            "def _hel_slow(ns, staging, files, *a, **k):\n"
            "    import time\n"
            "    from pyspark.sql import functions as F, types as T\n"
            f"    {NAMESPACE}.read_spark(ns['spark'], staging, files).count()\n"
            "    slow = F.udf(lambda i: time.sleep(0.5) or i, T.LongType())\n"
            "    ns['spark'].range(0, 600, numPartitions=4).select(F.sum(slow('id'))).first()\n"
            "    return _hel_real_push(ns, staging, files, *a, **k)\n"
            f"{NAMESPACE}.push_staged = _hel_slow\n")
        assert out.ok, out.text
        try:
            res = kernel.run("%hail push big --as slowpush --via staged", timeout=600, interrupt_after=20)
            assert res.status == "error" and "was cancelled on the cluster" in res.text, res.text
        finally:
            assert session.run(f"{NAMESPACE}.push_staged = _hel_real_push").ok
        started = time.monotonic()  # the session is free long before the slow job could end (~150 s)
        assert remote(session, "'slowpush' in globals()") is False
        assert time.monotonic() - started < 90
        assert not staging_dir.exists() or list(staging_dir.iterdir()) == []
    finally:
        kernel.shutdown()
