"""Run the rendered on-create / on-start scripts in a sandbox that imitates a notebook instance.

The sandbox is a temporary root (``HEL_ROOT``) with ``opt/ml/metadata/resource-metadata.json``,
``home/ec2-user/SageMaker``, a JupyterSystemEnv whose ``pip`` and ``jupyter`` are recording
stand-ins (pip "installs" hail-emr-lab by linking this checkout's command), ``etc/os-release``;
recording stand-ins for ``sudo`` (runs the command as the current user), ``chown``,
``systemctl``, ``initctl`` and ``crontab`` (keeps the table in a file) come first on
SageMaker's PATH. S3, SageMaker tags and EMR are the moto server; the aws CLI and
``hail-emr-lab sync`` are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from hail_emr_lab import lifecycle
from hail_emr_lab.lifecycle import LifecycleParams

pytestmark = pytest.mark.slow

# The venv running the tests (a git worktree has no .venv of its own).
VENV_BIN = Path(sys.executable).parent
BUCKET = "hel-bucket"
AL2 = 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nVERSION_ID="2"\nPRETTY_NAME="Amazon Linux 2"\n'
AL1 = (
    'NAME="Amazon Linux AMI"\nVERSION="2018.03"\nID="amzn"\nVERSION_ID="2018.03"\n'
    'HOME_URL="http://aws.amazon.com/amazon-linux-ami/"\n'
)

STUBS = {
    # sudo [-u USER] [-H] [--] CMD...: record, then run CMD as the current user.
    "sudo": """
echo "sudo $*" >>"$HEL_RECORD"
while [ $# -gt 0 ]; do
  case $1 in -u|-g) shift 2 ;; --) shift; break ;; -*) shift ;; *) break ;; esac
done
exec "$@"
""",
    "chown": """
echo "chown $*" >>"$HEL_RECORD"
for a in "$@"; do case $a in -*) ;; *) [ -n "${owner:-}" ] || owner=$a ;; esac; done
[[ $owner =~ ^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$ ]] || { echo "chown: bad owner $owner" >&2; exit 1; }
""",
    "systemctl": 'echo "systemctl $*" >>"$HEL_RECORD"\n',
    # yum install -y RPM: record; "installs" the Session Manager plugin when given its rpm.
    "yum": """
echo "yum $*" >>"$HEL_RECORD"
for a in "$@"; do case $a in *.rpm) [ -f "$a" ] || { echo "yum: no such file $a" >&2; exit 1; } ;; esac; done
mkdir -p "$HEL_ROOT/usr/local/bin"
printf '#!/bin/sh\necho 1.2.0\n' >"$HEL_ROOT/usr/local/bin/session-manager-plugin"
chmod +x "$HEL_ROOT/usr/local/bin/session-manager-plugin"
""",
    "initctl": 'echo "initctl $*" >>"$HEL_RECORD"\n',
    "crontab": """
echo "crontab $*" >>"$HEL_RECORD"
case ${1:-} in
  -l) if [ -f "$HEL_CRONTAB" ]; then cat "$HEL_CRONTAB"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat >"$HEL_CRONTAB" ;;
  *) cp "$1" "$HEL_CRONTAB" ;;
esac
""",
    "aws": f'exec {shlex.quote(str(VENV_BIN / "aws"))} "$@"\n',
}

CONDA_STUBS = {
    "pip": f"""
echo "pip $*" >>"$HEL_RECORD"
if [ "$1" = install ]; then
  for a in "$@"; do case $a in *.whl) [ -f "$a" ] || {{ echo "pip: no such file $a" >&2; exit 1; }} ;; esac; done
  printf '#!/bin/bash\\nexec %s "$@"\\n' {shlex.quote(str(VENV_BIN / "hail-emr-lab"))} >"$(dirname "$0")/hail-emr-lab"
  chmod +x "$(dirname "$0")/hail-emr-lab"
