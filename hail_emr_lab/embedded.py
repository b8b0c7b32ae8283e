"""``hail-emr-lab lab``: JupyterLab on the embedded default, no AWS account needed.

Starts, in the background and tied to this process:

* the embedded Livy server (``hail-emr-lab local-livy``) on 127.0.0.1;
* a local S3 (a moto server) with a bucket for the home backup;

then runs JupyterLab in the foreground with the environment pointing at both
(``HAIL_EMR_LAB_LIVY_URL``, ``AWS_ENDPOINT_URL``, ``HAIL_EMR_LAB_BUCKET`` ...), so that
``%hail connect`` with no arguments, the sidebar and the backup all work as on EMR.
Everything stops when JupyterLab stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import HailEmrLabError

DEFAULT_BUCKET = "hail-emr-lab-local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab lab``."""
    parser.add_argument("--root", default=".", help="directory JupyterLab serves (default: current)")
    parser.add_argument("--state-dir", default="~/.hail-emr-lab/local", help="where local services keep state")
    parser.add_argument("--livy-port", type=int, default=8998, help="port of the embedded Livy (default 8998)")
    parser.add_argument("--s3-port", type=int, default=5900, help="port of the local S3 (default 5900)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help="bucket of the local S3 for backups")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("lab_args", nargs=argparse.REMAINDER, help="further arguments for jupyter lab")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HailEmrLabError(f"{what} exited with code {proc.returncode}; see {log}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise HailEmrLabError(f"{what} did not start listening on port {port} in {timeout:.0f} s; see {log}")


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stack_environment(livy_url: str, s3_url: str, bucket: str, home: Path, plots_dir: Path) -> dict[str, str]:
    """Environment variables that point hail-emr-lab (and boto3) at the local services."""
    return {
        "HAIL_EMR_LAB_LIVY_URL": livy_url,
        "HAIL_EMR_LAB_BUCKET": bucket,
        "HAIL_EMR_LAB_PREFIX": os.environ.get("HAIL_EMR_LAB_PREFIX", "local-user"),
        "HAIL_EMR_LAB_HOME": str(home),
        "HAIL_EMR_LAB_PLOTS_DIR": str(plots_dir),
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def run(args: argparse.Namespace) -> int:
    """Start local Livy + local S3, then JupyterLab in the foreground."""
    state = Path(args.state_dir).expanduser()
    state.mkdir(parents=True, exist_ok=True)
    root = Path(args.root).resolve()
    plots_dir = state / "plots"
    for port, what in ((args.livy_port, "--livy-port"), (args.s3_port, "--s3-port")):
        if not _port_free(port):
            raise HailEmrLabError(
                f"port {port} on 127.0.0.1 is in use (another hail-emr-lab lab?): stop it or pick {what} N"
            )
    env = dict(os.environ)
    env.update(stack_environment(
        f"http://127.0.0.1:{args.livy_port}", f"http://127.0.0.1:{args.s3_port}", args.bucket, root, plots_dir
    ))
    children: list[subprocess.Popen] = []

    def stop_children(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    try:
        s3_log = state / "s3.log"
        s3 = _start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.s3_port)], s3_log, env)
        children.append(s3)
        _wait_port(args.s3_port, s3, "the local S3 (moto)", s3_log)
        _ensure_bucket(env, args.bucket)
        livy_log = state / "livy.log"
        livy = _start(
            [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", str(args.livy_port),
             "--plots-dir", str(plots_dir)],
            livy_log,
            env,
        )
        children.append(livy)
        _wait_port(args.livy_port, livy, "the embedded Livy", livy_log)
        print(f"hail-emr-lab: embedded Livy at {env['HAIL_EMR_LAB_LIVY_URL']} (log {livy_log})")
        print(f"hail-emr-lab: local S3 at {env['AWS_ENDPOINT_URL']}, bucket {args.bucket} (log {s3_log})")
        print("hail-emr-lab: in a notebook run  %load_ext hail_emr_lab  then  %hail connect")
        jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
        cmd = [jupyter, "lab", f"--ServerApp.root_dir={root}"]
        if args.no_browser:
            cmd.append("--no-browser")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI machines often run as root
        cmd += [a for a in args.lab_args if a != "--"]
        lab = subprocess.Popen(cmd, env=env)
        signal.signal(signal.SIGTERM, lambda *_: lab.terminate())
        try:
            return lab.wait()
        except KeyboardInterrupt:
            lab.send_signal(signal.SIGINT)
            return lab.wait()
    finally:
        stop_children()


def _ensure_bucket(env: dict[str, str], bucket: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    existing: Optional[list] = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in (existing or []):
        s3.create_bucket(Bucket=bucket)
