"""Start or reuse the embedded Livy server for ``%hail connect --local`` and the default.

The server runs as its own detached process (``hail-emr-lab local-livy``), so it survives
a kernel restart and the next ``%hail connect`` reattaches to the same session. Its URL and
pid are recorded in ``~/.hail-emr-lab/local/livy.json``; a recorded server that no longer
answers is replaced.

Every server started here requires the shared-secret token kept in ``livy.token`` next to it
(mode 0600, created on first use): another user of the machine cannot use it.
:func:`client_headers` gives our own clients that token, and only for the URL of an embedded
server we know of (the recorded one, or the one ``hail-emr-lab lab`` names in
``HAIL_EMR_LAB_LIVY_URL`` with its token file in ``HAIL_EMR_LAB_LIVY_TOKEN_FILE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from ..errors import HailEmrLabError
from ..livy.client import LivyClient
from .ports import free_port, port_free

STATE_DIR = Path("~/.hail-emr-lab/local")
TOKEN_FILE_NAME = "livy.token"
#: Set by ``hail-emr-lab lab`` for JupyterLab: the token file of the Livy it started.
TOKEN_FILE_ENV = "HAIL_EMR_LAB_LIVY_TOKEN_FILE"


def state_dir() -> Path:
    """Where the embedded server's state file and log live (``HAIL_EMR_LAB_LOCAL_DIR`` overrides)."""
    return Path(os.environ.get("HAIL_EMR_LAB_LOCAL_DIR") or STATE_DIR).expanduser()


def _loopback_port(url: str) -> Optional[int]:
    """The port of a loopback http URL (None for any other URL)."""
    from .guard import is_loopback_host

    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not is_loopback_host(parts.hostname or ""):
        return None
    return port


def _token_file_for(url: str) -> Optional[Path]:
    """The token file of the embedded server at ``url``, if it is one we know of."""
    port = _loopback_port(url)
    if port is None:
        return None
    lab_url, lab_file = os.environ.get("HAIL_EMR_LAB_LIVY_URL"), os.environ.get(TOKEN_FILE_ENV)
    if lab_url and lab_file and _loopback_port(lab_url) == port:
        return Path(lab_file).expanduser()
    state = read_state()
    if state.get("url") and _loopback_port(str(state["url"])) == port and state.get("token_file"):
        return Path(str(state["token_file"]))
    return None


def client_headers(url: str) -> dict[str, str]:
    """``{"Authorization": "Bearer TOKEN"}`` for an embedded server we started, else ``{}``.

    Raises HailEmrLabError when its token file exists but cannot be used (shared with other
    users, or not a token): sending no token would only end in a less clear 401.
    """
    from .guard import TokenFileError, read_token

    path = _token_file_for(url)
    if path is None:
        return {}
    try:
        return {"Authorization": f"Bearer {read_token(path)}"}
    except FileNotFoundError:
        return {}
    except (TokenFileError, OSError) as exc:
        raise HailEmrLabError(f"cannot use the embedded Livy's token: {exc}") from None


def _probe(url: str, headers: dict[str, str], timeout: float = 2.0) -> LivyClient:
    """A client for asking whether a Livy answers at ``url`` (``.ping()``): ``timeout`` seconds, no retries."""
    return LivyClient(url, headers=headers, connect_timeout=timeout, read_timeout=timeout, retries=0)


def read_state() -> dict[str, Any]:
    """The recorded server (``{}`` if none or unreadable)."""
    try:
        data = json.loads((state_dir() / "livy.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ensure_embedded_livy(port: int = 8998, timeout: float = 90.0, plots_dir: Optional[str] = None) -> str:
    """The URL of a running embedded Livy: the recorded one if it answers, else a new one.

    A new one requires the token in ``livy.token`` of :func:`state_dir` (see the module
    docstring); :func:`client_headers` then finds it for the returned URL.
    """
    from .guard import TokenFileError, ensure_token

    state = read_state()
    url = state.get("url")
    if url and _probe(url, client_headers(url)).ping():
        return url
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / TOKEN_FILE_NAME
    try:
        token = ensure_token(token_file)
    except (TokenFileError, OSError) as exc:
        raise HailEmrLabError(f"cannot set up the embedded Livy's token: {exc}") from None
    if not port_free(port):
        candidate = f"http://127.0.0.1:{port}"
        if _probe(candidate, {"Authorization": f"Bearer {token}"}).ping():
            # A Livy someone else started here with our token (e.g. `hail-emr-lab lab`): record it.
            _record(folder, {"url": candidate, "port": port, "token_file": str(token_file), "started": time.time()})
            return candidate
        port = free_port()
    log = folder / "livy.log"
    cmd = [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", str(port), "--token-file", str(token_file)]
    if plots_dir:
        cmd += ["--plots-dir", plots_dir]
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # detached: survives the kernel, so a restart can reattach
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    probe = _probe(url, {"Authorization": f"Bearer {token}"}, timeout=1.0)
    deadline = time.monotonic() + timeout
    while not probe.ping():
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
    _record(folder, {"url": url, "pid": proc.pid, "port": port, "token_file": str(token_file), "started": time.time()})
    return url


def _record(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / "livy.json.tmp"
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, folder / "livy.json")


def stop_embedded_livy() -> bool:
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
