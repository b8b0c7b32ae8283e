"""Shared helpers of the sync tests (no tests here): S3 is the moto server behind
:class:`s3_proxy.S3Proxy` (request counting, and the conditional completion of multipart
uploads that S3 does and moto does not)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from support.s3_proxy import S3Proxy

ROOT = Path(__file__).resolve().parents[2]

BUCKET = "sync-test-bucket"
PREFIX = "alice"


@pytest.fixture(name="s3")
def s3_fixture(aws_env, monkeypatch):
    """moto behind :class:`S3Proxy`: the sync talks to ``proxy.url``; ``client`` goes direct."""
    proxy = S3Proxy(aws_env).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield SimpleNamespace(proxy=proxy, client=client, bucket=BUCKET, moto=aws_env)
    finally:
        proxy.stop()


def cli(home: Path, *args: str, timeout: float = 180, env: dict | None = None,
        wrap: list[str] | None = None, prefix: str = PREFIX, bucket: str = BUCKET) -> subprocess.CompletedProcess:
    """Run ``hail-emr-lab sync ARGS --home HOME --bucket BUCKET --prefix PREFIX`` for real."""
    cmd = [*(wrap or []), sys.executable, "-m", "hail_emr_lab", "sync", *args,
           "--home", str(home), "--bucket", bucket, "--prefix", prefix]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ))


def remote_objects(client, prefix: str = PREFIX + "/") -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


def local_files(home: Path) -> dict[str, bytes]:
    """Every regular file under ``home`` except the sync's own state folder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(home):
        dirnames[:] = [d for d in dirnames if d != ".hail-emr-lab-sync"]
        for name in filenames:
            p = Path(dirpath, name)
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(home).as_posix()] = p.read_bytes()
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def puts(proxy) -> list[str]:
    return [path for method, path in proxy.requests if method in ("PUT", "POST")]
