"""Spark UI and driver-log links of a Livy session on EMR Serverless, against moto's EMR Serverless
over HTTP: a real job run, and moto 5.2's bare 404 for GetDashboardForJobRun (which it lacks).
The dashboard answers themselves are replayed in ``tests/unit/test_serverless_spark_links.py``.
"""

from __future__ import annotations

import boto3
import pytest

from hail_emr_lab.emr import serverless
from hail_emr_lab.emr.serverless import spark_links

ROLE = "arn:aws:iam::123456789012:role/HailServerless"


@pytest.fixture(autouse=True)
def fresh_dashboards():
    serverless._DASHBOARDS.clear()
    yield
    serverless._DASHBOARDS.clear()


def test_moto_job_run_without_dashboard_says_where_to_look(aws_env):
    client = boto3.client("emr-serverless", region_name="us-east-1")
    app = client.create_application(name="hail", releaseLabel="emr-7.2.0", type="SPARK")["applicationId"]
    client.start_application(applicationId=app)
    run = client.start_job_run(applicationId=app, executionRoleArn=ROLE,
                               jobDriver={"sparkSubmit": {"entryPoint": "s3://b/x.py"}})["jobRunId"]
    links = spark_links(app, "us-east-1", run)
    assert links.spark_ui_url is None and links.driver_log_url is None
    assert f"EMR Serverless knows no job run {run} on application {app}" in links.note  # moto: no such API
    assert f"application {app}, job run {run}" in links.note and "EMR Studio" in links.note
    assert "console.aws.amazon.com/emr/home?region=us-east-1#/serverless" in links.note
    assert f"aws emr-serverless get-dashboard-for-job-run --application-id {app} --job-run-id {run}" in links.note
    assert "<" not in links.note, "moto's HTML error page is not a message"
