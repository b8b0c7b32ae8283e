"""``%hail connect --serverless-app`` in a real kernel: moto's EMR Serverless for the application,
a SigV4-verifying gateway in front of the embedded Livy for the endpoint.

The kernel's AWS credentials come from a ``credential_process`` (as an instance role's do from
the metadata service): temporary credentials botocore refreshes, so a test can rotate them.
What the stand-ins do not cover: AWS's IAM decisions (AccessLivyEndpoints, PassRole), the real
endpoint's TLS and EMR Serverless's own Livy (its session start-up time, its Spark UI links).
One kernel and one Livy session for the module.
"""

from __future__ import annotations

import json
import re
import threading
import time

import boto3
import pytest
from support.kernel import Kernel, kernel_env
from support.serverless_dashboard import DashboardStandIn
from support.sigv4_gateway import SigV4Gateway

pytestmark = pytest.mark.slow
NAME = "serverless-kernel-test"
ROLE = "arn:aws:iam::123456789012:role/HailServerless"
FIRST = ("ASIAFIRSTKEY", "first-secret", "first-token")
SECOND = ("ASIASECONDKEY", "second-secret", "second-token")

CREDENTIAL_PROCESS = """#!/bin/sh
. "$(dirname "$0")/creds.env"
printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s", "SessionToken": "%s", "Expiration": "%s"}' \\
  "$KEY" "$SECRET" "$TOKEN" "$(date -u -d '+12 min' +%Y-%m-%dT%H:%M:%SZ)"
"""


def _write_creds(folder, key, secret, token):
    (folder / "creds.env").write_text(f"KEY={key}\nSECRET={secret}\nTOKEN={token}\n")


