"""The staged ``-o`` transport with real Spark: identical frames to the inline one, no leftovers.

The cluster-side code runs as the session runs it (the bootstrap text exec'd into a namespace)
against a local SparkSession in this process; the kernel side (:mod:`hail_emr_lab.notebook.staging`)
reads the Parquet files it wrote. Livy itself is not involved here: the kernel-level cases
(test_transfer_kernel_cases.py) run the same code through the embedded Livy over HTTP.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os

import boto3
import pandas as pd
import pytest
import test_transfer_codec as cases

from hail_emr_lab.config import load_config
from hail_emr_lab.notebook import staging, transfer
from hail_emr_lab.remote import bootstrap_code
from hail_emr_lab.remote.dataframe import MARKER

pytestmark = pytest.mark.slow
#: The local SparkSession of the codec tests (a module-scoped fixture: one per module that uses it).
spark = cases.spark


@pytest.fixture
def remote(spark, tmp_path, monkeypatch):
    """The session's ``_hail_emr_lab`` namespace, and a private embedded state dir."""
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path / "local"))
    ns: dict = {"__name__": "__main__", "spark": spark}
    exec(bootstrap_code(), ns)
    return ns


def _call(ns, names, **kw):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ns["_hail_emr_lab"].pull(ns, names, **kw)
    return json.loads(buf.getvalue().split(MARKER)[-1])


def pull_via(ns, name, via, limit=None, stage_above=4_000_000, config=None):
    """``(Pulled, entry)`` of ``ns[name]`` through ``via``, staging locations cleaned up after."""
    area = staging.StagingArea.open(config or load_config()) if via != "livy" else None
    try:
        kw = {"limit": limit, "via": via, "stage_above": stage_above}
        if area is not None:
            kw["stagings"] = area.wire()
        (entry,) = _call(ns, [name], **kw)
        return transfer._receive(None, entry, limit, None, None, area), entry
    finally:
        if area is not None:
            assert area.cleanup() == []


def staging_leftovers() -> list[str]:
    root = staging.local_root()
    return sorted(os.listdir(root)) if root.exists() else []


def same_frames(staged: pd.DataFrame, inline: pd.DataFrame) -> None:
    """Names, dtypes and values by position (repeated names allowed)."""
    assert list(staged.columns) == list(inline.columns)
    assert [str(t) for t in staged.dtypes] == [str(t) for t in inline.dtypes]
    for i in range(inline.shape[1]):
        pd.testing.assert_series_equal(staged.iloc[:, i], inline.iloc[:, i], check_names=False)


SPARK_CASES = {
    "all_types": cases._all_types_df,
    "joined_repeated_names": cases._joined,
    "nested_timestamps": lambda spark: spark.sql(
        "SELECT timestamp'2020-06-01 12:00:00' AS top,"
        " named_struct('t', timestamp'2020-06-01 12:00:00', 'n', 1) AS st,"
        " array(timestamp'2020-06-01 12:00:00', timestamp'1950-12-31 23:59:59.000001', NULL) AS arr,"
        " map('k', timestamp'2020-03-08 03:00:00') AS mp, CAST(NULL AS STRING) AS nothing, NULL AS void"),
    "ordered_partitions": lambda spark: spark.range(0, 20000, numPartitions=7)
    .selectExpr("id", "concat('rs', id) AS variant", "rand(3) AS p").orderBy("p"),
    "empty": lambda spark: spark.range(0).selectExpr("id", "cast(id as string) AS s"),
}


@pytest.mark.parametrize("case", sorted(SPARK_CASES))
def test_spark_frames_staged_equal_inline(remote, spark, case):
    remote["df"] = SPARK_CASES[case](spark)
    inline, ientry = pull_via(remote, "df", "livy")
    staged, sentry = pull_via(remote, "df", "staged")
    assert ientry["format"] == "arrow" and sentry["format"] == "parquet" and "data" not in sentry
    same_frames(staged.value, inline.value)
    assert staged.rows == len(inline.value) and not staged.truncated
    assert staging_leftovers() == []


def test_limit_cuts_and_says_so(remote, spark):
    remote["df"] = spark.range(0, 1000, numPartitions=4).selectExpr("id", "id * 2 AS twice")
    staged, _ = pull_via(remote, "df", "staged", limit=10)
    inline, _ = pull_via(remote, "df", "livy", limit=10)
    same_frames(staged.value, inline.value)
    assert staged.truncated and inline.truncated and staged.rows == 10