fi
""",
    "jupyter": 'echo "jupyter $*" >>"$HEL_RECORD"\n',
    "python": f'exec {shlex.quote(str(VENV_BIN / "python"))} "$@"\n',
}


def _write_exe(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\nset -euo pipefail\n" + body.lstrip())
    path.chmod(0o755)


class Instance:
    """One imitated notebook instance: its root, stand-ins, records and a way to run scripts."""

    def __init__(self, base: Path, moto: str, arn: str, name: str, os_release: str) -> None:
        self.root = base / "root"
        self.stubs = base / "stubs"
        self.record = base / "record.log"
        self.crontab = base / "crontab"
        self.moto = moto
        self.home = self.root / "home/ec2-user"
        self.nb_home = self.home / "SageMaker"
        self.conda_bin = self.home / "anaconda3/envs/JupyterSystemEnv/bin"
        self.log_dir = self.root / "var/log/hail-emr-lab"
        meta = self.root / "opt/ml/metadata/resource-metadata.json"
        for directory in (self.stubs, self.nb_home, self.conda_bin, meta.parent, self.root / "etc", self.root / "root"):
            directory.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"ResourceArn": arn, "ResourceName": name}))
        self.meta = meta
        (self.root / "etc/os-release").write_text(os_release)
        for name_, body in STUBS.items():
            _write_exe(self.stubs / name_, body)
        for name_, body in CONDA_STUBS.items():
            _write_exe(self.conda_bin / name_, body)
        self.record.touch()

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.stubs}:/sbin:/bin:/usr/sbin:/usr/bin",
            "HEL_ROOT": str(self.root),
            "HEL_RECORD": str(self.record),
            "HEL_CRONTAB": str(self.crontab),
            "HOME": str(self.root / "root"),
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # On a real instance the metadata file is at its default path.
            "HAIL_EMR_LAB_METADATA": str(self.meta),
            # The checkout under test, also for the hail-emr-lab the stand-in pip "installs".
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        }

    def run(self, script: Path) -> tuple[subprocess.CompletedProcess, float]:
        start = time.monotonic()
        done = subprocess.run(
            ["/bin/bash", str(script)], cwd="/", env=self.env(), capture_output=True, text=True, timeout=120
        )
        return done, time.monotonic() - start

    def wait_background(self, timeout: float = 240) -> str:
        marker = self.log_dir / "on-start.done"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if time.monotonic() > deadline:
                raise AssertionError("background part did not finish:\n" + self.log())
            time.sleep(0.3)
        return marker.read_text()

    def log(self) -> str:
        path = self.log_dir / "on-start.log"
        return path.read_text() if path.exists() else "(no log)"

    def records(self) -> list[str]:
        return self.record.read_text().splitlines()

    def snapshot(self) -> dict[str, tuple]:
        """Every user-visible file under the home (not the sync's private state) and the crontab."""
        out: dict[str, tuple] = {}
        for path in sorted(self.home.rglob("*")):
            rel = path.relative_to(self.home).as_posix()
            if rel.startswith(("anaconda3", "SageMaker/.hail-emr-lab-sync")):
                continue
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[rel] = (digest, st.st_mtime_ns, st.st_mode)
        out["<crontab>"] = (self.crontab.read_text() if self.crontab.exists() else None,)
        return out


def _put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def bucket(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    objects = {
        "alice/notebooks/analysis.ipynb": b'{"cells": [], "nbformat": 4}',
        "alice/data/samples one.tsv": b"s1\t1\ns2\t2\n",
        "bob/private.ipynb": b"bob's",
        "common-notebooks/01-getting-started.ipynb": b'{"cells": ["hello"]}',
        "scripts/list-clusters": b"#!/bin/bash\necho clusters\n",
        "packages/hail_emr_lab-0.1.0-py3-none-any.whl": b"PK\x03\x04 stand-in wheel",
        "packages/hail_emr_lab-0.0.9-py3-none-any.whl": b"PK\x03\x04 older",
    }
    for key, body in objects.items():
        _put(s3, key, body)
    return objects


def _notebook_instance(name: str, tags: dict[str, str]) -> str:
    sm = boto3.client("sagemaker")
    answer = sm.create_notebook_instance(
        NotebookInstanceName=name,
        InstanceType="ml.t3.medium",
        RoleArn="arn:aws:iam::123456789012:role/notebook-role",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    return answer["NotebookInstanceArn"]


def _render(tmp_path: Path, **params) -> Path:
    out = tmp_path / "rendered"
    lifecycle.render(LifecycleParams(bucket=BUCKET, **params), out)
    assert lifecycle.validate_dir(out) == {"on-create.sh": [], "on-start.sh": []}
    return out


def test_create_then_two_starts_on_amazon_linux_2(tmp_path, bucket, aws_env):
    arn = _notebook_instance("alice", {"owner": "alice"})
    scripts = _render(tmp_path, livy_url="http://10.1.2.3:8998")
    box = Instance(tmp_path, aws_env, arn, "alice", AL2)
    outside = {p.name for p in tmp_path.iterdir()}

    created, _ = box.run(scripts / "on-create.sh")
    assert created.returncode == 0, created.stdout + created.stderr
    assert (box.nb_home / ".hail-emr-lab-lifecycle/created").is_file()
    assert f"chown ec2-user:ec2-user {box.nb_home}" in box.records()

    started, seconds = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stdout + started.stderr
    print(f"on-start synchronous part: {seconds:.2f} s")
    assert seconds < 30, f"synchronous part took {seconds:.1f} s"
    status = box.wait_background()
    log = box.log()
    assert status.strip() == "done failed=none", log

    # Config files: exactly the config keys, and sparkmagic pointing at the cluster.
    config = json.loads((box.home / ".hail-emr-lab/config.json").read_text())
    assert config == {"bucket": BUCKET, "prefix": "alice", "region": "us-east-1", "livy_url": "http://10.1.2.3:8998"}
    from hail_emr_lab.config import KEYS

    assert set(config) <= set(KEYS)
    sparkmagic = json.loads((box.home / ".sparkmagic/config.json").read_text())
    assert sparkmagic["kernel_python_credentials"]["url"] == "http://10.1.2.3:8998"
    assert (box.home / ".hail-emr-lab/config.json").stat().st_mode & 0o777 == 0o600
    records = box.records()
    assert f"chown ec2-user:ec2-user {box.home}/.hail-emr-lab" in records

    # Installed offline from the newest wheel in s3://bucket/packages/, extensions enabled.
    pip = [r for r in records if r.startswith("pip install")]
    assert (
        len(pip) == 1 and "--no-index --find-links" in pip[0] and pip[0].endswith("hail_emr_lab-0.1.0-py3-none-any.whl")
    )
    assert "jupyter server extension enable --sys-prefix hail_emr_lab" in records
    assert "jupyter labextension enable hail-emr-lab" in records
    assert "systemctl --no-block restart jupyter-server.service" in records
    assert not any(r.startswith("initctl") for r in records)

    # Home restored (only alice's files), shared notebooks and scripts seeded, as ec2-user.
    assert (box.nb_home / "notebooks/analysis.ipynb").read_bytes() == bucket["alice/notebooks/analysis.ipynb"]
    assert (box.nb_home / "data/samples one.tsv").read_bytes() == bucket["alice/data/samples one.tsv"]
    assert not (box.nb_home / "private.ipynb").exists() and not (box.nb_home / "bob").exists()
    assert (box.nb_home / "common-notebooks/01-getting-started.ipynb").read_bytes() == bucket[
        "common-notebooks/01-getting-started.ipynb"
    ]
    assert (box.nb_home / "bin/list-clusters").read_bytes() == bucket["scripts/list-clusters"]
    assert (box.nb_home / ".hail-emr-lab-lifecycle/restored").is_file()
    for action in ("restore", "seed", "install-cron"):
        assert any(r.startswith("sudo -u ec2-user") and f" sync {action} " in r for r in records), action

    # The 5-minute backup is in ec2-user's crontab.
    table = box.crontab.read_text()
    assert table.count("# hail-emr-lab-sync") == 1
    assert "*/5 * * * *" in table and " sync backup " in table

    # Second start: nothing changes, nothing is reinstalled, Jupyter is not restarted.
    before = box.snapshot()
    seen = len(records)
    started, seconds = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    assert box.wait_background().strip() == "done failed=none", box.log()
    assert box.snapshot() == before
    new = box.records()[seen:]
    assert not any(r.startswith(("pip install", "systemctl", "initctl")) for r in new), new
    assert not any(" sync restore " in r for r in new)
    assert "hail-emr-lab 0.1.0 already installed" in box.log()
    # Every path the scripts touched is under HEL_ROOT (besides the crontab stand-in's file).
    assert {p.name for p in tmp_path.iterdir()} <= outside | {"crontab"}
    assert (box.root / "var/cache/hail-emr-lab/packages/hail_emr_lab-0.1.0-py3-none-any.whl").is_file()


def test_tags_select_the_cluster_on_amazon_linux_1(tmp_path, bucket, aws_env):
    emr = boto3.client("emr")
    cluster = emr.run_job_flow(
        Name="hail-prod",
        ReleaseLabel="emr-6.15.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 2,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]
    master = emr.describe_cluster(ClusterId=cluster)["Cluster"]["MasterPublicDnsName"]
    arn = _notebook_instance(
        "alice-2",
        {
            "hail-emr-lab:cluster-id": cluster,
            "hail-emr-lab:prefix": "alice",
            "hail-emr-lab:livy-url": "javascript:alert(1)",  # invalid: ignored, logged
        },
    )
    # One configuration for many users: rendered with the bucket and a default cluster name only.
    scripts = _render(tmp_path, cluster_name="shared default", package_source="pypi")
    box = Instance(tmp_path, aws_env, arn, "alice-2", AL1)
    started, seconds = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    assert seconds < 30
    assert "ignoring tag hail-emr-lab:livy-url: invalid value" in started.stdout
    assert box.wait_background().strip() == "done failed=none", box.log()

    config = json.loads((box.home / ".hail-emr-lab/config.json").read_text())
    assert config == {"bucket": BUCKET, "prefix": "alice", "region": "us-east-1", "cluster_id": cluster}
    sparkmagic = json.loads((box.home / ".sparkmagic/config.json").read_text())
    assert sparkmagic["kernel_python_credentials"]["url"] == f"http://{master}:8998"
    records = box.records()
    assert "pip install hail-emr-lab" in records
    assert "initctl restart jupyter-server --no-wait" in records
    assert not any(r.startswith("systemctl") for r in records)
    # The tag's prefix is the one restored from.
    assert (box.nb_home / "notebooks/analysis.ipynb").is_file()


def test_a_failing_step_never_fails_the_start(tmp_path, aws_env):
    """No bucket objects at all (no wheel): the install fails, is logged, the start succeeds."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    arn = _notebook_instance("carol", {})
    scripts = _render(tmp_path, cluster_id="j-NOSUCHCLUSTER")
    box = Instance(tmp_path, aws_env, arn, "carol", AL2)
    started, _ = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    status = box.wait_background()
    assert "[install hail-emr-lab (s3)]" in status and "[restore home" in status, status
    log = box.log()
    assert "no hail_emr_lab wheel in s3://hel-bucket/packages/" in log
    assert "FAILED" in log and "background work done" in log
    # The config is still written; without an install, Jupyter restarts only for the settings it
    # had not read yet (the raised IOPub data rate), and on the next start not at all.
    config = json.loads((box.home / ".hail-emr-lab/config.json").read_text())
    assert config["cluster_id"] == "j-NOSUCHCLUSTER"
    assert "iopub_data_rate_limit = 1e10" in log
    seen = len(box.records())
    box.run(scripts / "on-start.sh")
    box.wait_background()
    assert not any(r.startswith("systemctl") for r in box.records()[seen:])
    assert not (box.nb_home / ".hail-emr-lab-lifecycle/restored").exists()


def test_no_route_to_aws_still_starts_quickly(tmp_path):
    """Private subnet without endpoints: every AWS call fails; the start still succeeds, fast."""
    from support.net import free_port

    arn = "arn:aws:sagemaker:eu-west-1:123456789012:notebook-instance/erin"
    scripts = _render(tmp_path, livy_url="http://10.1.2.3:8998")
    box = Instance(tmp_path, f"http://127.0.0.1:{free_port()}", arn, "erin", AL2)
    started, seconds = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    assert seconds < 30
    assert "could not read the instance tags" in started.stdout
    config = json.loads((box.home / ".hail-emr-lab/config.json").read_text())
    assert config == {"bucket": BUCKET, "prefix": "erin", "region": "eu-west-1", "livy_url": "http://10.1.2.3:8998"}
    assert "[install hail-emr-lab (s3)]" in box.wait_background()


def test_ssm_plugin_from_the_bucket_once(tmp_path, bucket, aws_env):
    """render --ssm (offline): the Session Manager plugin's rpm comes from s3://BUCKET/packages/."""
    _put(boto3.client("s3"), "packages/session-manager-plugin.rpm", b"\xed\xab\xee\xdb stand-in rpm")
    arn = _notebook_instance("dave", {})
    scripts = _render(tmp_path, livy_url="http://10.1.2.3:8998", ssm=True)
    text = (scripts / "on-start.sh").read_text()
    assert "session-manager-plugin.rpm" in text and "curl" not in text, "offline scripts download nothing"
    box = Instance(tmp_path, aws_env, arn, "dave", AL2)
    started, _ = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    assert box.wait_background().strip() == "done failed=none", box.log()
    rpm = box.root / "var/cache/hail-emr-lab/session-manager-plugin.rpm"
    assert f"yum install -y {rpm}" in box.records()
    assert (box.root / "usr/local/bin/session-manager-plugin").is_file()
    # The next start finds it and installs nothing.
    seen = len(box.records())
    started, _ = box.run(scripts / "on-start.sh")
    assert box.wait_background().strip() == "done failed=none", box.log()
    assert not any(r.startswith("yum") for r in box.records()[seen:])
    assert "session-manager-plugin already installed" in box.log()


def test_ssm_plugin_source_by_package_source(tmp_path):
    """Without --ssm nothing about the plugin; with pypi (internet) its documented download URL."""
    plain = _render(tmp_path / "plain")
    assert "session-manager-plugin" not in (plain / "on-start.sh").read_text()
    online = tmp_path / "online"
    lifecycle.render(LifecycleParams(bucket=BUCKET, package_source="pypi", ssm=True), online)
    assert lifecycle.validate_dir(online) == {"on-create.sh": [], "on-start.sh": []}
    text = (online / "on-start.sh").read_text()
    assert "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/$arch/session-manager-plugin.rpm" in text
    assert "s3://$BUCKET/packages/session-manager-plugin.rpm" not in text


def _iopub_limit(config_dir: Path) -> float:
    """What the real jupyter_server reads from ``config_dir`` for the IOPub data rate (bytes/s)."""
    code = (
        "from jupyter_server.serverapp import ServerApp\n"
        "from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection as Z\n"
        "app = ServerApp(); app.load_config_file()\n"
        "print(Z(config=app.config).iopub_data_rate_limit)\n"
    )
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(config_dir), "JUPYTER_CONFIG_DIR": str(config_dir / "user")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_iopub_data_rate_is_raised_for_jupyter_server_2(tmp_path, aws_env):
    """The Quick Start's iopub_data_rate_limit, set where JupyterLab 4's jupyter_server reads it,
    merged into an existing config, once; Jupyter restarts only when it changed."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    arn = _notebook_instance("erin", {})
    scripts = _render(tmp_path, livy_url="http://10.1.2.3:8998")
    box = Instance(tmp_path, aws_env, arn, "erin", AL2)
    conf_dir = box.conda_bin.parent / "etc/jupyter"
    conf_dir.mkdir(parents=True)
    assert _iopub_limit(conf_dir) == 1e6, "jupyter_server's default (1 MB/s) is what the Quick Start raised"
    (conf_dir / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"shutdown_no_activity_timeout": 7}}))

    started, _ = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stderr
    status = box.wait_background()  # no wheel in the bucket: the install fails, the settings do not
    assert "[Jupyter settings" not in status, box.log()
    data = json.loads((conf_dir / "jupyter_server_config.json").read_text())
    assert data == {
        "ServerApp": {"shutdown_no_activity_timeout": 7},
        "ZMQChannelsWebsocketConnection": {"iopub_data_rate_limit": 1e10},
    }
    assert _iopub_limit(conf_dir) == 1e10
    # The venv's notebook is 7 (on jupyter_server): no classic notebook config is written.
    assert not (conf_dir / "jupyter_notebook_config.json").exists()
    assert "systemctl --no-block restart jupyter-server.service" in box.records()

    seen = len(box.records())
    started, _ = box.run(scripts / "on-start.sh")
    box.wait_background()
    assert not any(r.startswith("systemctl") for r in box.records()[seen:]), "nothing changed: no restart"
