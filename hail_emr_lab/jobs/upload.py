"""Stage a job's local files on S3 for the AWS backends (and remote Livy).

Local files go to ``s3://<bucket>/<prefix>/jobs/<job-name>/<stamp>/<file name>``; the stamp
keeps a rerun from overwriting files a still-running job may read. Files already on S3 are
used where they are. Everything is checked (files exist, no duplicate names, the bucket
exists and is reachable) before the first byte is uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from .aws import call
from .base import JobError
from .params import JobParamError


def is_remote(path: str) -> bool:
    """True for URIs a cluster can read directly (s3, hdfs, http...)."""
    return "://" in path or path.startswith("local:")


def check_local_files(paths: Sequence[str]) -> list[Path]:
    """The local files among ``paths``, checked to exist and be regular files."""
    out = []
    for raw in paths:
        if is_remote(raw):
            continue
        path = Path(raw).expanduser()
        if not path.exists():
            raise JobParamError(f"{raw}: no such file (give a local file or an s3:// URI)")
        if not path.is_file():
            raise JobParamError(f"{raw}: is a directory; zip it (e.g. for --py-files) or give a file")
        out.append(path)
    names = [p.name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise JobParamError(f"several files are named {dupes}: they would overwrite each other on S3; rename them")
    return out


def check_bucket(s3: Any, bucket: Optional[str]) -> str:
    """The bucket, after checking it exists and we may use it (clear errors otherwise)."""
    if not bucket:
        raise JobParamError(
            "local job files must be uploaded to S3 but no bucket is set: pass --bucket, set "
            "HAIL_EMR_LAB_JOBS_BUCKET or HAIL_EMR_LAB_BUCKET, or add \"bucket\" to the config file "
            "(or give s3:// URIs instead of local files)"
        )
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise JobParamError(
                f"S3 bucket {bucket!r} does not exist: check --bucket / the config key \"bucket\""
            ) from None
        if code in ("403", "AccessDenied"):
            raise JobParamError(f"no access to S3 bucket {bucket!r}: the notebook's role needs s3:ListBucket") from None
        raise JobError(f"checking S3 bucket {bucket!r}: {exc}") from None
    return bucket


def job_key_prefix(prefix: Optional[str], job_name: str, stamp: str) -> str:
    """``<prefix>/jobs/<job-name>/<stamp>`` (no leading or trailing slash)."""
    parts = [p for p in ((prefix or "").strip("/"), "jobs", job_name, stamp) if p]
    return "/".join(parts)


def stage(
    s3: Any, bucket: Optional[str], prefix: Optional[str], job_name: str, stamp: str, paths: Sequence[str]
) -> dict[str, str]:
    """Upload the local ones of ``paths``; returns ``{original: uri}`` for every path.

    Nothing is uploaded unless all checks pass.
    """
    local = check_local_files(paths)
    mapping = {p: p for p in paths if is_remote(p)}
    if not local:
        return mapping
    bucket = check_bucket(s3, bucket)
    base = job_key_prefix(prefix, job_name, stamp)
    for raw in paths:
        if is_remote(raw):
            continue
        path = Path(raw).expanduser()
        key = f"{base}/{path.name}"
        # s3transfer: multipart for big files, retries, the ecosystem's usual path.
        call(f"uploading {raw} to s3://{bucket}/{key}", s3.upload_file, Filename=os.fspath(path), Bucket=bucket, Key=key)
        mapping[raw] = f"s3://{bucket}/{key}"
    return mapping
