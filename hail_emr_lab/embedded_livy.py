"""Start or reuse the embedded Livy server for ``%hail connect --local`` and the default.

The server runs as its own detached process (``hail-emr-lab local-livy``), so it survives
a kernel restart and the next ``%hail connect`` reattaches to the same session. Its URL and
pid are recorded in ``~/.hail-emr-lab/local/livy.json``; a recorded server that no longer
answers is replaced.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import requests

from .errors import HailEmrLabError

STATE_DIR = Path("~/.hail-emr-lab/local")


def state_dir() -> Path:
    """Where the embedded server's state file and log live (``HAIL_EMR_LAB_LOCAL_DIR`` overrides)."""
    return Path(os.environ.get("HAIL_EMR_LAB_LOCAL_DIR") or STATE_DIR).expanduser()


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        r = requests.get(url + "/sessions", params={"size": 1}, timeout=timeout)
        return r.status_code == 200 and "sessions" in r.json()
    except (requests.RequestException, ValueError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_state() -> dict[str, Any]:
    """The recorded server (``{}`` if none or unreadable)."""
    try:
        data = json.loads((state_dir() / "livy.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ensure_local_livy(port: int = 8998, timeout: float = 90.0, plots_dir: Optional[str] = None) -> str:
    """The URL of a running embedded Livy: the recorded one if it answers, else a new one."""
    state = read_state()
    url = state.get("url")
    if url and _answers(url):
        return url
    if not _port_free(port):
        candidate = f"http://127.0.0.1:{port}"
        if _answers(candidate):
            return candidate  # a Livy someone else started here (e.g. `hail-emr-lab lab`)
        port = _free_port()
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "livy.log"
    cmd = [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", str(port)]
    if plots_dir:
        cmd += ["--plots-dir", plots_dir]
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # detached: survives the kernel, so a restart can reattach
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not _answers(url, timeout=1.0):
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
            raise HailEmrLabError(
                f"the embedded Livy server exited (code {proc.returncode}) before it answered; its log "
                f"({log}) ends with:\n" + "\n".join(tail)
            )
        if time.monotonic() > deadline:
            proc.terminate()
            raise HailEmrLabError(f"the embedded Livy server did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.2)
    tmp = folder / "livy.json.tmp"
    tmp.write_text(json.dumps({"url": url, "pid": proc.pid, "port": port, "started": time.time()}), encoding="utf-8")
    os.replace(tmp, folder / "livy.json")
    return url


def stop_local_livy() -> bool:
    """Stop the recorded server (its sessions end). False if none was recorded."""
    import signal

    state = read_state()
    pid = state.get("pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        pass  # already gone: the state file is stale
    (state_dir() / "livy.json").unlink(missing_ok=True)
    return True
