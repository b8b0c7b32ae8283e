"""Kernel side of the staged ``-o`` transport: where results are staged, reading them, cleaning up.

For one pull the notebook offers the cluster up to two staging locations, tried in order:

* a local folder, ``<embedded state dir>/staging/<uuid>/`` (``~/.hail-emr-lab/local/staging``),
  holding a random token: a driver that can read the token shares this machine's files (the
  embedded server);
* ``s3://<bucket>/<prefix>/.hail-emr-lab/staging/<uuid>/`` when the configuration names the
  user's bucket and prefix (EMR: the executors write through EMRFS, the notebook reads with
  pyarrow's S3 filesystem and the notebook's own AWS credentials and ``AWS_ENDPOINT_URL``).

The cluster answers with the location it used (refused unless it is one offered here) and the
column names. The Parquet files are read one column at a time and converted with the same rules
as the inline Arrow path (:mod:`.arrow_frames`), so the kernel's peak stays near one frame.
Every location offered is deleted after the pull, whether it succeeded, failed or was
interrupted. The home sync never backs up the staging folder.

A staged ``%hail push`` uses the same locations the other way round: the cluster names the one
it can read, :meth:`StagingArea.write` writes the frame there as zstd Parquet (the S3 one with
the same filesystem and credentials as the read), the executors read it, and every location is
deleted afterwards in the same way.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pandas as pd

from ..errors import HailEmrLabError
from ..remote.codec import frame_from_columns
from ..sync.excludes import STAGING_DIR
from ..sync.keys import UnsafeKey, normalize_prefix
from .arrow_frames import arrow_column, pandas_from_arrow

#: Formats of a staged entry (``remote/staged.py``): Spark's Parquet, and a driver pandas frame's.
STAGED_FORMATS = ("parquet", "parquet-pandas")


#: Rows per Parquet row group a staged push writes (one progress step each).
ROW_GROUP_ROWS = 262_144
#: A staged push starts a new Parquet file past this many bytes: below Spark's default
#: ``spark.sql.files.maxPartitionBytes`` (128 MB), so a file is never split across partitions.
FILE_BYTES = 64 * 1024 * 1024


class StagingError(HailEmrLabError):
    """A staged pull cannot be set up, read or cleaned up."""


@dataclass(frozen=True)
class Location:
    """One staging location: a local folder path or an ``s3://bucket/key/`` URL (ends in ``/``)."""

    url: str
    local: bool
    token: Optional[str] = None

    def wire(self) -> dict[str, Any]:
        """What the cluster is told (``remote/staged.py: check_location``)."""
        return {"url": self.url, "token": self.token, "local": self.local}


def local_root() -> Path:
    """The embedded server's staging folder (under its state directory)."""
    from ..embedded.launcher import state_dir

    return state_dir() / "staging"


def s3_root(config) -> Optional[str]:
    """``s3://<bucket>/<prefix>/.hail-emr-lab/staging/`` from the configuration, or None.

    Raises :class:`StagingError` if the configured prefix is not usable.
    """
    bucket, prefix = config.get("bucket"), config.get("prefix")
    if not bucket or not prefix:
        return None
    try:
        return f"s3://{bucket}/{normalize_prefix(prefix)}/{STAGING_DIR}/"
    except UnsafeKey as exc:
        raise StagingError(f"cannot stage -o results in S3: {exc}") from None


