"""Driver logs on S3 (EMR Serverless, EMR on EKS): gzip objects read as a stream.

EMR uploads ``stdout.gz`` / ``stderr.gz`` and replaces them as the driver writes more, so
following a log means re-reading the object when it changes and yielding only the lines
not seen yet.
"""

from __future__ import annotations

import gzip
import io
import time
from typing import Any, Callable, Iterator, Optional

from .aws import call, split_s3_uri
from .base import JobNotFound


def iter_gzip_lines(s3: Any, bucket: str, key: str) -> Iterator[str]:
    """Lines of a gzip object, decompressed as they arrive (never the whole file in memory)."""
    body = call(f"reading s3://{bucket}/{key}", s3.get_object, Bucket=bucket, Key=key)["Body"]
    try:
        with gzip.GzipFile(fileobj=body, mode="rb") as gz:
            for raw in io.TextIOWrapper(gz, encoding="utf-8", errors="replace"):
                yield raw.rstrip("\n")
    finally:
        body.close()


def object_etag(s3: Any, bucket: str, key: str) -> Optional[str]:
    """The object's ETag, or None when it does not exist (yet)."""
    try:
        return call(f"checking s3://{bucket}/{key}", s3.head_object, Bucket=bucket, Key=key).get("ETag")
    except JobNotFound:
        return None


def find_keys(s3: Any, uri_prefix: str, suffix: str) -> list[str]:
    """Keys under ``uri_prefix`` ending with ``suffix`` (sorted)."""
    bucket, prefix = split_s3_uri(uri_prefix)
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    try:
        for page in call(f"listing {uri_prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix))):
            keys += [obj["Key"] for obj in page.get("Contents") or [] if obj["Key"].endswith(suffix)]
    except JobNotFound:
        return []
    return sorted(keys)


def follow_object(
    s3: Any,
    locate: Callable[[], Optional[str]],
    is_done: Callable[[], bool],
    follow: bool,
    interval: float = 2.0,
    where: str = "S3",
) -> Iterator[str]:
    """Yield the lines of the log object ``locate()`` returns (an ``s3://`` URI or None while
    it does not exist). With ``follow``, keep re-reading when the object changes until
    ``is_done()`` and one last read found nothing new. No log at all when the job is over
    (or, without ``follow``, now) is an error naming ``where``."""
    seen = 0
    etag = None
    found = False
    while True:
        done = is_done() if follow else True  # read the state first: no line is lost at the end
        uri = locate()
        if uri:
            bucket, key = split_s3_uri(uri)
            current = object_etag(s3, bucket, key)
            found = found or current is not None
            if current is not None and current != etag:
                etag = current
                for n, line in enumerate(iter_gzip_lines(s3, bucket, key)):
                    if n >= seen:
                        seen = n + 1
                        yield line
        if done:
            if not found:
                raise JobNotFound(
                    f"no driver log at {where} (yet): EMR uploads it while the driver runs and when it ends"
                )
            return
        time.sleep(interval)