@pytest.mark.parametrize("case", ["typed", "repeated_names", "index_and_times"])
def test_remote_pandas_frames_staged_equal_inline(remote, case):
    frames = {
        "typed": pd.DataFrame({
            "i": pd.array([1, None, 3], dtype="Int64"), "f": pd.array([0.5, None, float("nan")], dtype="Float64"),
            "b": pd.array([True, None, False], dtype="boolean"), "s": ["é", None, "x"],
            "c": pd.Categorical(["a", "b", "a"]), "n": [1.5, float("nan"), 2.0]}),
        "repeated_names": pd.concat([pd.DataFrame({"k": [1, 2], "v": pd.array([1, None], dtype="Int64")}),
                                     pd.DataFrame({"v": ["a", None], "k": [0.5, float("nan")]})], axis=1),
        "index_and_times": pd.DataFrame(
            {"t": pd.to_datetime(["2020-01-01 00:00:00.000000001", None]).tz_localize("Europe/Paris"),
             "d": pd.to_timedelta([1, None], unit="s")},
            index=pd.Index(["a", "b"], name="key")),
    }
    remote["pdf"] = frames[case]
    inline, ientry = pull_via(remote, "pdf", "livy")
    staged, sentry = pull_via(remote, "pdf", "staged")
    assert ientry["format"] == "arrow-pandas" and sentry["format"] == "parquet-pandas"
    pd.testing.assert_frame_equal(staged.value, inline.value)
    pd.testing.assert_frame_equal(staged.value, frames[case])


def test_auto_stages_by_estimated_size(remote, spark):
    remote["small"] = spark.createDataFrame([(1, "a")], "k long, v string")
    remote["big"] = spark.range(0, 5000).selectExpr("id", "concat('rs', id) AS variant")
    # Spark cannot estimate an RDD's size: a bounded collect decides.
    remote["rdd_small"] = spark.createDataFrame(spark.sparkContext.parallelize([(1, "a"), (2, "b")]), "k long, v string")
    remote["rdd_big"] = spark.createDataFrame(spark.sparkContext.parallelize([(i, "x" * 10) for i in range(3000)]),
                                              "k long, v string")
    formats = {name: pull_via(remote, name, "auto", stage_above=20_000)[1]["format"]
               for name in ("small", "big", "rdd_small", "rdd_big")}
    assert formats == {"small": "arrow", "big": "parquet", "rdd_small": "arrow", "rdd_big": "parquet"}
    got, _ = pull_via(remote, "rdd_big", "auto", stage_above=20_000)
    assert got.value["k"].tolist() == list(range(3000))
    # JSON-able values are never staged.
    remote["answer"] = {"x": [1, 2]}
    assert pull_via(remote, "answer", "auto", stage_above=1)[0].value == {"x": [1, 2]}


def test_spark_sizes_a_planned_frame(remote, spark):
    """Catalyst's estimate reaches the choice (py4j hands sizeInBytes over as a Python int: a
    .toString() on it had failed, so every frame took the bounded-collect path)."""
    from hail_emr_lab.remote.staged import estimate_spark

    df = spark.range(0, 5000).selectExpr("id", "concat('rs', id) AS variant")
    size = estimate_spark(df)
    assert isinstance(size, int) and 5000 * 8 <= size < 10_000_000, size
    rdd = spark.createDataFrame(spark.sparkContext.parallelize([(1, "a")]), "k long, v string")
    assert estimate_spark(rdd) is None  # Spark cannot size an RDD's rows: the caller measures


def test_a_frame_spark_cannot_size_is_sized_by_its_real_rows(remote, spark):
    """Spark counts one element per array in a schema's default row size: 2,000 rows of 2,000
    doubles (32 MB) looked like 16 KB, so auto collected all of it on the driver and sent it
    inline. The bounded collect measures real rows: it stages, and the driver collected at
    most a sample and about ``stage_above`` bytes."""
    rows = spark.sparkContext.parallelize([(i, [float(i)] * 2000) for i in range(2000)], 4)
    remote["wide"] = spark.createDataFrame(rows, "k long, v array<double>")
    _, entry = pull_via(remote, "wide", "auto", stage_above=4_000_000)
    assert entry["format"] == "parquet", entry
    remote["narrow"] = spark.createDataFrame(spark.sparkContext.parallelize([(i, [1.0] * 3) for i in range(1500)]),
                                             "k long, v array<double>")
    got, entry = pull_via(remote, "narrow", "auto", stage_above=4_000_000)
    assert entry["format"] == "arrow" and len(got.value) == 1500


