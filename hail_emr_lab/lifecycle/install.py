"""Create or update a SageMaker notebook-instance lifecycle configuration through boto3."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .params import LifecycleError, check_sagemaker_name
from .validate import validate_dir


def _describe(client: Any, name: str) -> dict[str, Any] | None:
    """The existing configuration ``name``, or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        return client.describe_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        # SageMaker answers a missing config with ValidationException "Unable to describe ...".
        if error.get("Code") in ("ValidationException", "ResourceNotFound", "ResourceNotFoundException"):
            return None
        raise


def install(
    name: str,
    script_dir: Path,
    session: Any = None,
    region: str | None = None,
) -> dict[str, Any]:
    """Validate the scripts in ``script_dir`` and create (or update) configuration ``name``.

    Returns ``{"name", "action": "created"|"updated", "arn"}``. ``session`` is a boto3
    Session (default: boto3's standard chain, which honours ``AWS_ENDPOINT_URL``).
    """
    check_sagemaker_name(name)
    report = validate_dir(script_dir)
    bad = [f"{script}: {problem}" for script, problems in report.items() for problem in problems]
    if bad:
        raise LifecycleError("the scripts are not ready for SageMaker:\n  " + "\n  ".join(bad))
    hooks = {
        "OnCreate": [{"Content": base64.b64encode((Path(script_dir) / "on-create.sh").read_bytes()).decode()}],
        "OnStart": [{"Content": base64.b64encode((Path(script_dir) / "on-start.sh").read_bytes()).decode()}],
    }
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.session.Session()
    try:
        client = session.client("sagemaker", region_name=region)
        existing = _describe(client, name)
        if existing is None:
            answer = client.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=name, **hooks)
            return {"name": name, "action": "created", "arn": answer.get("NotebookInstanceLifecycleConfigArn")}
        client.update_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=name, **hooks)
        return {"name": name, "action": "updated", "arn": existing.get("NotebookInstanceLifecycleConfigArn")}
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise LifecycleError(
            f"SageMaker refused to install lifecycle configuration {name!r}: "
            f"{error.get('Code', 'error')}: {error.get('Message', exc)} "
            "(needs sagemaker:CreateNotebookInstanceLifecycleConfig / Update... / Describe... permissions)"
        ) from None
    except BotoCoreError as exc:
        raise LifecycleError(
            f"could not reach SageMaker to install {name!r}: {exc} "
            "(check your AWS credentials and region, e.g. --region or AWS_DEFAULT_REGION)"
        ) from None
