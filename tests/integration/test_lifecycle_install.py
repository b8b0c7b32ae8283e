"""``lifecycle install`` against moto's SageMaker over HTTP: create, then update.

moto 5 implements Create/Describe/DeleteNotebookInstanceLifecycleConfig but not Update, so this
module runs its own moto server (in a thread) with the missing action added, implemented like
SageMaker's: replace OnCreate/OnStart of an existing configuration, error if it does not exist.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError
from support.net import free_port, wait_http

from hail_emr_lab import lifecycle
from hail_emr_lab.lifecycle import LifecycleError, LifecycleParams


def _add_update_action() -> None:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    if hasattr(SageMakerResponse, "update_notebook_instance_lifecycle_config"):
        return

    def update_notebook_instance_lifecycle_config(self):  # noqa: ANN001, ANN202 - moto's handler shape
        name = self._get_param("NotebookInstanceLifecycleConfigName")
        configs = self.sagemaker_backend.notebook_instance_lifecycle_configurations
        if name not in configs:
            raise ValidationError(message=f"Unable to update Notebook Instance Lifecycle Config {name}.")
        config = configs[name]
        if self._get_param("OnCreate") is not None:
            config.on_create = self._get_param("OnCreate")
        if self._get_param("OnStart") is not None:
            config.on_start = self._get_param("OnStart")
        config.last_modified_time = utcnow()
        return ActionResult({})

    SageMakerResponse.update_notebook_instance_lifecycle_config = update_notebook_instance_lifecycle_config


@pytest.fixture(scope="module")
def sagemaker_server():
    from moto.server import ThreadedMotoServer

    _add_update_action()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/moto-api/")
        yield url
    finally:
        server.stop()


@pytest.fixture
def sm_env(sagemaker_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", sagemaker_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return sagemaker_server


def _stored(name: str) -> dict[str, str]:
    desc = boto3.client("sagemaker").describe_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=name
    )
    return {hook: base64.b64decode(desc[hook][0]["Content"]).decode() for hook in ("OnCreate", "OnStart")}


def test_install_creates_then_updates(sm_env, tmp_path):
    first = tmp_path / "first"
    lifecycle.render(LifecycleParams(bucket="hel-bucket", cluster_id="j-FIRST1"), first)
    result = lifecycle.install("hail-emr-lab-alice", first)
    assert result["action"] == "created"
    assert result["arn"].endswith(":notebook-instance-lifecycle-config/hail-emr-lab-alice")
    stored = _stored("hail-emr-lab-alice")
    assert stored["OnStart"] == (first / "on-start.sh").read_text()
    assert stored["OnCreate"] == (first / "on-create.sh").read_text()

    # Update through the CLI, rendering in one go.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hail_emr_lab",
            "lifecycle",
            "install",
            "--name",
            "hail-emr-lab-alice",
            "--bucket",
            "hel-bucket",
            "--cluster-id",
            "j-SECOND2",
            "--region",
            "us-east-1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "updated lifecycle configuration hail-emr-lab-alice" in done.stdout
    stored = _stored("hail-emr-lab-alice")
    assert "CLUSTER_ID=j-SECOND2" in stored["OnStart"]
    assert "j-FIRST1" not in stored["OnStart"]


def test_install_refuses_invalid_scripts_and_names(sm_env, tmp_path):
    lifecycle.render(LifecycleParams(bucket="hel-bucket"), tmp_path)
    with pytest.raises(LifecycleError, match="1-63 letters"):
        lifecycle.install("x" * 64, tmp_path)
    (tmp_path / "on-start.sh").write_text((tmp_path / "on-start.sh").read_text() + "curl https://example.com\n")
    with pytest.raises(LifecycleError, match="not ready for SageMaker"):
        lifecycle.install("hail-emr-lab-bad", tmp_path)
    with pytest.raises(ClientError, match="does not exist"):
        boto3.client("sagemaker").describe_notebook_instance_lifecycle_config(
            NotebookInstanceLifecycleConfigName="hail-emr-lab-bad"
        )


def test_install_cli_errors_are_one_paragraph(sm_env, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "install", "--name", "bad name"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "SageMaker names have 1-63 letters" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "install", "--name", "ok-name"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "needs --bucket" in done.stderr
