"""EMR-side set-up: the plot-directory step and the recommended Livy settings.

The step runs ``lifecycle-scripts/emr/create-plots-dir.sh`` (uploaded to
``s3://<bucket>/scripts/emr/``) through ``command-runner.jar``, or, without a bucket, an
equivalent inline ``bash -c``. The same step is given in three shapes: for
``aws emr add-steps --steps file://...``, for the API / boto3 (``HadoopJarStep``), and as a
CloudFormation ``AWS::EMR::Step``.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from .params import LifecycleError, check_bucket, check_plots_dir
from .render import template

SCRIPT_NAME = "create-plots-dir.sh"
SCRIPT_KEY = f"scripts/emr/{SCRIPT_NAME}"
LIVY_CONF_KEY = "scripts/emr/livy-conf.json"
STEP_NAME = "hail-emr-lab: create the plot directory"


def livy_configurations() -> list[dict[str, Any]]:
    """The recommended ``livy-conf`` classification (reap idle sessions, never busy ones).

    Instead of the Quick Start's ``timeout-check=false`` (sessions live forever and hold YARN
    memory), Livy reaps sessions idle for 8 h, never interrupts a running statement
    (``skip-busy``), and its heartbeat watchdog removes sessions whose client stopped sending
    heartbeats (hail-emr-lab creates sessions with ``heartbeatTimeoutInSecond``).
    """
    return json.loads(template("emr/livy-conf.json"))


def step_command(bucket: str | None, plots_dir: str = "/plots", web: bool = False) -> list[str]:
    """The command-runner.jar arguments that create ``plots_dir`` owned by livy."""
    check_plots_dir(plots_dir)
    quoted = shlex.quote(plots_dir)
    if bucket:
        check_bucket(bucket)
        local = "/tmp/hail-emr-lab-create-plots-dir.sh"
        script = (
            f"aws s3 cp s3://{bucket}/{SCRIPT_KEY} {local} --only-show-errors && "
            f"bash {local} --plots-dir {quoted}{' --web' if web else ''}"
        )
    elif web:
        script = (
            "sudo mkdir -p /var/www/html/plots && "
            f"sudo ln -sfn /var/www/html/plots {quoted} && sudo chown livy:livy /var/www/html/plots"
        )
    else:
        script = f"sudo mkdir -p {quoted} && sudo chmod 0755 {quoted} && sudo chown livy:livy {quoted}"
    return ["bash", "-c", script]


def emr_steps(
    bucket: str | None = None,
    plots_dir: str = "/plots",
    web: bool = False,
    cluster_ref: str = "EmrCluster",
    action_on_failure: str = "CONTINUE",
) -> dict[str, Any]:
    """The plot-directory step in every shape, plus the Livy configuration.

    Keys: ``add_steps`` (``aws emr add-steps --steps file://``), ``api_steps`` (boto3
    ``add_job_flow_steps`` / ``run_job_flow``), ``cloudformation`` (a template fragment with an
    ``AWS::EMR::Step`` on ``{"Ref": cluster_ref}``), ``configurations`` (``livy-conf``), and
    ``script`` (the S3 URL the step expects, or None for the inline variant).
    """
    if action_on_failure not in ("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER"):
        raise LifecycleError(
            f"action on failure {action_on_failure!r}: use CONTINUE, CANCEL_AND_WAIT or TERMINATE_CLUSTER"
        )
    args = step_command(bucket, plots_dir, web)
    jar_step = {"Jar": "command-runner.jar", "Args": args}
    return {
        "add_steps": [{"Type": "CUSTOM_JAR", "Name": STEP_NAME, "ActionOnFailure": action_on_failure, **jar_step}],
        "api_steps": [{"Name": STEP_NAME, "ActionOnFailure": action_on_failure, "HadoopJarStep": jar_step}],
        "cloudformation": {
            "Resources": {
                "HailEmrLabPlotsDir": {
                    "Type": "AWS::EMR::Step",
                    "Properties": {
                        "Name": STEP_NAME,
                        "ActionOnFailure": action_on_failure,
                        "HadoopJarStep": jar_step,
                        "JobFlowId": {"Ref": cluster_ref},
                    },
                }
            }
        },
        "configurations": livy_configurations(),
        "script": f"s3://{bucket}/{SCRIPT_KEY}" if bucket else None,
    }


def upload_emr_scripts(bucket: str, session: Any = None) -> list[str]:
    """Put the plot-directory script and the Livy configuration under ``s3://bucket/scripts/emr/``."""
    check_bucket(bucket)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.session.Session()
    uploaded = []
    try:
        s3 = session.client("s3")
        for key, name, content_type in (
            (SCRIPT_KEY, f"emr/{SCRIPT_NAME}", "text/x-shellscript"),
            (LIVY_CONF_KEY, "emr/livy-conf.json", "application/json"),
        ):
            s3.put_object(Bucket=bucket, Key=key, Body=template(name).encode(), ContentType=content_type)
            uploaded.append(f"s3://{bucket}/{key}")
    except (ClientError, BotoCoreError) as exc:
        raise LifecycleError(f"could not upload the EMR scripts to s3://{bucket}/scripts/emr/: {exc}") from None
    return uploaded
