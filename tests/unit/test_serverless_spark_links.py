"""Spark UI and driver-log links of a Livy session on EMR Serverless (GetDashboardForJobRun).

What is not covered here: a real dashboard URL and its one-hour validity, IAM, and a real Livy
endpoint's session answer. The dashboard answers and refusals are replayed with botocore's
Stubber in the API reference's form; the session answer below has the Livy REST fields the EMR
Serverless endpoint returns, with ``appId`` the session's job run id (the form of a job run id,
lower-case letters and digits) and no links in ``appInfo`` (it is not a capture from AWS).
moto's side (a real job run, its missing API) is in ``tests/integration/test_serverless_links.py``.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from hail_emr_lab.config import load_config
from hail_emr_lab.emr import serverless
from hail_emr_lab.emr.serverless import SparkLinks, session_links, spark_links
from hail_emr_lab.livy.models import Session

APP = "00fabcdexample"
RUN = "00fjobrun0000001"
DASHBOARD = f"https://p-{RUN}-{APP}.emrappui-prod.us-east-1.amazonaws.com/shs/history/{RUN}/jobs/?authToken=x"
SESSION_ANSWER = {
    "id": 3, "name": "hail-alice@nb-1a2b3c", "appId": RUN, "owner": None, "proxyUser": None,
    "state": "idle", "kind": "pyspark", "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": [],
}


@pytest.fixture(autouse=True)
def fresh_dashboards():
    serverless._DASHBOARDS.clear()
    yield
    serverless._DASHBOARDS.clear()


@pytest.fixture
def stubbed(monkeypatch):
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(serverless, "serverless_client", lambda *a, **k: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_dashboard_url_is_the_spark_ui_and_is_reused(stubbed):
    stubbed.add_response("get_dashboard_for_job_run", {"url": DASHBOARD}, {"applicationId": APP, "jobRunId": RUN})
    cfg = load_config({"serverless_app": APP, "region": "us-east-1", "auth": "sigv4"})
    first = session_links(cfg, Session.from_json(SESSION_ANSWER))
    assert first.spark_ui_url == DASHBOARD and first.driver_log_url is None
    assert "driver log: the Spark UI's Executors tab" in first.note
    again = session_links(cfg, Session.from_json(SESSION_ANSWER))  # no second call: the Stubber has none
    assert again == first
    # Text that may be kept (a notebook's output) does not carry the link's token.
    assert first.lines()[0] == f"Spark UI: {DASHBOARD.replace('authToken=x', 'authToken=***')}"


def test_without_grant_hides_only_access_granting_parameters():
    from hail_emr_lab.emr.serverless import without_grant

    assert without_grant("https://h/ui/?a=1&authToken=abc.def") == "https://h/ui/?a=1&authToken=***"
    signed = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ff&X-Amz-Expires=60"
    assert without_grant(signed) == "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"
    assert without_grant("http://m:20888/proxy/application_1_2/") == "http://m:20888/proxy/application_1_2/"


def test_fresh_dashboard_replaces_the_endpoints_link_but_keeps_its_driver_log(stubbed):
    stubbed.add_response("get_dashboard_for_job_run", {"url": DASHBOARD}, {"applicationId": APP, "jobRunId": RUN})
    links = spark_links(APP, "us-east-1", RUN, "https://old.example/ui?authToken=expired", "https://old.example/log")
    assert links == SparkLinks(DASHBOARD, "https://old.example/log")


def test_refusals_name_the_cause_and_are_not_repeated_at_once(stubbed):
    stubbed.add_client_error("get_dashboard_for_job_run", "AccessDeniedException", "not authorized", 403)
    links = spark_links(APP, "us-east-1", RUN)
    assert "may not call emr-serverless:GetDashboardForJobRun" in links.note and "iam-policy" in links.note
    assert spark_links(APP, "us-east-1", RUN) == links  # remembered for DASHBOARD_RETRY seconds


def test_pending_job_run_says_what_emr_serverless_said(stubbed):
    stubbed.add_client_error("get_dashboard_for_job_run", "ValidationException",
                             "Dashboard cannot be served for job in PENDING state", 400)
    links = spark_links(APP, "us-east-1", RUN, driver_log_url=None)
    assert "ValidationException: Dashboard cannot be served for job in PENDING state" in links.note


def test_endpoint_links_without_a_job_run_id_are_kept(stubbed):
    # No AWS call (the Stubber has no answer queued): appId is not of a job run id's form.
    links = spark_links(APP, "us-east-1", "application_1700000000000_0001", "https://ui.example/", "https://log.example/")
    assert links == SparkLinks("https://ui.example/", "https://log.example/")
    links = spark_links(APP, "us-east-1", None)
    assert links.spark_ui_url is None and "the endpoint did not give the session's job run id" in links.note
    assert f"application {APP}:" in links.note


def test_other_targets_keep_livys_links(stubbed):
    session = Session.from_json(dict(SESSION_ANSWER, appInfo={"sparkUiUrl": "http://m:20888/proxy/a", "driverLogUrl": None}))
    plain = load_config({"livy_url": "http://m:8998"})
    assert session_links(plain, session) == SparkLinks("http://m:20888/proxy/a", None)
    # A configured application is not the target when a Livy URL of its own is configured.
    both = load_config({"livy_url": "http://m:8998", "serverless_app": APP})
    assert session_links(both, session) == SparkLinks("http://m:20888/proxy/a", None)
