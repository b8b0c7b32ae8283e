"""``%hail connect`` with no configuration: the embedded server, started detached and reused.

Costs one more embedded server and one Spark JVM, so it is a single test.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
from support.kernel import Kernel, kernel_env
from support.net import free_port

pytestmark = pytest.mark.slow


def test_default_is_embedded_server_and_survives_kernel_restart(tmp_path, monkeypatch):
    port = free_port()
    env = kernel_env(str(tmp_path), HAIL_EMR_LAB_LOCAL_LIVY_PORT=str(port))
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", env["HAIL_EMR_LAB_LOCAL_DIR"])
    from hail_emr_lab.embedded import launcher as embedded_livy

    k = Kernel(env, cwd=str(tmp_path))
    try:
        res = k.run("%hail connect --name local-default")
        assert res.status == "ok", res.text
        assert f"http://127.0.0.1:{port}" in res.text and "embedded Livy (no endpoint configured)" in res.text
        state = json.loads((tmp_path / "local" / "livy.json").read_text())
        assert state["url"] == f"http://127.0.0.1:{port}" and state["pid"] > 0
        res = k.run("%%hail\nkept = 'still here'\nprint(PLOTS_DIR)", timeout=900)
        assert res.status == "ok", res.text
        # The server is its own process: a kernel restart does not stop it, and we reattach.
        k.restart()
        # It requires the token it was started with (kept private in the state dir).
        assert requests.get(state["url"] + "/sessions", timeout=5).status_code == 401
        token = (tmp_path / "local" / "livy.token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(state["url"] + "/sessions", headers=auth, timeout=5).status_code == 200
        res = k.run("%hail connect --local --name local-default")
        assert res.status == "ok" and "reattached to session" in res.text, res.text
        assert json.loads((tmp_path / "local" / "livy.json").read_text())["pid"] == state["pid"]  # reused
        res = k.run("%%hail\nprint(kept)")
        assert res.status == "ok" and "still here" in res.stdout, res.text
        res = k.run("%hail cleanup")
        assert res.status == "ok" and "Deleted 1 session(s)" in res.stdout, res.text
    finally:
        k.shutdown()
        assert embedded_livy.stop_embedded_livy()  # stops the server this test started (pid from its state file)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(state["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the embedded server did not stop")
