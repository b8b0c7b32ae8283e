"""``hail-emr-lab lab``, the real stack, started from the checkout as ``./dev.sh lab`` does.

The whole command runs as a user would run it (the local S3 on disk, the embedded Livy, JupyterLab)
with a temporary HOME, so its defaults are exercised: the served root is a home of its own under
``~/.hail-emr-lab/local``, seeded with the tutorials; terminals and kernels find
``hail-emr-lab`` on their PATH; and the checkout it was started from gains no file. Kernels and
terminals are driven over Jupyter's own REST + WebSocket API. No Livy session is started
(no Spark JVM): the notebooks' own runs are covered by the tutorial tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from support.net import free_port, wait_http
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lab-stack-test-token"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def checkout_files() -> set[str]:
    """What git sees in the checkout, ignored files included (bytecode caches excepted)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return {line for line in out.splitlines() if "__pycache__/" not in line and ".pytest_cache/" not in line}


def path_without_install() -> str:
    """The caller's PATH minus this install's bin/, as in a shell where the venv is not active."""
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != BIN)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``hail-emr-lab lab`` started from the checkout; yields (url, home, log path)."""
    home = tmp_path_factory.mktemp("user-home")
    logs = tmp_path_factory.mktemp("lab-logs")
    before = checkout_files()
    port, livy_port, s3_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAIL_EMR_LAB_", "JUPYTER", "AWS_"))}
    env.update(HOME=str(home), PATH=path_without_install(), SHELL="/bin/bash",
               HAIL_EMR_LAB_CONFIG=str(home / "no-config.json"),
               HAIL_EMR_LAB_SPARKMAGIC_CONFIG=str(home / "no-sparkmagic.json"),
               HAIL_EMR_LAB_METADATA=str(home / "no-metadata.json"))
    log_path = logs / "lab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "hail-emr-lab"), "lab", "--no-browser", "--livy-port", str(livy_port), "--s3-port", str(s3_port),
         "--", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/api/status", timeout=240)
        yield url, home, log_path
    finally:
        proc.send_signal(signal.SIGTERM)  # it stops JupyterLab, then the services it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    # Everything it started is gone with it, and the checkout is as it was.
    for p in (port, livy_port, s3_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{p}/", timeout=2)
    assert checkout_files() == before, "hail-emr-lab lab changed the checkout it was started from"


def api(url: str, method: str, path: str, **kw) -> requests.Response:
    res = requests.request(method, f"{url}{path}", headers={"Authorization": f"token {TOKEN}"}, timeout=60, **kw)
    res.raise_for_status()
    return res


def ws_request(url: str) -> HTTPRequest:
    return HTTPRequest(url.replace("http://", "ws://"), headers={"Authorization": f"token {TOKEN}"})


async def run_in_kernel(url: str, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Execute ``code`` in a server-side kernel over its WebSocket; returns its stdout."""
    conn = await websocket_connect(ws_request(f"{url}/api/kernels/{kernel_id}/channels"))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False},
    }))
    out = ""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            assert raw is not None, "the kernel's WebSocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return out
        raise AssertionError(f"no answer from the kernel in {timeout} s; got {out!r}")
    finally:
        conn.close()


async def run_in_terminal(url: str, name: str, command: str, timeout: float = 60) -> str:
    """Type ``command`` into a server-side terminal; returns what it printed up to an end marker."""
    conn = await websocket_connect(ws_request(f"{url}/terminals/websocket/{name}"))
    marker = uuid.uuid4().hex[:8]
    # The marker is printed by arithmetic so the echoed command line itself cannot match it.
    conn.write_message(json.dumps(["stdin", f"{command}; echo END-{marker}-$((40+2))\r"]))
    out = ""
    deadline = time.monotonic() + timeout
    try:
        while f"END-{marker}-42" not in out:
            if time.monotonic() > deadline:
                raise AssertionError(f"no end marker from the terminal in {timeout} s; got {out!r}")
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            assert raw is not None, "the terminal's WebSocket closed"
            kind, *rest = json.loads(raw)
            if kind == "stdout":
                out += rest[0]
        return out
    finally:
        conn.close()


def test_serves_its_own_home_seeded_with_the_tutorials(lab):
    url, home, log = lab
    served = home / ".hail-emr-lab" / "local" / "home"
    assert served.is_dir(), log.read_text(errors="replace")[-3000:]
    shared = sorted(p.name for p in (ROOT / "common-notebooks").glob("*.ipynb"))
    listing = api(url, "GET", "/api/contents/common-notebooks").json()
    assert sorted(c["name"] for c in listing["content"] if c["type"] == "notebook") == shared
    for name in shared:
        assert (served / "common-notebooks" / name).read_bytes() == (ROOT / "common-notebooks" / name).read_bytes()
    # The server's root is that home (a file made through the API lands there, not in the checkout).
    api(url, "PUT", "/api/contents/made-in-the-lab.txt", json={"type": "file", "format": "text", "content": "x"})
    assert (served / "made-in-the-lab.txt").read_text() == "x"
    text = log.read_text(errors="replace")
    assert f"serving the home {served}" in text and f"seeded {len(shared)} tutorial file(s)" in text, text[-3000:]


def test_kernels_find_the_cli_on_path(lab):
    url, _, _ = lab
    kernel = api(url, "POST", "/api/kernels", json={"name": "python3"}).json()
    try:
        out = asyncio.run(run_in_kernel(url, kernel["id"], "import shutil; print(shutil.which('hail-emr-lab'))"))
    finally:
        api(url, "DELETE", f"/api/kernels/{kernel['id']}")
    assert out.strip() == str(BIN / "hail-emr-lab")


def test_terminals_find_the_cli_on_path(lab):
    url, home, _ = lab
    term = api(url, "POST", "/api/terminals").json()
    try:
        out = asyncio.run(run_in_terminal(url, term["name"], "command -v hail-emr-lab; pwd; hail-emr-lab --version"))
    finally:
        api(url, "DELETE", f"/api/terminals/{term['name']}")
    assert str(BIN / "hail-emr-lab") in out, out
    assert "hail-emr-lab 0." in out and "command not found" not in out, out
    assert str(home / ".hail-emr-lab" / "local" / "home") in out, out


def test_a_restart_keeps_a_tutorial_the_user_edited(aws_env, tmp_path):
    """Each start uploads the tutorials again and seeds once more, even into a wiped local S3."""
    import boto3

    from hail_emr_lab.embedded.devstack import seed_tutorials

    env = {**os.environ, "HAIL_EMR_LAB_PREFIX": "local-user"}  # aws_env points boto3 at the moto server
    home = tmp_path / "home"
    home.mkdir()
    name = sorted(p.name for p in (ROOT / "common-notebooks").glob("*.ipynb"))[0]
    for start in range(2):
        if start:
            requests.post(aws_env + "/moto-api/reset", timeout=10)  # a new lab: an empty local S3
        boto3.client("s3").create_bucket(Bucket="lab-bucket")
        seed_tutorials(env, "lab-bucket", home, tmp_path / "seed.log")
        if not start:
            assert (home / "common-notebooks" / name).read_bytes() == (ROOT / "common-notebooks" / name).read_bytes()
            (home / "common-notebooks" / name).write_text("my own edits")
    assert (home / "common-notebooks" / name).read_text() == "my own edits"
    assert not [p.name for p in (home / "common-notebooks").iterdir() if "new version" in p.name]
