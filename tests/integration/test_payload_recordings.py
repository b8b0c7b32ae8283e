"""The sidebar's recorded API answers are what the real server extension sends.

The labextension's jest tests render each sidebar section from JSON answers kept in
``labextension/src/__tests__/fixtures/``. Here a real jupyter_server with the extension
(pytest-jupyter's ``jp_fetch``) answers every section from real parts: the embedded Livy (one
session, a running Spark job for the Running section), moto's S3, EMR and EMR Serverless, the
SSM stand-in for ``DescribeInstanceInformation``, a jobs store and a plots folder on disk. Each
answer must have exactly the fields its ``hail_emr_lab.dashboard.payloads`` TypedDict declares
and the fields of its recording, so a server change the sidebar does not know about fails here.

``HAIL_EMR_LAB_RECORD_PAYLOADS=1 pytest tests/integration/test_payload_recordings.py`` writes
the recordings anew (temporary paths scrubbed, checked free of credentials).

Not covered: real AWS (moto and the stand-in answer whatever they are asked), a serverless
endpoint reached over the internet (the status's Livy URL is the embedded server; the serverless
sessions are listed through the tests' SigV4 gateway in front of it).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import test_server_handlers as server_tests
from jupyter_core.paths import jupyter_runtime_dir
from support.emr_cluster import moto_emr_cluster
from support.sigv4_gateway import SigV4Gateway
from support.ssm_standin import SsmStandIn

from hail_emr_lab.dashboard import payloads
from hail_emr_lab.server.handlers import API

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FIXTURES = Path(__file__).resolve().parents[2] / "labextension" / "src" / "__tests__" / "fixtures"
RECORD = os.environ.get("HAIL_EMR_LAB_RECORD_PAYLOADS") == "1"

# The REST API tests' fixtures: the extension enabled, one Livy session of the user's own, the
# environment that points the server at it.
jp_server_config = server_tests.jp_server_config
livy_session = server_tests.livy_session
livy_env = server_tests.livy_env


def keys_of(value: Any, path: str = "") -> set[str]:
    """Every field path in ``value`` (``nodes[].shell``); list items are merged."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(f"{path}.{key}" if path else key)
            out |= keys_of(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            out |= keys_of(item, f"{path}[]")
    return out


def scrub(text: str, tmp: Path) -> str:
    return text.replace(str(tmp), "/home/ec2-user")


async def answer(jp_fetch, route: str, name: str, typed: type, tmp: Path, free_form: tuple[str, ...] = (),
                 **params: str) -> dict[str, Any]:
    """GET ``route``; check its fields against ``typed`` and the recording ``name``.json (or write it)."""
    response = await jp_fetch(*API.split("/"), route, params=params or None)
    assert response.code == 200
    body = response.body.decode()
    data = json.loads(body)
    assert payloads.field_errors(data, typed) == [], (route, data)
    recording = FIXTURES / f"{name}.json"
    if RECORD:
        text = scrub(json.dumps(data, indent=2, sort_keys=True), tmp) + "\n"
        for secret in (server_tests.SECRET, "testing"):
            assert f'"{secret}"' not in text and f":{secret}@" not in text, f"{name}: a credential would be recorded"
        FIXTURES.mkdir(parents=True, exist_ok=True)
        recording.write_text(text)
    recorded = json.loads(recording.read_text())
    live, kept = keys_of(data), keys_of(recorded)
    # Free-form parts (the effective configuration's keys) may differ between runs.
    differ = {k for k in live ^ kept if not k.startswith(free_form)}
    assert not differ, f"{name}.json and the live answer differ in the fields {sorted(differ)}: re-record it"
    return data


async def test_status_and_sessions(jp_fetch, livy_env, tmp_path):
    data = await answer(jp_fetch, "status", "status", payloads.ClusterStatus, tmp_path, free_form=("config.",))
    assert data["reachable"] is True and "serverless" not in data
    data = await answer(jp_fetch, "sessions", "sessions", payloads.Sessions, tmp_path)
    assert [s["own"] for s in data["sessions"]] == [True]


async def test_status_of_a_serverless_target(jp_fetch, livy_env, aws_env, monkeypatch, tmp_path):
    client = boto3.client("emr-serverless")
    app_id = client.create_application(
        name="hail-interactive", releaseLabel="emr-7.2.0", type="SPARK",
        interactiveConfiguration={"livyEndpointEnabled": True},
    )["applicationId"]
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", "00fnothere0000")
    data = await answer(jp_fetch, "status", "status-serverless-missing", payloads.ClusterStatus, tmp_path,
                        free_form=("config.",))
    assert "00fnothere0000" in data["serverless"]["error"]
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", app_id)
    data = await answer(jp_fetch, "status", "status-serverless", payloads.ClusterStatus, tmp_path,
                        free_form=("config.",))
    assert data["serverless"]["application_id"] == app_id and data["serverless"]["state"] == "STARTED"
    # Connected as %hail connect --serverless-app does (SigV4): the sessions carry where the Spark
    # UI and driver log are, here through a SigV4-verifying gateway in front of the embedded Livy.
    gateway = SigV4Gateway(livy_env.url, {"testing": ("testing", None)}, region="us-east-1").start()
    try:
        monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", gateway.url)
        monkeypatch.setenv("HAIL_EMR_LAB_AUTH", "sigv4")
        monkeypatch.setenv("HAIL_EMR_LAB_REGION", "us-east-1")
        data = await answer(jp_fetch, "sessions", "sessions-serverless", payloads.Sessions, tmp_path)
    finally:
        gateway.stop()
    assert data["error"] is None and data["sessions"][0]["spark_ui_note"], data


async def test_progress_of_a_running_statement(jp_fetch, livy_env, livy_session, tmp_path):
    code = "import time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(8) or x).count()"
    st = livy_session.submit(code)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            response = await jp_fetch(*API.split("/"), "progress")
            rows = [r for s in json.loads(response.body)["sessions"] for r in s["statements"] if r["jobs"]]
            if rows and rows[0]["jobs"][0]["stages"]:
                break
            await asyncio.sleep(0.3)
        publisher = server_tests._publisher(jupyter_runtime_dir())  # a kernel's transfer, as it publishes it
        try:
            data = await answer(jp_fetch, "progress", "progress", payloads.Progress, tmp_path)
        finally:
            publisher.kill()
            publisher.wait(timeout=30)
        row = data["sessions"][0]["statements"][0]
        assert row["id"] == st.id and row["jobs"][0]["stages"], data
        assert data["transfers"][0]["name"] == "gwas", data
    finally:
        await asyncio.get_running_loop().run_in_executor(None, lambda: livy_session.wait(st, timeout=120))


async def test_plots(jp_fetch, jp_root_dir, tmp_path):
    plots = jp_root_dir / "analysis" / "plots"
    plots.mkdir(parents=True)
    (plots / "show-20261121-101500-1-pca.html").write_text("<html><body>pca</body></html>")
    (plots / "qq.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 2040)
    data = await answer(jp_fetch, "plots", "plots", payloads.Plots, tmp_path, dir="analysis")
    assert {p["file"] for p in data["plots"]} == {"show-20261121-101500-1-pca.html", "qq.png"}


async def test_backup_with_more_pending_files_than_listed(jp_fetch, aws_env, tmp_path, monkeypatch):
    home = tmp_path / "SageMaker"
    home.mkdir()
    for i in range(11):
        (home / f"notebook-{i:02d}.ipynb").write_text('{"cells": []}')
    boto3.client("s3").create_bucket(Bucket="lab-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_BUCKET", "lab-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_PREFIX", "alice")
    monkeypatch.setenv("HAIL_EMR_LAB_HOME", str(home))
    monkeypatch.setenv("HAIL_EMR_LAB_SYNC_STATE_DIR", str(tmp_path / "sync-state"))
    data = await answer(jp_fetch, "sync", "sync", payloads.Backup, tmp_path)
    assert data["status"]["pending_count"] == 11


async def test_clusters_and_nodes(jp_fetch, aws_env, monkeypatch, tmp_path):
    made = moto_emr_cluster("hail-lab-cluster", release="emr-7.1.0", applications=("Spark", "Livy"))
    cid, master, cores = made.id, made.master, made.core
    data = await answer(jp_fetch, "clusters", "clusters", payloads.Clusters, tmp_path)
    assert [c["cluster_id"] for c in data["clusters"]] == [cid]
    with SsmStandIn(aws_env) as standin:
        standin.managed = {master: "Online", cores[0]: "ConnectionLost"}  # cores[1] never registered
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", standin.url)
        monkeypatch.setenv("HAIL_EMR_LAB_CLUSTER_ID", cid)
        data = await answer(jp_fetch, "nodes", "nodes", payloads.Nodes, tmp_path)
    assert [n["shell"] for n in data["nodes"]] == [True, False, False]


async def test_jobs(jp_fetch, tmp_path, monkeypatch):
    from hail_emr_lab.jobs import store
    from hail_emr_lab.jobs.base import Job, JobState

    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_STORE", str(tmp_path / "jobs.jsonl"))
    store.save(Job(id="batch-7", backend="livy", name="qc", state=JobState.SUCCEEDED,
                   submitted="2026-11-21T10:00:00+00:00"))
    store.save(Job(id="00fjobrun1234", backend="emr-serverless", name="gwas", state=JobState.RUNNING,
                   submitted="2026-11-21T11:30:00+00:00"))
    data = await answer(jp_fetch, "jobs", "jobs", payloads.Jobs, tmp_path)
    assert [j["id"] for j in data["jobs"]] == ["00fjobrun1234", "batch-7"]