def test_a_write_that_fails_half_way_leaves_no_files(remote, spark):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def boom(i):
        if i >= 7000:  # the last partitions fail after the first ones wrote their files
            raise RuntimeError(f"row {i} is bad")
        return i

    remote["bad"] = spark.range(0, 8000, numPartitions=8).select(F.udf(boom, T.LongType())("id").alias("v"))
    area = staging.StagingArea.open(load_config())
    local = area.locations[0].url
    with pytest.raises(Exception, match="row 7"):
        _call(remote, ["bad"], via="staged", stagings=area.wire())
    assert not os.path.exists(local)  # the driver deleted the whole location it wrote to
    assert area.cleanup() == [] and staging_leftovers() == []


def test_staging_elsewhere_is_refused(remote, spark):
    mod = remote["_hail_emr_lab"]
    remote["df"] = spark.range(3)
    for bad, why in [
        ({"url": "s3://bucket/alice/data/", "local": False}, "not an s3:// URL under a .hail-emr-lab/staging/"),
        ({"url": "/tmp/elsewhere/", "local": True, "token": "x"}, "not visible to the Spark driver"),
    ]:
        with pytest.raises(mod.StagingRefused, match=why):
            _call(remote, ["df"], via="staged", stagings=[bad])
    # A local folder made by the notebook but with another token: refused too.
    area = staging.StagingArea.open(load_config())
    forged = dict(area.wire()[0], token="0" * 32)
    with pytest.raises(mod.StagingRefused, match="not visible"):
        _call(remote, ["df"], via="staged", stagings=[forged])
    # The notebook reads and deletes only what it offered.
    with pytest.raises(staging.StagingError, match="not a location this notebook offered"):
        area.read({"name": "df", "location": "s3://other-bucket/x/", "format": "parquet"}, None)
    assert area.cleanup() == []


def test_s3_read_path_against_moto(remote, spark, aws_env, isolated_config):
    """The notebook reads staged Parquet from S3 (moto over HTTP) and deletes it.

    Stand-in: boto3 uploads the files the executors wrote locally, where on EMR they would
    write them through EMRFS; the reading and deleting are the real code.
    """
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lab-bucket")
    isolated_config.joinpath("config.json").write_text(json.dumps({"bucket": "lab-bucket", "prefix": "alice"}))
    config = load_config()
    remote["df"] = cases._all_types_df(spark)
    inline, _ = pull_via(remote, "df", "livy")
    area = staging.StagingArea.open(config)
    local, remote_loc = area.locations
    assert remote_loc.url.startswith("s3://lab-bucket/alice/.hail-emr-lab/staging/")
    try:
        (entry,) = _call(remote, ["df"], via="staged", stagings=[local.wire()])
        key_root = remote_loc.url[len("s3://lab-bucket/"):]
        for dirpath, _, files in os.walk(os.path.join(local.url, "data")):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), local.url)
                s3.upload_file(os.path.join(dirpath, f), "lab-bucket", key_root + rel)
        entry["location"] = remote_loc.url
        got = transfer._receive(None, entry, None, None, None, area)
        same_frames(got.value, inline.value)
    finally:
        assert area.cleanup() == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="lab-bucket", Prefix="alice/").get("Contents", [])] == []


def test_out_of_range_timestamps_fail_clearly_when_staged(remote, spark):
    remote["old"] = spark.createDataFrame([(datetime.datetime(1500, 1, 1),)], "t timestamp")
    with pytest.raises(transfer.TransferError, match="column 't' holds timestamps outside the years pandas can hold"):
        pull_via(remote, "old", "staged")
    assert staging_leftovers() == []


def test_an_unreadable_s3_staging_location_is_a_clear_error(aws_env, isolated_config, monkeypatch):
    """S3 unreachable (or refusing, or in another region) while the notebook reads staged files:
    one message naming the location and what to do, not pyarrow's bare OSError."""
    from support.net import free_port

    isolated_config.joinpath("config.json").write_text(json.dumps({"bucket": "lab-bucket", "prefix": "alice"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    area = staging.StagingArea.open(load_config())
    s3_loc = [loc for loc in area.locations if not loc.local][0]
    entry = {"name": "df", "kind": "spark", "format": "parquet", "location": s3_loc.url, "columns": ["a"]}
    with pytest.raises(transfer.TransferError, match="reading the staged Parquet at s3://lab-bucket/alice/") as err:
        transfer._receive(None, entry, None, None, None, area)
    assert "--via livy" in str(err.value)