@pytest.fixture(scope="module")
def app_id(moto_server):
    client = boto3.client("emr-serverless", region_name="us-east-1", endpoint_url=moto_server,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    app = client.create_application(name="hail-interactive", releaseLabel="emr-7.2.0", type="SPARK",
                                    interactiveConfiguration={"livyEndpointEnabled": True})["applicationId"]
    client.stop_application(applicationId=app)
    return app


@pytest.fixture(scope="module")
def gateway(livy_server):
    gw = SigV4Gateway(livy_server.url, {FIRST[0]: FIRST[1:]}, region="us-east-1").start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def kernel(gateway, moto_server, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("slcfg")
    aws = cfg / "aws"
    aws.mkdir()
    script = aws / "creds.sh"
    script.write_text(CREDENTIAL_PROCESS)
    script.chmod(0o700)
    _write_creds(aws, *FIRST)
    (aws / "config").write_text(f"[default]\nregion = us-east-1\ncredential_process = {script}\n")
    env = kernel_env(str(cfg), AWS_CONFIG_FILE=str(aws / "config"), AWS_SHARED_CREDENTIALS_FILE=str(aws / "none"),
                     AWS_ENDPOINT_URL=moto_server)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_REGION"):
        env.pop(name, None)
    k = Kernel(env, cwd=str(cfg))
    k.aws = aws
    yield k
    k.run("%hail cleanup", timeout=120)
    k.shutdown()


@pytest.fixture(scope="module")
def connected(kernel, gateway, app_id, moto_server):
    res = kernel.run(f"%hail connect --serverless-app {app_id} --execution-role {ROLE} --url {gateway.url} "
                     f"--name {NAME} --driver-memory 1g")
    assert res.status == "ok", res.text
    assert f"EMR Serverless application {app_id}: STOPPED (0 s)" in res.text  # shown while it starts
    assert f"[EMR Serverless application {app_id} (hail-interactive)]" in res.text
    client = boto3.client("emr-serverless", region_name="us-east-1", endpoint_url=moto_server,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    assert client.get_application(applicationId=app_id)["application"]["state"] == "STARTED"
    res = kernel.run("%%hail\nx = 21\nprint('answer', x * 2)", timeout=900)
    assert res.status == "ok", res.text
    assert "answer 42" in res.stdout
    return kernel


def test_help_config_and_clusters_show_serverless(kernel, app_id):
    res = kernel.run("%hail help")
    assert "--serverless-app APP_ID --execution-role ROLE_ARN" in res.stdout
    res = kernel.run(f"import os; os.environ['HAIL_EMR_LAB_SERVERLESS_APP'] = '{app_id}'\n%hail config")
    assert res.status == "ok", res.text
    assert any(app_id in line and "environment" in line and "serverless_app" in line for line in res.text.splitlines())
    kernel.run("del os.environ['HAIL_EMR_LAB_SERVERLESS_APP']")
    res = kernel.run("%hail clusters --timeout 0.3")
    assert res.status == "ok", res.text
    assert "EMR Serverless applications with a Livy endpoint" in res.text and app_id in res.text


def test_session_created_with_the_execution_role(connected, gateway):
    body = gateway.created[-1]
    assert body["conf"]["emr-serverless.session.executionRoleArn"] == ROLE
    assert body["conf"]["spark.driver.memory"] == "1g" and "driverMemory" not in body
    assert body["name"] == NAME


def test_every_request_was_signed_and_accepted(connected, gateway):
    assert gateway.log and all(verdict == "ok" for *_, verdict in gateway.log), gateway.log[-5:]
    assert {key for _, _, key, _ in gateway.log} == {FIRST[0]}


def test_panel_status_signs_through_the_gateway(connected):
    # What %hail panel and the sidebar's Cluster/Sessions sections do with the connected endpoint.
    res = connected.run(
        "from hail_emr_lab.dashboard import status as _st\nfrom hail_emr_lab.notebook.context import current as _cur\n"
        "_c = _cur()\n_out = _st.cluster_status(_c.config, _c.endpoint)\n"
        "print('panel', _out['reachable'], _out['error'], _c.config.get('auth'), _c.config.source('auth'))"
    )
    assert res.status == "ok", res.text
    assert "panel True None sigv4 EMR Serverless application" in res.stdout, res.stdout


def test_pull_and_push_through_the_gateway(connected):
    res = connected.run("%%hail -o frame\nframe = spark.range(5).selectExpr('id', 'id * 2 AS twice')")
    assert res.status == "ok", res.text
    assert connected.value("frame.twice.tolist()") == [0, 2, 4, 6, 8]
    res = connected.run("local_cfg = {'a': [1, 2]}\n%hail push local_cfg")
    assert res.status == "ok", res.text
    res = connected.run("%%hail\nprint('pushed', local_cfg['a'][1])")
    assert res.status == "ok" and "pushed 2" in res.stdout, res.text


def test_cancel_goes_through_the_gateway(connected, gateway):
    res = connected.run("%%hail\nimport time\nfor _ in range(120):\n    time.sleep(0.5)\nprint('finished')",
                        interrupt_after=4, timeout=120)
    assert res.status == "error" and "cancelled on the cluster" in "\n".join(res.traceback), res.text
    assert any(m == "POST" and p.endswith("/cancel") and v == "ok" for m, p, _, v in gateway.log), gateway.log[-5:]


def test_credentials_rotate_during_a_long_cell(connected, gateway):
    """The role's credentials change while a cell runs; the old key is then revoked."""
    seen_before = len(gateway.log)

    def rotate():
        gateway.allow(SECOND[0], *SECOND[1:])
        _write_creds(connected.aws, *SECOND)
        time.sleep(0.5)
        gateway.revoke(FIRST[0])

    timer = threading.Timer(3.0, rotate)
    timer.start()
    try:
        res = connected.run("%%hail\nimport time\ntime.sleep(10)\nprint('survived', x)", timeout=300)
    finally:
        timer.join()
    assert res.status == "ok" and "survived 21" in res.stdout, res.text
    res = connected.run("%%hail\nprint('next cell', x + 1)")
    assert res.status == "ok" and "next cell 22" in res.stdout, res.text
    after = gateway.log[seen_before:]
    assert all(verdict == "ok" for *_, verdict in after), [e for e in after if e[3] != "ok"]
    assert after[-1][2] == SECOND[0] and any(key == FIRST[0] for _, _, key, _ in after)


PANEL_SESSIONS = """from hail_emr_lab.dashboard import status as _st
from hail_emr_lab.notebook.context import current as _cur
from hail_emr_lab.notebook.panel import sessions_html as _html
_c = _cur()
_rows = _st.list_sessions(_c.config, _c.client)
_own = [r for r in _rows['sessions'] if r['id'] == _c.session.id][0]
print('row', _own['spark_ui_url'], _own['driver_log_url'])
print('html', _html(_rows))"""


def test_info_and_logs_link_the_spark_ui_of_the_job_run(connected, gateway, moto_server, app_id):
    """The endpoint names the session's job run (``appId``) and gives no links: ``%hail info`` and
    ``%hail logs`` get the Spark UI from GetDashboardForJobRun (a stand-in in front of moto, which
    lacks it); refused, they say why and where to look."""
    client = boto3.client("emr-serverless", region_name="us-east-1", endpoint_url=moto_server,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    runs = [client.start_job_run(applicationId=app_id, executionRoleArn=ROLE,
                                 jobDriver={"sparkSubmit": {"entryPoint": "s3://b/x.py"}})["jobRunId"] for _ in range(3)]
    with DashboardStandIn(moto_server) as standin:
        gateway.session_app_id = runs[0]
        try:
            connected.run(f"import os\nos.environ['AWS_ENDPOINT_URL_EMR_SERVERLESS'] = '{standin.url}'")
            res = connected.run("%hail info")
            ui = f"https://p-{runs[0]}-{app_id}.emrappui-prod.us-east-1.amazonaws.com/shs/history/{runs[0]}/jobs/"
            assert res.status == "ok" and re.search(rf"^Spark UI +{re.escape(ui)}$", res.text, re.M), res.text
            assert "driver log: the Spark UI's Executors tab" in res.text
            res = connected.run("%hail logs -n 3")
            assert res.status == "ok" and f"Spark UI: {ui}" in res.text, res.text
            res = connected.run(PANEL_SESSIONS)  # what the sidebar's and %hail panel's Sessions section show
            assert res.status == "ok" and f"row {ui} None" in res.stdout, res.text
            assert standin.calls == [(app_id, runs[0])], "the URL is reused, not asked for again"
            gateway.session_app_id, standin.deny = runs[1], True
            res = connected.run("%hail info")
            assert res.status == "ok" and "may not call emr-serverless:GetDashboardForJobRun" in res.text, res.text
            assert f"application {app_id}, job run {runs[1]}" in res.text and "EMR Studio" in res.text
            res = connected.run(PANEL_SESSIONS)
            assert res.status == "ok" and "row None None" in res.stdout, res.text
            assert "may not call emr-serverless:GetDashboardForJobRun" in res.stdout.split("html", 1)[1]
            # A link that grants access (a token in the URL) stays out of every output, which is
            # saved with the notebook: text masks it, no HTML carries it; the sidebar's answer has it.
            gateway.session_app_id, standin.deny, standin.token = runs[2], False, "SECRET-dashboard-token-42"
            for magic in ("%hail info", "%hail logs -n 3"):
                res = connected.run(magic)
                saved = json.dumps([res.stdout, res.stderr, res.data, res.updates])
                assert res.status == "ok" and "SECRET-dashboard-token-42" not in saved, saved
                assert "authToken=***" in res.text and "kept out of the notebook" in res.text, res.text
            res = connected.run(PANEL_SESSIONS)
            row, html = res.stdout.split("html", 1)
            assert "authToken=SECRET-dashboard-token-42" in row  # the sidebar links it (its page is never saved)
            assert "SECRET-dashboard-token-42" not in html and "kept out of the notebook" in html
        finally:
            gateway.session_app_id = None
            connected.run("os.environ.pop('AWS_ENDPOINT_URL_EMR_SERVERLESS', None)")


def test_delete_goes_through_the_gateway(connected, gateway):
    res = connected.run("%hail delete")
    assert res.status == "ok" and "Deleted session" in res.stdout, res.text
    assert gateway.log[-1][0] == "DELETE" or any(m == "DELETE" and v == "ok" for m, _, _, v in gateway.log[-5:])
