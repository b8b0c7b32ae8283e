"""``hail-emr-lab lab``: JupyterLab on the embedded default, no AWS account needed.

Starts, in the background and tied to this process:

* the embedded Livy server (``hail-emr-lab local-livy``) on 127.0.0.1;
* the embedded S3 (``hail-emr-lab local-s3``: ``rclone serve s3``, objects on disk under
  ``<state dir>/s3`` unless ``--s3-dir``, so backups survive a restart) with a bucket for the
  home backup, signed requests only, credentials from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` or generated once into ``<state dir>/s3-credentials.json`` (0600);

then runs JupyterLab in the foreground with the environment pointing at both
(``HAIL_EMR_LAB_LIVY_URL``, ``AWS_ENDPOINT_URL``, ``HAIL_EMR_LAB_BUCKET`` ...), so that
``%hail connect`` with no arguments, the sidebar and the backup all work as on EMR.
Everything stops when JupyterLab stops.

Like a SageMaker notebook instance, the lab serves a home directory of its own
(``<state dir>/home`` unless ``--root``), seeded with the tutorials by ``hail-emr-lab sync
seed`` from the embedded S3 exactly as the lifecycle scripts seed ``~/SageMaker``; so running
it from a checkout leaves the checkout untouched. Terminals and kernels find this install's
``hail-emr-lab`` (and ``python``) first on their ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import HailEmrLabError
from ..sync.server_facts import PROBE_ENV
from . import s3 as local_s3
from .launcher import TOKEN_FILE_ENV, TOKEN_FILE_NAME

DEFAULT_BUCKET = "hail-emr-lab-local"
#: Shared prefix of the bucket the tutorials are seeded from (the lifecycle scripts' layout).
TUTORIALS_PREFIX = "common-notebooks"


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
    # Run in the state directory: Spark and Hail write derby.log, metastore_db/, hail-*.log
    # into their working directory, which must not be the user's checkout.
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            cwd=str(log.parent))


def install_bin() -> Path:
    """The ``bin/`` directory of this install (``sys.executable``'s), where ``hail-emr-lab`` is."""
    return Path(sys.executable).parent


def path_with_install_first(path: str) -> str:
    """``PATH`` with this install's ``bin/`` first, so terminals and kernels find ``hail-emr-lab``."""
    first = str(install_bin())
    rest = [p for p in path.split(os.pathsep) if p and p != first]
    return os.pathsep.join([first, *rest])


def tutorials_dir() -> Optional[Path]:
    """The tutorial notebooks shipped with this install (the wheel) or next to it (a checkout)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "tutorials", package.parent / "common-notebooks"):
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate
    return None


def stack_environment(livy_url: str, s3_url: str, bucket: str, home: Path, plots_dir: Path,
                      s3_credentials: tuple[str, str]) -> dict[str, str]:
    """Environment variables that point hail-emr-lab (and boto3) at the embedded services."""
    return {
        "HAIL_EMR_LAB_LIVY_URL": livy_url,
        "HAIL_EMR_LAB_BUCKET": bucket,
        "HAIL_EMR_LAB_PREFIX": os.environ.get("HAIL_EMR_LAB_PREFIX", "local-user"),
        "HAIL_EMR_LAB_HOME": str(home),
        "HAIL_EMR_LAB_PLOTS_DIR": str(plots_dir),
        "AWS_ENDPOINT_URL": s3_url,
        PROBE_ENV: "1",  # the sync finds out what the embedded S3 lacks of S3's semantics
        "AWS_ACCESS_KEY_ID": s3_credentials[0],
        "AWS_SECRET_ACCESS_KEY": s3_credentials[1],
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": path_with_install_first(os.environ.get("PATH", "")),
    }


@dataclass(frozen=True)
class LabPlan:
    """What ``hail-emr-lab lab`` runs: its directories (absolute) and ports on 127.0.0.1."""

    state: Path  # state directory: logs, credentials, the Livy token, plots
    root: Path  # the home JupyterLab serves
    s3_dir: Path  # where the embedded S3 keeps its objects
    livy_port: int
    s3_port: int
    bucket: str  # bucket of the embedded S3 for the home backup
    open_browser: bool = True
    lab_args: tuple[str, ...] = ()  # further arguments for jupyter lab

    @property
    def plots_dir(self) -> Path:
        return self.state / "plots"


def run(plan: LabPlan) -> int:
    """Start the embedded S3 and Livy, then JupyterLab in the foreground; returns its exit code.

    The directories are created; the children are stopped when JupyterLab ends. Raises
    HailEmrLabError when a service does not start (naming its log).
    """
    state, root, plots_dir, s3_dir = plan.state, plan.root, plan.plots_dir, plan.s3_dir
    for folder in (state, root, s3_dir):
        folder.mkdir(parents=True, exist_ok=True)
    s3_credentials = local_s3.credentials(state)
    env = dict(os.environ)
    env.update(stack_environment(
        f"http://127.0.0.1:{plan.livy_port}", f"http://127.0.0.1:{plan.s3_port}", plan.bucket, root, plots_dir,
        s3_credentials,
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
        s3 = _start(local_s3.server_command(s3_dir, "127.0.0.1", plan.s3_port), s3_log,
                    local_s3.server_environment(*s3_credentials, env))
        children.append(s3)
        _wait_port(plan.s3_port, s3, "the embedded S3", s3_log)
        _ensure_bucket(env, plan.bucket)
        seed_tutorials(env, plan.bucket, root, state / "seed.log")
        livy_log = state / "livy.log"
        # The Livy requires the token in this file; the kernels and the sidebar find it through the env.
        env[TOKEN_FILE_ENV] = str(state / TOKEN_FILE_NAME)
        livy = _start(
            [sys.executable, "-m", "hail_emr_lab", "local-livy", "--port", str(plan.livy_port),
             "--plots-dir", str(plots_dir), "--token-file", env[TOKEN_FILE_ENV]],
            livy_log,
            env,
        )
        children.append(livy)
        _wait_port(plan.livy_port, livy, "the embedded Livy", livy_log)
        print(f"hail-emr-lab: embedded Livy at {env['HAIL_EMR_LAB_LIVY_URL']} (log {livy_log})")
        print(f"hail-emr-lab: embedded S3 at {env['AWS_ENDPOINT_URL']}, bucket {plan.bucket}, objects in {s3_dir} "
              f"(log {s3_log})")
        print(f"hail-emr-lab: serving the home {root}")
        print("hail-emr-lab: in a notebook run  %load_ext hail_emr_lab  then  %hail connect")
        jupyter = shutil.which("jupyter", path=str(install_bin())) or "jupyter"
        # An explicit shell: without one, Jupyter starts a login shell when its output is not a
        # terminal, and /etc/profile then resets PATH (losing this install's bin/).
        shell = env.get("SHELL") or shutil.which("bash") or "sh"
        cmd = [jupyter, "lab", f"--ServerApp.root_dir={root}",
               f"--ServerApp.terminado_settings=shell_command={shell}"]
        if not plan.open_browser:
            cmd.append("--no-browser")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI machines often run as root
        cmd += [a for a in plan.lab_args if a != "--"]
        lab = subprocess.Popen(cmd, env=env, cwd=str(root))
        signal.signal(signal.SIGTERM, lambda *_: lab.terminate())
        try:
            return lab.wait()
        except KeyboardInterrupt:
            lab.send_signal(signal.SIGINT)
            return lab.wait()
    finally:
        stop_children()


def _ensure_bucket(env: dict[str, str], bucket: str) -> None:
    s3 = _s3(env)
    existing: Optional[list] = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in (existing or []):
        s3.create_bucket(Bucket=bucket)


def seed_tutorials(env: dict[str, str], bucket: str, home: Path, log: Path) -> None:
    """Put the tutorials in the embedded S3 and seed them into ``home`` with ``sync seed``.

    ``sync seed`` never clobbers a notebook the user edited (it saves the new version beside
    it), and the state it keeps makes later starts no-ops. When the seed fails the lab still
    starts: a warning names ``log``, where its output is.
    """
    source = tutorials_dir()
    if source is None:
        print("hail-emr-lab: no tutorials found in this install; the home is not seeded")
        return
    if (home / TUTORIALS_PREFIX).resolve() == source.resolve():
        return  # serving the checkout itself (--root): its tutorials are already there
    s3 = _s3(env)
    for notebook in sorted(source.glob("*.ipynb")):
        s3.upload_file(str(notebook), bucket, f"{TUTORIALS_PREFIX}/{notebook.name}")
    cmd = [sys.executable, "-m", "hail_emr_lab", "sync", "seed", "--home", str(home), "--bucket", bucket, "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(log.parent))
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(f"hail-emr-lab: warning: seeding the tutorials into {home} failed (exit {done.returncode}); "
              f"see {log}", file=sys.stderr)
        return
    report = json.loads(done.stdout)
    new = [p for p in report.get("downloaded", []) if p.startswith(TUTORIALS_PREFIX + "/")]
    if new:
        print(f"hail-emr-lab: seeded {len(new)} tutorial file(s) into {home / TUTORIALS_PREFIX}")


def _s3(env: dict[str, str]):  # noqa: ANN202 - a boto3 S3 client
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
