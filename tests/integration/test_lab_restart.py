"""``hail-emr-lab lab`` keeps every backup across a stop and a start.

The real command from the checkout, with a temporary HOME, twice over the same state
directory: back the lab's home up to its local S3 (``hail-emr-lab sync backup``, with the
environment the lab gives its terminals), stop the whole stack, start it again, then
``sync status`` shows the same state and a restore into an empty home gives the same bytes.
No Livy session is started (no Spark JVM).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from support.net import free_port, wait_http
from test_lab_stack import BIN, ROOT, TOKEN, path_without_install

from hail_emr_lab.embedded.devstack import DEFAULT_BUCKET, stack_environment

pytestmark = pytest.mark.slow


def start_lab(home: Path, ports: dict[str, int], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAIL_EMR_LAB_", "JUPYTER", "AWS_"))}
    env.update(HOME=str(home), PATH=path_without_install(), SHELL="/bin/bash",
               HAIL_EMR_LAB_CONFIG=str(home / "no-config.json"),
               HAIL_EMR_LAB_SPARKMAGIC_CONFIG=str(home / "no-sparkmagic.json"),
               HAIL_EMR_LAB_METADATA=str(home / "no-metadata.json"))
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [str(BIN / "hail-emr-lab"), "lab", "--no-browser", "--livy-port", str(ports["livy"]),
             "--s3-port", str(ports["s3"]), "--", f"--port={ports['lab']}", "--ip=127.0.0.1",
             f"--ServerApp.token={TOKEN}"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    wait_http(f"http://127.0.0.1:{ports['lab']}/api/status", timeout=240)
    return proc


def stop_lab(proc: subprocess.Popen, ports: dict[str, int]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError("hail-emr-lab lab did not stop on SIGTERM") from None
    for port in ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)


def sync(state: Path, s3_port: int, *args: str) -> subprocess.CompletedProcess:
    """``hail-emr-lab sync ...`` with the environment the lab gives its terminals."""
    creds = json.loads((state / "s3-credentials.json").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAIL_EMR_LAB_", "AWS_"))}
    env.update(stack_environment("http://127.0.0.1:1", f"http://127.0.0.1:{s3_port}", DEFAULT_BUCKET,
                                 state / "home", state / "plots",
                                 (creds["aws_access_key_id"], creds["aws_secret_access_key"])))
    env["HAIL_EMR_LAB_CONFIG"] = str(state / "no-config.json")
    done = subprocess.run([str(BIN / "hail-emr-lab"), "sync", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_backups_survive_stopping_and_starting_the_lab(tmp_path):
    home = tmp_path / "user-home"
    home.mkdir()
    log = tmp_path / "lab.log"
    ports = {"lab": free_port(), "livy": free_port(), "s3": free_port()}
    state = home / ".hail-emr-lab" / "local"
    served = state / "home"
    files = {"analysis/notes.md": b"# my notes\n", "analysis/data.tsv": os.urandom(300_000),
             "top.txt": b"top", "deep/a/b/c.bin": os.urandom(1234)}

    lab = start_lab(home, ports, log)
    try:
        creds = state / "s3-credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        for rel, data in files.items():
            (served / rel).parent.mkdir(parents=True, exist_ok=True)
            (served / rel).write_bytes(data)
        sync(state, ports["s3"], "backup", "--home", str(served))
        before = json.loads(sync(state, ports["s3"], "status", "--home", str(served), "--json").stdout)
        assert before["pending_count"] == 0 and before["synced_count"] >= len(files)
        assert any("conditional writes" in limit for limit in before["server_limits"]), before
    finally:
        stop_lab(lab, ports)
    assert (state / "s3" / "hail-emr-lab-local" / "local-user" / "top.txt").read_bytes() == b"top"  # on disk

    lab = start_lab(home, ports, log)
    try:
        after = json.loads(sync(state, ports["s3"], "status", "--home", str(served), "--json").stdout)
        for key in ("pending_count", "synced_count", "last_backup", "conflicts", "errors", "server_limits"):
            assert after[key] == before[key], (key, before[key], after[key])
        empty = tmp_path / "empty-home"
        sync(state, ports["s3"], "restore", "--home", str(empty), "--state-dir", str(tmp_path / "restore-state"))
        for rel, data in files.items():
            assert (empty / rel).read_bytes() == data, rel
    finally:
        stop_lab(lab, ports)
    text = log.read_text(errors="replace")
    assert text.count(f"objects in {state / 's3'}") == 2, text[-3000:]
    secret = json.loads(creds.read_text())["aws_secret_access_key"]
    assert secret not in text and secret not in (state / "s3.log").read_text(errors="replace")
