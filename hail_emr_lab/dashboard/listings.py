"""The Clusters and Jobs sections: active EMR clusters and the jobs submitted from here."""

from __future__ import annotations

import os
from typing import Any

from ..errors import HailEmrLabError
from .jsonable import jsonable

JOBS_LIMIT = 50


def aws_configured() -> tuple[bool, str]:
    """Whether boto3 finds credentials (env, profile, instance role); the reason when not."""
    try:
        import boto3
    except ImportError:
        return False, "boto3 is not installed"
    try:
        creds = boto3.Session().get_credentials()
    except Exception as exc:  # botocore raises many kinds for a broken profile
        return False, f"the AWS configuration could not be read: {type(exc).__name__}: {exc}"
    if creds is None:
        return False, "no AWS credentials found (environment, ~/.aws or an instance role)"
    if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or boto3.Session().region_name):
        return False, "no AWS region configured (set AWS_DEFAULT_REGION or region in ~/.aws/config)"
    return True, ""


def clusters() -> dict[str, Any]:
    """Active EMR clusters (name, id, Livy URL, reachable) when AWS is configured."""
    out: dict[str, Any] = {"available": False, "clusters": [], "error": None}
    ok, why = aws_configured()
    if not ok:
        out["error"] = why
        return out
    from ..emr.discovery import list_clusters

    out["available"] = True
    try:
        out["clusters"] = jsonable(list(list_clusters()))
    except HailEmrLabError as exc:
        out["error"] = str(exc)
    return out


def jobs(limit: int = JOBS_LIMIT) -> dict[str, Any]:
    """The newest ``limit`` jobs remembered by ``hail_emr_lab.jobs.store``."""
    from ..jobs.store import list_jobs

    out: dict[str, Any] = {"available": True, "jobs": [], "error": None}
    try:
        out["jobs"] = jsonable(list(list_jobs(limit=limit)))
    except HailEmrLabError as exc:
        out["error"] = str(exc)
    return out
