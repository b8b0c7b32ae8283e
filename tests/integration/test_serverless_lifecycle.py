"""EMR Serverless in the lifecycle tooling: the IAM policy (checked with the IAM evaluator of
test_lifecycle_iam), the rendered scripts writing the ``serverless_*`` config keys (run in the
notebook-instance sandbox of test_lifecycle_sandbox), and ``hail-emr-lab clusters``."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from test_lifecycle_iam import evaluate
from test_lifecycle_sandbox import AL2, Instance, _notebook_instance, _render

from hail_emr_lab.config import load_config
from hail_emr_lab.lifecycle import LifecycleError, LifecycleParams, iam_policy

APP = "00fabcdexample"
ROLE = "arn:aws:iam::123456789012:role/HailServerless"
APP_ARN = f"arn:aws:emr-serverless:us-east-1:123456789012:/applications/{APP}"
TO_EMRS = {"iam:PassedToService": "emr-serverless.amazonaws.com"}


@pytest.mark.parametrize(
    "action, resource, context, allowed",
    [
        ("emr-serverless:AccessLivyEndpoints", APP_ARN, {}, True),
        ("emr-serverless:GetDashboardForJobRun", f"{APP_ARN}/jobruns/00f1234", {}, True),
        ("emr-serverless:GetApplication", APP_ARN, {}, True),
        ("emr-serverless:StartApplication", APP_ARN, {}, True),
        ("emr-serverless:ListApplications", "*", {}, True),
        ("emr-serverless:AccessLivyEndpoints", APP_ARN.replace(APP, "00fotherapp"), {}, False),
        ("emr-serverless:StopApplication", APP_ARN, {}, False),
        ("emr-serverless:DeleteApplication", APP_ARN, {}, False),
        ("iam:PassRole", ROLE, TO_EMRS, True),
        ("iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}, False),
        ("iam:PassRole", ROLE, {}, False),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/Admin", TO_EMRS, False),
    ],
)
def test_serverless_statements(action, resource, context, allowed):
    policy = iam_policy("hel-bucket", "alice", serverless_app=APP, execution_role=ROLE)
    assert evaluate(policy, action, resource, context) is allowed


def test_serverless_is_off_by_default_and_needs_both_values():
    plain = iam_policy("hel-bucket", "alice")
    assert not evaluate(plain, "emr-serverless:AccessLivyEndpoints", APP_ARN)
    assert not evaluate(plain, "iam:PassRole", ROLE, TO_EMRS)
    with pytest.raises(LifecycleError, match="--execution-role needs an IAM role ARN"):
        iam_policy("hel-bucket", "alice", serverless_app=APP)
    with pytest.raises(LifecycleError, match="--serverless-app needs an EMR Serverless application id"):
        iam_policy("hel-bucket", "alice", execution_role=ROLE)
    with pytest.raises(LifecycleError, match="--execution-role needs an IAM role ARN"):
        LifecycleParams(bucket="hel-bucket", serverless_app=APP, serverless_execution_role="HailServerless").validate()


def test_cli_iam_policy_with_serverless():
    out = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "iam-policy", "--bucket", "hel-bucket", "--user", "alice",
         "--serverless-app", APP, "--execution-role", ROLE],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    policy = json.loads(out.stdout)
    assert evaluate(policy, "emr-serverless:AccessLivyEndpoints", APP_ARN)


@pytest.mark.slow
def test_rendered_on_start_writes_the_serverless_keys(tmp_path, aws_env, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="hel-bucket")
    arn = _notebook_instance("alice", {})
    scripts = _render(tmp_path, serverless_app=APP, serverless_execution_role=ROLE)
    box = Instance(tmp_path, aws_env, arn, "alice", AL2)
    created, _ = box.run(scripts / "on-create.sh")
    assert created.returncode == 0, created.stdout + created.stderr
    started, _ = box.run(scripts / "on-start.sh")
    assert started.returncode == 0, started.stdout + started.stderr
    path = box.home / ".hail-emr-lab/config.json"
    config = json.loads(path.read_text())
    assert config["serverless_app"] == APP and config["serverless_execution_role"] == ROLE
    monkeypatch.setenv("HAIL_EMR_LAB_CONFIG", str(path))
    loaded = load_config()
    assert loaded.get("serverless_app") == APP and loaded.source("serverless_app") == str(path)
    assert loaded.as_dict()["serverless_execution_role"] == {"value": ROLE, "source": str(path)}
    box.wait_background()


def test_clusters_lists_livy_enabled_serverless_applications(aws_env):
    client = boto3.client("emr-serverless")
    app = client.create_application(name="hail-interactive", releaseLabel="emr-7.2.0", type="SPARK",
                                    interactiveConfiguration={"livyEndpointEnabled": True})["applicationId"]
    client.create_application(name="too-old", releaseLabel="emr-6.10.0", type="SPARK")
    out = subprocess.run([sys.executable, "-m", "hail_emr_lab", "clusters"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "EMR Serverless applications with a Livy endpoint" in out.stdout
    assert app in out.stdout and "hail-interactive" in out.stdout and "too-old" not in out.stdout
    assert f"https://{app}.livy.emr-serverless-services.us-east-1.amazonaws.com" in out.stdout
    out = subprocess.run([sys.executable, "-m", "hail_emr_lab", "clusters", "--json"], capture_output=True,
                         text=True, timeout=120)
    data = json.loads(out.stdout)
    assert [a["application_id"] for a in data if a.get("kind") == "emr-serverless"] == [app]
