"""The EMR plot-directory script in a sandbox (HEL_ROOT, stand-ins for sudo, chown and id), the
step JSON in its three shapes, and the step run as EMR would run it, fetching the script from S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from hail_emr_lab import lifecycle
from hail_emr_lab.lifecycle import LifecycleError
from hail_emr_lab.lifecycle.render import scripts_dir

SCRIPT = scripts_dir() / "emr" / "create-plots-dir.sh"
VENV_BIN = Path(sys.executable).parent  # the venv running the tests has the aws CLI


@pytest.fixture
def sandbox(tmp_path):
    """(root, run, records): run the script as EMR's hadoop user would, with recording stand-ins."""
    root, stubs, record, users = tmp_path / "root", tmp_path / "stubs", tmp_path / "record.log", tmp_path / "users"
    for d in (root, stubs, users):
        d.mkdir()
    (users / "livy").touch()
    record.touch()
    stand_ins = {
        "sudo": 'echo "sudo $*" >>"$HEL_RECORD"\nexec "$@"\n',
        "chown": 'echo "chown $*" >>"$HEL_RECORD"\n',
        # id USER succeeds for the users in $HEL_USERS; id -u says "not root" (like hadoop).
        "id": 'if [ "${1:-}" = -u ]; then echo 1001; exit 0; fi\n'
        'if [ $# -eq 1 ] && [ -e "$HEL_USERS/$1" ]; then echo "uid=990($1)"; exit 0; fi\n'
        'echo "id: $*: no such user" >&2; exit 1\n',
        "aws": f'exec {VENV_BIN / "aws"} "$@"\n',
    }
    for name, body in stand_ins.items():
        (stubs / name).write_text("#!/bin/bash\n" + body)
        (stubs / name).chmod(0o755)

    def env(extra=None):
        return {
            "PATH": f"{stubs}:/sbin:/bin:/usr/sbin:/usr/bin",
            "HEL_ROOT": str(root),
            "HEL_RECORD": str(record),
            "HEL_USERS": str(users),
            "HEL_LOG": str(tmp_path / "bg.log"),
            **(extra or {}),
        }

    def run(*args, extra_env=None, command=None):
        cmd = command or ["/bin/bash", str(SCRIPT), *args]
        return subprocess.run(cmd, cwd="/", env=env(extra_env), capture_output=True, text=True, timeout=60)

    return root, run, record, users


def test_creates_the_plot_dir_owned_by_livy(sandbox):
    root, run, record, _ = sandbox
    done = run("--plots-dir", "/plots")
    assert done.returncode == 0, done.stderr
    plots = root / "plots"
    assert plots.is_dir() and not plots.is_symlink()
    assert plots.stat().st_mode & 0o777 == 0o755
    lines = record.read_text().splitlines()
    assert f"sudo mkdir -p {plots}" in lines
    assert f"sudo chown livy:livy {plots}" in lines and f"chown livy:livy {plots}" in lines
    # Idempotent: a second run succeeds and changes nothing.
    assert run("--plots-dir", "/plots").returncode == 0
    assert plots.is_dir()


def test_quick_start_web_layout(sandbox):
    root, run, record, _ = sandbox
    done = run("--web")
    assert done.returncode == 0, done.stderr
    target = root / "var/www/html/plots"
    assert (root / "plots").is_symlink() and os.readlink(root / "plots") == str(target)
    assert target.is_dir()
    assert f"chown livy:livy {target}" in record.read_text().splitlines()


def test_as_bootstrap_action_waits_for_the_livy_user(sandbox):
    root, run, record, users = sandbox
    (users / "livy").unlink()
    start = time.monotonic()
    done = run("--plots-dir", "/mnt/plots", "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 5, "the bootstrap action must not block"
    assert "does not exist yet" in done.stdout
    assert (root / "mnt/plots").is_dir()
    assert "chown" not in record.read_text()
    (users / "livy").touch()  # EMR installs Livy
    deadline = time.monotonic() + 20
    while f"chown livy:livy {root}/mnt/plots" not in record.read_text():
        assert time.monotonic() < deadline, "chown never happened"
        time.sleep(0.2)


@pytest.mark.parametrize(
    "args", [["--plots-dir", "/x/../etc"], ["--plots-dir", "plots"], ["--owner", "r;m"], ["--bogus"]]
)
def test_bad_arguments(sandbox, args):
    root, run, record, _ = sandbox
    done = run(*args)
    assert done.returncode == 2
    assert "create-plots-dir.sh" in done.stderr
    assert not record.read_text()


def test_step_shapes_and_livy_settings():
    out = lifecycle.emr_steps("hel-bucket", "/plots")
    (add,) = out["add_steps"]
    assert add["Type"] == "CUSTOM_JAR" and add["Jar"] == "command-runner.jar"
    assert add["Args"][:2] == ["bash", "-c"]
    assert "s3://hel-bucket/scripts/emr/create-plots-dir.sh" in add["Args"][2]
    (api,) = out["api_steps"]
    assert api["HadoopJarStep"] == {"Jar": "command-runner.jar", "Args": add["Args"]}
    props = out["cloudformation"]["Resources"]["HailEmrLabPlotsDir"]
    assert props["Type"] == "AWS::EMR::Step"
    assert props["Properties"]["JobFlowId"] == {"Ref": "EmrCluster"}
    (conf,) = out["configurations"]
    assert conf["Classification"] == "livy-conf"
    # Reap idle sessions instead of disabling the timeout as the Quick Start did.
    assert conf["Properties"]["livy.server.session.timeout-check"] == "true"
    assert conf["Properties"]["livy.server.session.timeout-check.skip-busy"] == "true"
    inline = lifecycle.emr_steps(None, "/plots")["add_steps"][0]["Args"][2]
    assert inline == "sudo mkdir -p /plots && sudo chmod 0755 /plots && sudo chown livy:livy /plots"
    with pytest.raises(LifecycleError):
        lifecycle.emr_steps(None, "/plots; rm -rf /")


def test_cli_prints_step_json():
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "emr-steps", "--format", "add-steps"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert steps[0]["Name"] == "hail-emr-lab: create the plot directory"


def test_step_runs_the_script_from_s3(sandbox, aws_env):
    """Upload the scripts, then run the step's command the way command-runner.jar would."""
    root, run, record, _ = sandbox
    boto3.client("s3").create_bucket(Bucket="hel-bucket")
    uploaded = lifecycle.upload_emr_scripts("hel-bucket")
    assert uploaded == [
        "s3://hel-bucket/scripts/emr/create-plots-dir.sh",
        "s3://hel-bucket/scripts/emr/livy-conf.json",
    ]
    body = boto3.client("s3").get_object(Bucket="hel-bucket", Key="scripts/emr/create-plots-dir.sh")["Body"].read()
    assert body == SCRIPT.read_bytes()
    args = lifecycle.emr_steps("hel-bucket", "/plots")["add_steps"][0]["Args"]
    creds = {
        "AWS_ENDPOINT_URL": aws_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = run(command=["/bin/bash", *args[1:]], extra_env=creds)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "plots").is_dir()
    assert f"chown livy:livy {root}/plots" in record.read_text().splitlines()
