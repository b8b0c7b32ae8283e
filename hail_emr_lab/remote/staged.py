"""Cluster side of the staged ``-o`` transport: the executors write Parquet, the driver collects nothing.

Exec'd after ``codec.py`` and ``dataframe.py`` (Python 3.7+; pyspark, pandas, numpy; pyarrow only
for a pandas frame held on the driver). The notebook names a staging location it created; this
module checks that it may write there, writes the frame under ``<location>/data`` and answers
with the location and the column names only. Columns travel under positional names
(``_hel_col_<i>``: Parquet refuses repeated names) and every timestamp as TIMESTAMP_MICROS, an
instant in UTC (Parquet format spec, "Timestamp"), so the notebook applies the session time zone
exactly as it does for Arrow. If the write fails or is cancelled, what it left is deleted here.

The read side serves a staged ``%hail push``: the notebook wrote Parquet files to a location it
offered, checked here as for a write (:func:`readable_location`), and the executors read them
(:func:`read_spark`), or the driver with pyarrow for a pandas frame (:func:`read_pandas`).
"""

import os
import re

if "hail_to_spark" not in globals():  # imported locally (tests); on the cluster dataframe.py came first
    from hail_emr_lab.remote.dataframe import _session_tz, _spark_session, check_struct_names, have_arrow

#: Under this relative path of the user's prefix the notebook names S3 staging locations; the
#: driver refuses to write to any other S3 key (a local folder is proven by its token instead).
STAGING_MARK = "/.hail-emr-lab/staging/"
#: Spark SQL settings for the staging write (Spark configuration docs, "Parquet"): instants as
#: microseconds in UTC, and dates/timestamps written as they are (proleptic Gregorian, what
#: pyarrow reads) instead of failing on pre-1582 values.
PARQUET_CONF = (
    ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"),
    ("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED"),
    ("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED"),
)
#: Spark's sizeInBytes when it cannot estimate a plan (spark.sql.defaultSizeInBytes, Long.MaxValue).
UNKNOWN_SIZE = 2 ** 62


def placeholder(i):
    """The Parquet name of column ``i`` of a staged frame, either way (names may repeat; Parquet's may not)."""
    return "_hel_col_%d" % i


class StagingRefused(ValueError):
    """The staging location is not one the notebook made for this pull."""


def check_location(staging):
    """The write URL for ``staging`` (``{"url", "token", "local"}``), or raise :class:`StagingRefused`.

    A local location must hold the token the notebook wrote (proof that this driver sees the
    notebook's filesystem) and Spark must run in local mode (executors on this machine).
    """
    url = str(staging.get("url") or "")
    if staging.get("local"):
        try:
            with open(os.path.join(url, "token")) as fh:
                seen = fh.read().strip()
        except OSError:
            seen = None
        if not staging.get("token") or seen != staging.get("token"):
            raise StagingRefused("the notebook's staging folder is not visible to the Spark driver")
        return "file://" + url.rstrip("/") + "/data"
    if not url.startswith("s3://") or STAGING_MARK not in url:
        raise StagingRefused("staging location %r is not an s3:// URL under a .hail-emr-lab/staging/ folder" % url)
    return url.rstrip("/") + "/data"


def shared_local_ok(spark):
    """True when the executors run in the driver's process (``local[...]`` master)."""
    return spark.sparkContext.master.startswith("local")


