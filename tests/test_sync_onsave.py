"""A notebook saved through a real jupyter_server contents API is in S3 within 5 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
from conftest import free_port, wait_http
from test_sync_support import BUCKET, PREFIX, s3_fixture  # noqa: F401


@pytest.mark.slow
def test_saved_notebook_reaches_s3_within_5s(s3, tmp_path):
    home = tmp_path / "SageMaker"
    home.mkdir()
    port = free_port()
    token = "sync-test-token"
    env = dict(os.environ, HAIL_EMR_LAB_BUCKET=BUCKET, HAIL_EMR_LAB_PREFIX=PREFIX, HAIL_EMR_LAB_HOME=str(home))
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.root_dir={home}", f"--IdentityProvider.token={token}",
           "--ServerApp.jpserver_extensions={'hail_emr_lab': True}"]
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        server = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"token {token}"}
    try:
        wait_http(base + "/api", timeout=60)
        s3.proxy.reset()
        nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# saved"}], "metadata": {},
              "nbformat": 4, "nbformat_minor": 5}
        model = {"type": "notebook", "content": nb}
        start = time.monotonic()
        resp = requests.put(f"{base}/api/contents/analysis%20%231.ipynb", json=model, headers=headers, timeout=30)
        save_time = time.monotonic() - start
        assert resp.status_code in (200, 201), resp.text
        key = f"{PREFIX}/analysis #1.ipynb"
        while time.monotonic() - start < 5:
            try:
                body = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                break
            except s3.client.exceptions.NoSuchKey:
                time.sleep(0.05)
        else:
            raise AssertionError(f"not in S3 within 5 s; server log:\n{log.read_text()[-3000:]}")
        assert "".join(json.loads(body)["cells"][0]["source"]) == "# saved"
        assert save_time < 2  # the save itself is not held up by the upload
        assert [m for m, _ in s3.proxy.requests] == ["PUT"]  # one upload, nothing else
        # files outside the synced tree rules (checkpoints) are not uploaded
        assert not [k for k in s3.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                    if ".ipynb_checkpoints" in k["Key"]]
    finally:
        server.terminate()
        server.wait(15)
