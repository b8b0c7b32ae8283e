"""A notebook saved, renamed or copied through a real jupyter_server contents API is in S3 within 5 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from urllib.parse import quote

import pytest
import requests
from support.net import free_port, wait_http
from support.sync_s3 import BUCKET, PREFIX, s3_fixture  # noqa: F401


@contextmanager
def jupyter_server(tmp_path):
    """A real jupyter_server with our extension over ``tmp_path/SageMaker``: (base URL, headers, log)."""
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
    try:
        wait_http(base + "/api", timeout=60)
        yield base, {"Authorization": f"token {token}"}, log
    finally:
        server.terminate()
        server.wait(15)


def wait_for_key(s3, key: str, start: float, log) -> bytes:
    """The object's bytes once it is in S3; fails after 5 s from ``start``."""
    while time.monotonic() - start < 5:
        try:
            return s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except s3.client.exceptions.NoSuchKey:
            time.sleep(0.05)
    raise AssertionError(f"{key} not in S3 within 5 s; server log:\n{log.read_text()[-3000:]}")


NOTEBOOK = {"type": "notebook", "content": {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# saved"}],
                                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}


@pytest.mark.slow
def test_saved_notebook_reaches_s3_within_5s(s3, tmp_path):
    with jupyter_server(tmp_path) as (base, headers, log):
        s3.proxy.reset()
        start = time.monotonic()
        resp = requests.put(f"{base}/api/contents/analysis%20%231.ipynb", json=NOTEBOOK, headers=headers, timeout=30)
        save_time = time.monotonic() - start
        assert resp.status_code in (200, 201), resp.text
        body = wait_for_key(s3, f"{PREFIX}/analysis #1.ipynb", start, log)
        assert "".join(json.loads(body)["cells"][0]["source"]) == "# saved"
        assert save_time < 2  # the save itself is not held up by the upload
        assert [m for m, _ in s3.proxy.requests] == ["PUT"]  # one upload, nothing else
        # files outside the synced tree rules (checkpoints) are not uploaded
        assert not [k for k in s3.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                    if ".ipynb_checkpoints" in k["Key"]]


@pytest.mark.slow
def test_renamed_and_copied_files_reach_s3_without_another_save(s3, tmp_path):
    # JupyterLab's "Rename and Save" of a new notebook, and renaming a folder in the file
    # browser, run no post-save hook: the new paths must still be backed up within seconds.
    with jupyter_server(tmp_path) as (base, headers, log):
        api = f"{base}/api/contents"

        def put(path: str, model: dict) -> None:
            resp = requests.put(f"{api}/{quote(path)}", json=model, headers=headers, timeout=30)
            assert resp.status_code in (200, 201), resp.text

        def move(old: str, new: str) -> float:
            start = time.monotonic()
            resp = requests.patch(f"{api}/{quote(old)}", json={"path": new}, headers=headers, timeout=30)
            assert resp.status_code == 200, resp.text
            return start

        put("Untitled.ipynb", NOTEBOOK)
        wait_for_key(s3, f"{PREFIX}/Untitled.ipynb", time.monotonic(), log)
        start = move("Untitled.ipynb", "pca demo.ipynb")
        body = wait_for_key(s3, f"{PREFIX}/pca demo.ipynb", start, log)
        assert "".join(json.loads(body)["cells"][0]["source"]) == "# saved"

        put("results", {"type": "directory"})
        put("results/table.tsv", {"type": "file", "format": "text", "content": "k\tv\n1\tx\n"})
        put("results/empty", {"type": "directory"})
        wait_for_key(s3, f"{PREFIX}/results/table.tsv", time.monotonic(), log)
        start = move("results", "results-2026")
        assert wait_for_key(s3, f"{PREFIX}/results-2026/table.tsv", start, log) == b"k\tv\n1\tx\n"
        wait_for_key(s3, f"{PREFIX}/results-2026/empty/", start, log)  # the empty folder's marker

        start = time.monotonic()
        resp = requests.post(api, json={"copy_from": "pca demo.ipynb"}, headers=headers, timeout=30)
        assert resp.status_code == 201, resp.text
        wait_for_key(s3, f"{PREFIX}/{resp.json()['path']}", start, log)