def estimate_spark(df):
    """Spark's own size estimate of ``df`` in bytes (Catalyst statistics), or None when unknown."""
    try:
        # A Scala BigInt: py4j hands it over as a Python int, or as an object whose str() is
        # its toString(); int(str(...)) reads both.
        size = int(str(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    except Exception:  # a Spark without this API: the caller probes instead
        return None
    return None if size >= UNKNOWN_SIZE else size


def row_width(df):
    """Spark's default bytes per row of ``df``'s schema (strings count 20 bytes)."""
    try:
        return max(1, int(df._jdf.schema().defaultSize()))
    except Exception:
        return 64


def estimate_pandas(pdf):
    """A cheap size estimate of a pandas frame in bytes (object cells counted as 50 bytes)."""
    total = 0
    for i in range(pdf.shape[1]):
        col = pdf.iloc[:, i]
        total += len(col) * (50 if col.dtype == object else col.dtype.itemsize if hasattr(col.dtype, "itemsize") else 16)
    return total


def _delete(spark, url):
    """Delete ``url`` recursively through Hadoop's FileSystem (local and s3 alike)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(url)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)


def _writable(df):
    """``df`` with positional column names, and void columns (which Parquet cannot hold) as strings."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = df.schema.fields
    flat = df.toDF(*[placeholder(i) for i in range(len(fields))])
    cols = []
    for i, f in enumerate(fields):
        c = F.col(placeholder(i))
        cols.append(c.cast("string").alias(placeholder(i)) if isinstance(f.dataType, T.NullType) else c)
    return flat.select(*cols)


def stage_spark(df, staging, limit=None):
    """Write ``df`` (at most ``limit`` + 1 rows) as Parquet to the checked staging location.

    Returns the entry fields ``{"location", "columns", "session_tz"}``; raises Spark's error
    (after deleting what the write left).
    """
    url = check_location(staging)
    spark = _spark_session(df)
    check_struct_names(df.schema)
    names = [f.name for f in df.schema.fields]
    if limit is not None:
        df = df.limit(int(limit) + 1)
    saved = [(key, spark.conf.get(key, None)) for key, _ in PARQUET_CONF]
    try:
        for key, value in PARQUET_CONF:
            spark.conf.set(key, value)
        _writable(df).write.parquet(url, compression="snappy")
    except BaseException:
        # The whole location, not only data/: a task still running after a cancel may have made
        # the folders again after the notebook deleted them.
        _delete(spark, url[: -len("/data")])
        raise
    finally:
        for key, value in saved:
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    return {"location": staging["url"], "columns": names, "session_tz": _session_tz(spark)}


def stage_pandas(pdf, staging, limit=None):
    """Write a pandas frame held on the driver as one Parquet file (pandas metadata kept).

    Needs pyarrow on the driver. Returns ``{"location", "columns", "truncated"}``: ``columns``
    only when names repeat (they travel as placeholders), else the frame's pandas metadata
    brings its labels, column index and row index back as they were.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    url = check_location(staging)
    truncated = limit is not None and len(pdf) > int(limit)
    if truncated:
        pdf = pdf.iloc[: int(limit)]  # cut here: a cut Arrow table would lose the index's metadata
    names = list(pdf.columns)
    columns = None
    if len(set(names)) != len(names):
        # Arrow refuses repeated names: placeholders and the real names beside them (as inline).
        columns = [str(n) for n in names]
        pdf = pdf.set_axis([placeholder(i) for i in range(len(names))], axis=1)
    table = pa.Table.from_pandas(pdf)  # its pandas metadata keeps labels, column and row index
    filesystem, root = _arrow_fs(url)
    filesystem.create_dir(root)
    try:
        pq.write_table(table, root + "/part-00000.parquet", filesystem=filesystem, compression="snappy")
    except BaseException:
        filesystem.delete_dir(root)
        raise
    return {"location": staging["url"], "columns": columns, "truncated": truncated}


def _arrow_fs(url):
    """``(pyarrow filesystem, path)`` of a checked ``file://`` or ``s3://`` URL (S3: the driver's credentials)."""
    from pyarrow import fs as pafs

    if url.startswith("file://"):
        return pafs.LocalFileSystem(), url[len("file://"):]
    return pafs.FileSystem.from_uri(url)


def stage_frame(kind, frame, stagings, limit=None):
    """Stage what ``frame_of`` gave at the first usable location of ``stagings``.

    Returns ``(format, entry fields)``; raises :class:`StagingRefused` when no location is
    usable or the kind cannot be staged, before anything is written.
    """
    if kind not in ("spark", "hail", "pandas"):
        raise StagingRefused("only Spark DataFrames, Hail Tables and pandas frames can be staged")
    if kind == "pandas" and not have_arrow():
        raise StagingRefused("a pandas frame on the driver can only be staged with pyarrow there")
    spark = None if kind == "pandas" else _spark_session(frame)
    reasons = []
    for staging in stagings or ():
        try:
            check_location(staging)
            if staging.get("local") and spark is not None and not shared_local_ok(spark):
                raise StagingRefused("the Spark executors do not run on the notebook's machine")
        except StagingRefused as exc:
            reasons.append(str(exc))
            continue
        if kind == "pandas":
            return "parquet-pandas", stage_pandas(frame, staging, limit)
        return "parquet", stage_spark(frame, staging, limit)
    raise StagingRefused("; ".join(reasons) or "the notebook named no staging location")


def estimate(kind, frame, limit):
    """Bytes ``-o`` would move for ``frame`` (at most ``limit`` rows), or None when Spark cannot tell."""
    if kind == "pandas":
        return estimate_pandas(frame if limit is None else frame.iloc[: int(limit)])
    return estimate_spark(frame if limit is None else frame.limit(int(limit)))


# ---------------------------------------------------------------------- read side (staged push)

#: Names of the Parquet files a staged push writes (``notebook/staging.py: StagingArea.write``).
PUSHED_FILE = re.compile(r"part-[0-9]{5}\.parquet")


def readable_location(spark, stagings, as_pandas):
    """The first of ``stagings`` this session may read a pushed frame from, or raise :class:`StagingRefused`.

    The same checks as a pull's write (:func:`check_location`); a local folder also needs the
    executors on this machine (unless the driver reads it into pandas, which needs pyarrow).
    """
    if as_pandas and not have_arrow():
        raise StagingRefused("reading a staged push into pandas needs pyarrow on the driver")
    reasons = []
    for staging in stagings or ():
        try:
            check_location(staging)
            if staging.get("local") and not as_pandas and not shared_local_ok(spark):
                raise StagingRefused("the Spark executors do not run on the notebook's machine")
        except StagingRefused as exc:
            reasons.append(str(exc))
            continue
        return staging
    raise StagingRefused("; ".join(reasons) or "the notebook named no staging location")


def _pushed_paths(staging, files):
    """The checked data URL of ``staging`` joined with each pushed file name (nothing else is read)."""
    url = check_location(staging)
    if not files or any(not PUSHED_FILE.fullmatch(str(f)) for f in files):
        raise StagingRefused("the notebook named no Parquet files, or files not of its own naming")
    return [url + "/" + f for f in files]


def read_spark(spark, staging, files):
    """A Spark DataFrame of the pushed Parquet ``files``, rows in file order (executors read).

    Each file is one scan, and the scans are joined with ``union`` (which keeps partition
    order); files written before Spark 3 rules are read as written (proleptic Gregorian
    dates, as pyarrow writes them). Lazy: the caller materialises it before the files go.
    """
    reader = spark.read.option("datetimeRebaseMode", "CORRECTED").option("int96RebaseMode", "CORRECTED")
    frames = [reader.parquet(path) for path in _pushed_paths(staging, files)]
    df = frames[0]
    for more in frames[1:]:
        df = df.union(more)
    return df


def read_pandas(staging, files):
    """A pandas frame of the pushed Parquet ``files`` (pandas' own metadata applied), read on the driver."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path in _pushed_paths(staging, files):
        filesystem, root = _arrow_fs(path)
        tables.append(pq.read_table(root, filesystem=filesystem))
    return pa.concat_tables(tables).to_pandas()
