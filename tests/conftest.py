"""Shared fixtures: real servers over HTTP, isolated configuration.

* ``livy_server``: one embedded Livy-protocol server (real PySpark + Hail) for the whole
  run; each test module creates its own Livy session on it (one Spark JVM per session, so
  keep sessions few: share one per module).
* ``moto_server``: a moto server in its own process; boto3 reaches it through
  ``AWS_ENDPOINT_URL`` exactly as it would reach S3.
* every test runs with its own empty hail-emr-lab configuration (no ~/.hail-emr-lab,
  no ~/.sparkmagic, no SageMaker metadata) unless it writes one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support.net import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Point every hail-emr-lab config source at an empty private directory."""
    cfg_dir = tmp_path_factory.mktemp("cfg")
    for key in list(os.environ):
        if key.startswith("HAIL_EMR_LAB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HAIL_EMR_LAB_CONFIG", str(cfg_dir / "config.json"))
    monkeypatch.setenv("HAIL_EMR_LAB_SPARKMAGIC_CONFIG", str(cfg_dir / "sparkmagic.json"))
    monkeypatch.setenv("HAIL_EMR_LAB_METADATA", str(cfg_dir / "resource-metadata.json"))
    return cfg_dir


@pytest.fixture(scope="session")
def livy_server(tmp_path_factory):
    """The embedded Livy server, started once per test run (``.url``, ``.plots_dir``)."""
    from hail_emr_lab.embedded.server import EmbeddedLivy

    plots = tmp_path_factory.mktemp("plots")
    server = EmbeddedLivy(host="127.0.0.1", port=0, plots_dir=str(plots), max_sessions=6)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server():
    """A moto server process; yields its endpoint URL. Tests set AWS_ENDPOINT_URL to it."""
    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/moto-api/")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    """AWS settings that send every boto3 client (and the aws CLI) to the moto server."""
    requests.post(moto_server + "/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return moto_server


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and other artifacts (not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