def _local_location(folder: Path) -> Location:
    """Make ``folder`` (0700) holding a fresh random token (0600); raises OSError."""
    folder.mkdir(parents=True, mode=0o700)
    token = secrets.token_hex(16)
    fd = os.open(folder / "token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return Location(str(folder.resolve()) + "/", local=True, token=token)


class StagingArea:
    """The staging locations offered for one pull (see the module docstring)."""

    def __init__(self, locations: list[Location], s3_options: Optional[dict[str, Any]] = None,
                 unavailable: Optional[list[str]] = None) -> None:
        self.locations = locations
        #: Why a location was left out (see :meth:`open`).
        self.unavailable = unavailable or []
        self._s3_options = s3_options or {}
        self._s3 = None
        self._session = None

    @classmethod
    def open(cls, config) -> StagingArea:
        """Create the local folder (mode 0700, token 0600) and name the S3 location, if any.

        A location that cannot be set up is left out, and why is kept in ``unavailable``: a
        pull then stays inline rather than failing for a folder it may not need.
        """
        name = uuid.uuid4().hex
        locations, unavailable = [], []
        try:
            locations.append(_local_location(local_root() / name))
        except OSError as exc:
            unavailable.append(f"the local staging folder {local_root()} cannot be made ({exc})")
        try:
            root = s3_root(config)
        except StagingError as exc:
            root = None
            unavailable.append(str(exc))
        if root:
            locations.append(Location(root + name + "/", local=False))
        return cls(locations, {"region": config.get("region")}, unavailable)

    def _boto(self):
        if self._session is None:
            import boto3

            region = self._s3_options.get("region")
            self._session = boto3.Session(region_name=region) if region else boto3.Session()
        return self._session

    def wire(self) -> list[dict[str, Any]]:
        """The candidates, in the order the cluster tries them."""
        return [loc.wire() for loc in self.locations]

    def location_of(self, entry: dict[str, Any]) -> Location:
        """The offered location the cluster says it used; anything else is refused."""
        for loc in self.locations:
            if loc.url == entry.get("location"):
                return loc
        raise StagingError(
            f"the cluster staged {entry.get('name', 'a value')} at {entry.get('location')!r}, which is not a location "
            "this notebook offered; it was neither read nor deleted"
        )

    # ------------------------------------------------------------------ files

    def _filesystem(self, loc: Location):
        from pyarrow import fs

        if loc.local:
            return fs.LocalFileSystem(), loc.url.rstrip("/")
        if self._s3 is None:
            self._s3 = s3_filesystem(self._boto())
        parts = urlsplit(loc.url)
        return self._s3, parts.netloc + parts.path.rstrip("/")

    def parquet_files(self, loc: Location) -> tuple[Any, list[str], int]:
        """``(filesystem, data files in partition order, total bytes)`` of a staged frame."""
        from pyarrow import fs

        filesystem, root = self._filesystem(loc)
        infos = filesystem.get_file_info(fs.FileSelector(root + "/data", allow_not_found=True))
        files = sorted((i for i in infos if i.type == fs.FileType.File and i.base_name.endswith(".parquet")),
                       key=lambda i: i.base_name)  # part-00000-..., in Spark's partition order
        if not files:
            raise StagingError(f"the cluster staged no Parquet files at {loc.url}data")
        return filesystem, [i.path for i in files], sum(i.size for i in files)

    def read(
        self,
        entry: dict[str, Any],
        limit: Optional[int],
        on_progress: Optional[Callable[..., None]] = None,
    ) -> tuple[pd.DataFrame, int, bool, int]:
        """``(frame, rows, truncated, Parquet bytes read)`` of a staged entry, at most ``limit`` rows.

        ``on_progress(done, total, rows=)`` is told the Parquet bytes read so far (by column).
        Raises :class:`StagingError` for a location not offered here or missing files, and
        ``ValueError`` (from the dtype rules) for values pandas cannot hold.
        """
        import pyarrow.dataset as ds

        filesystem, files, total = self.parquet_files(self.location_of(entry))
        dataset = ds.dataset(files, format="parquet", filesystem=filesystem)
        rows = dataset.count_rows()
        truncated = limit is not None and rows > int(limit)
        keep = min(rows, int(limit)) if limit is not None else rows
        names = list(entry.get("columns") or dataset.schema.names)
        if on_progress:
            on_progress(0, total, rows=keep)
        if entry.get("format") == "parquet-pandas":
            # The driver cut the frame (slicing here would lose the row index's metadata).
            if limit is not None and rows > int(limit):
                raise StagingError(f"the cluster staged {rows:,} rows for a pull of at most {int(limit):,}")
            frame = pandas_from_arrow(dataset.to_table(), entry.get("columns"))
            if on_progress:
                on_progress(total, total, rows=rows)
            return frame, rows, bool(entry.get("truncated")), total
        arrays = []
        placeholders = dataset.schema.names
        for i, placeholder in enumerate(placeholders):
            # One column at a time: its Arrow buffers are freed before the next is read.
            col = dataset.to_table(columns=[placeholder]).column(0).slice(0, keep)
            arrays.append(arrow_column(names[i], col, entry.get("session_tz") or "UTC"))
            del col
            if on_progress:
                on_progress(total * (i + 1) // len(placeholders), total, rows=keep)
        return frame_from_columns(names, arrays, keep), keep, truncated, total

    def write(
        self,
        loc: Location,
        table: Any,
        on_progress: Optional[Callable[[int, int], None]] = None,
    ) -> tuple[list[str], int]:
        """Write ``table`` (a ``pyarrow.Table``) as zstd Parquet under ``<loc>/data/``.

        Returns ``(file names in row order, bytes written)``. Rows are cut into row groups of
        :data:`ROW_GROUP_ROWS`, and a new file starts past :data:`FILE_BYTES`, so each file is
        one Spark partition (read in parallel, in order). ``on_progress(done, total)`` reports
        bytes after each row group (``total`` extrapolated from the rows written so far).
        Raises OSError or pyarrow's errors; what was written stays for :meth:`cleanup`.
        """
        import pyarrow.parquet as pq

        filesystem, root = self._filesystem(loc)
        if loc.local:  # S3 has no folders: pyarrow would leave a marker object for each parent
            filesystem.create_dir(root + "/data")
        files: list[str] = []
        done, rows = 0, table.num_rows
        writer = sink = None
        try:
            for start in range(0, max(rows, 1), ROW_GROUP_ROWS):
                if writer is None:
                    files.append(f"part-{len(files):05d}.parquet")
                    sink = filesystem.open_output_stream(f"{root}/data/{files[-1]}")
                    writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
                writer.write_table(table.slice(start, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                if sink.tell() >= FILE_BYTES:
                    done += _close(writer, sink)
                    writer = sink = None
                if on_progress:
                    written = done + (sink.tell() if sink is not None else 0)
                    end = min(start + ROW_GROUP_ROWS, rows)
                    on_progress(written, max(written, written * rows // max(end, 1)))
            if writer is not None:
                done += _close(writer, sink)
                writer = sink = None
        finally:
            if writer is not None:  # failed or interrupted: the partial file is left for cleanup()
                try:
                    writer.close()
                finally:
                    sink.close()
        if on_progress:
            on_progress(done, done)
        return files, done

    def cleanup(self) -> list[str]:
        """Delete every offered location; returns the problems (empty when all went)."""
        problems = []
        for loc in self.locations:
            try:
                if loc.local:
                    shutil.rmtree(loc.url, ignore_errors=False) if os.path.exists(loc.url) else None
                else:
                    delete_s3_prefix(self._boto(), loc.url)
            except Exception as exc:  # reported to the user: a leftover must not pass silently
                problems.append(f"{loc.url}: {type(exc).__name__}: {exc}")
        return problems


def _close(writer, sink) -> int:
    """Finish one Parquet file (footer included); returns its size in bytes."""
    writer.close()
    size = sink.tell()
    sink.close()
    return size


def s3_filesystem(session):
    """pyarrow's S3 filesystem with the boto3 ``session``'s credentials and ``AWS_ENDPOINT_URL``.

    Raises :class:`StagingError` when there are no AWS credentials.
    """
    from pyarrow import fs

    creds = session.get_credentials()
    if creds is None:
        raise StagingError("reading staged results from S3 needs AWS credentials, and boto3 found none")
    frozen = creds.get_frozen_credentials()
    options: dict[str, Any] = {
        "access_key": frozen.access_key,
        "secret_key": frozen.secret_key,
        "session_token": frozen.token,
        "region": session.region_name or "us-east-1",
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    return fs.S3FileSystem(**options)


def delete_s3_prefix(session, url: str) -> None:
    """Delete every object under ``url`` (``s3://bucket/key/``) with boto3.

    Not pyarrow's ``delete_dir``: that leaves a folder marker for the parent behind.
    """
    parts = urlsplit(url)
    client = session.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=parts.path.lstrip("/")):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            answer = client.delete_objects(Bucket=parts.netloc, Delete={"Objects": keys, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StagingError(f"S3 kept {len(answer['Errors'])} staged object(s), e.g. {first.get('Key')}: "
                                   f"{first.get('Code')} {first.get('Message')}")
