"""EMR Serverless application lookup and start, against moto's EMR Serverless over HTTP.

What moto does not cover: it accepts ``interactiveConfiguration`` on create but does not return
it (so its applications are "not known to be Livy-enabled"), it starts applications at once
(no STARTING phase), and it does not check IAM. The explicit ``livyEndpointEnabled: false``
answer and AccessDenied are replayed with botocore's Stubber from recorded answers.
"""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from hail_emr_lab.emr import serverless
from hail_emr_lab.emr.serverless import ServerlessError, application_for


def _create(name="hail", release="emr-7.2.0", livy=True, region="us-east-1", kind="SPARK"):
    client = boto3.client("emr-serverless", region_name=region)
    extra = {"interactiveConfiguration": {"livyEndpointEnabled": livy}} if livy is not None else {}
    return client, client.create_application(name=name, releaseLabel=release, type=kind, **extra)["applicationId"]


def test_stopped_application_is_started_with_its_state_shown(aws_env):
    client, app_id = _create()
    client.stop_application(applicationId=app_id)
    assert client.get_application(applicationId=app_id)["application"]["state"] == "STOPPED"
    seen = []
    app = application_for(app_id, on_state=lambda state, elapsed: seen.append((state, elapsed)), poll=0.1)
    assert app.state == "STARTED" and app.release == "emr-7.2.0" and app.name == "hail"
    assert [s for s, _ in seen] == ["STOPPED", "STARTED"] and all(e >= 0 for _, e in seen)
    assert client.get_application(applicationId=app_id)["application"]["state"] == "STARTED"
    assert app.livy_url == f"https://{app_id}.livy.emr-serverless-services.us-east-1.amazonaws.com"
    assert app.livy_enabled is None  # moto does not return interactiveConfiguration: tried, not refused


def test_missing_application_and_wrong_region(aws_env):
    with pytest.raises(ServerlessError, match="no EMR Serverless application '00fnothere' in region us-east-1"):
        application_for("00fnothere")
    _, app_id = _create()
    with pytest.raises(ServerlessError, match=f"no EMR Serverless application '{app_id}' in region eu-west-1") as err:
        application_for(app_id, region="eu-west-1")
    assert "--region" in str(err.value)


def test_old_release_and_other_engine_are_refused(aws_env):
    _, old = _create(release="emr-6.13.0")
    with pytest.raises(ServerlessError, match="runs emr-6.13.0: the Livy endpoint needs emr-6.14.0 or later"):
        application_for(old)
    _, hive = _create(kind="HIVE")
    with pytest.raises(ServerlessError, match="Livy sessions need a Spark application"):
        application_for(hive)


def test_bad_id_is_refused_before_any_call():
    with pytest.raises(ServerlessError, match="is not an EMR Serverless application id"):
        application_for("arn:aws:emr-serverless:us-east-1:1:/applications/x", region="us-east-1")


RECORDED_NOT_LIVY = {
    "application": {
        "applicationId": "00fnotlivy0000",
        "name": "batch-only",
        "arn": "arn:aws:emr-serverless:us-east-1:123456789012:/applications/00fnotlivy0000",
        "releaseLabel": "emr-7.1.0",
        "type": "Spark",
        "state": "CREATED",
        "createdAt": dt.datetime(2024, 5, 1),
        "updatedAt": dt.datetime(2024, 5, 1),
        "interactiveConfiguration": {"studioEnabled": True, "livyEndpointEnabled": False},
    }
}


def test_explicitly_not_livy_enabled_says_how_to_enable(monkeypatch):
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(serverless, "serverless_client", lambda *a, **k: client)
    with Stubber(client) as stub:
        stub.add_response("get_application", RECORDED_NOT_LIVY, {"applicationId": "00fnotlivy0000"})
        with pytest.raises(ServerlessError) as err:
            application_for("00fnotlivy0000")
        stub.assert_no_pending_responses()  # refused before StartApplication
    assert "does not have its Livy endpoint enabled" in str(err.value)
    assert "--interactive-configuration livyEndpointEnabled=true" in str(err.value)


def test_access_denied_names_the_permission(monkeypatch):
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(serverless, "serverless_client", lambda *a, **k: client)
    with Stubber(client) as stub:
        stub.add_client_error("get_application", "AccessDeniedException", "not authorized", 403)
        with pytest.raises(ServerlessError, match="emr-serverless:GetApplication and StartApplication"):
            application_for("00fdenied")


def test_list_livy_applications(aws_env):
    _, good = _create(name="good")
    _create(name="old", release="emr-6.9.0")
    _create(name="hive", kind="HIVE")
    rows = serverless.list_livy_applications()
    assert [r["application_id"] for r in rows] == [good]
    assert rows[0]["livy_url"].startswith(f"https://{good}.livy.emr-serverless-services.us-east-1")


# ---------------------------------------------------------------- %hail connect's resolution

ROLE = "arn:aws:iam::123456789012:role/HailServerless"


def test_connect_needs_a_valid_execution_role_and_one_target(aws_env):
    from hail_emr_lab.config import load_config
    from hail_emr_lab.errors import ConfigError, HailEmrLabError
    from hail_emr_lab.notebook.connect import ConnectOptions, resolve_target

    _, app_id = _create()
    with pytest.raises(ConfigError, match="needs an execution role: pass --execution-role"):
        resolve_target(ConnectOptions(serverless_app=app_id), load_config())
    with pytest.raises(ConfigError, match="'HailServerless' is not an IAM role ARN"):
        resolve_target(ConnectOptions(serverless_app=app_id, execution_role="HailServerless"), load_config())
    with pytest.raises(HailEmrLabError, match="got --serverless-app and --cluster-id: give only one target"):
        resolve_target(ConnectOptions(serverless_app=app_id, execution_role=ROLE, cluster_id="j-1"), load_config())


def test_configured_application_is_the_target_with_its_provenance(aws_env, monkeypatch):
    from hail_emr_lab.config import load_config
    from hail_emr_lab.livy.sigv4 import SigV4Auth
    from hail_emr_lab.notebook.connect import (
        ConnectOptions,
        make_client,
        resolve_target,
        session_fields,
        with_connect_options,
    )

    _, app_id = _create()
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", app_id)
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_EXECUTION_ROLE", ROLE)
    config = load_config()
    assert config.source("serverless_app") == "environment" and config.as_dict()["serverless_app"]["value"] == app_id
    target = resolve_target(ConnectOptions(), config)
    assert target.url == f"https://{app_id}.livy.emr-serverless-services.us-east-1.amazonaws.com"
    assert target.how == f"EMR Serverless application {app_id} (hail) from environment"
    with make_client(target.url, with_connect_options(config, ConnectOptions()), target) as client:
        assert isinstance(client.http.auth, SigV4Auth)
        assert (client.http.auth.service, client.http.auth.region) == ("emr-serverless", "us-east-1")
    opts = ConnectOptions(driver_memory="4g", driver_cores=2, executor_memory="8g", executor_cores=4, num_executors=3,
                          conf={"spark.x": "1", "emr-serverless.session.executionRoleArn": "arn:other"})
    fields = session_fields(opts, target)
    assert fields == {"conf": {
        "emr-serverless.session.executionRoleArn": ROLE, "spark.driver.memory": "4g", "spark.driver.cores": "2",
        "spark.executor.memory": "8g", "spark.executor.cores": "4", "spark.executor.instances": "3", "spark.x": "1"}}


def test_endpoint_refusal_for_an_application_not_known_to_be_livy_enabled(aws_env, livy_server):
    from support.sigv4_gateway import SigV4Gateway

    from hail_emr_lab.livy.errors import LivyError
    from hail_emr_lab.notebook.connect import ConnectOptions, connect

    _, app_id = _create()  # moto does not return interactiveConfiguration: "not known", tried
    gateway = SigV4Gateway(livy_server.url, {"AKIAOTHER": ("other", None)}, region="us-east-1").start()
    try:
        with pytest.raises(LivyError) as err:
            connect(ConnectOptions(serverless_app=app_id, execution_role=ROLE, url=gateway.url))
    finally:
        gateway.stop()
    text = str(err.value)
    assert "HTTP 403" in text and "emr-serverless:AccessLivyEndpoints" in text
    assert f"did not say whether application {app_id} has its Livy endpoint enabled" in text
    assert "--interactive-configuration livyEndpointEnabled=true" in text


def test_sidebar_signs_requests_to_a_serverless_endpoint(monkeypatch):
    from hail_emr_lab.config import load_config
    from hail_emr_lab.dashboard import status
    from hail_emr_lab.livy.sigv4 import SigV4Auth

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", "00fabcdexample")
    monkeypatch.setenv("HAIL_EMR_LAB_REGION", "eu-west-1")
    url = "https://00fabcdexample.livy.emr-serverless-services.eu-west-1.amazonaws.com"
    cfg = load_config()
    with status.configured_client(cfg) as client:  # the configured application's endpoint, not "no endpoint"
        assert client.url == url
        assert isinstance(client.http.auth, SigV4Auth) and client.http.auth.region == "eu-west-1"
    out = status.cluster_status(cfg)  # no network here: it only says the endpoint does not answer
    assert out["livy_url"] == url and out["reachable"] is False
    assert out["livy_url_source"] == "EMR Serverless application 00fabcdexample (environment)"


def test_cluster_section_shows_the_application(aws_env, monkeypatch):
    from hail_emr_lab.config import load_config
    from hail_emr_lab.dashboard import status
    from hail_emr_lab.notebook.panel import cluster_html

    _, app_id = _create(name="hail-interactive")
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", app_id)
    out = status.cluster_status(load_config())
    app = out["serverless"]
    assert (app["application_id"], app["name"], app["state"], app["release"]) == (
        app_id, "hail-interactive", "STARTED", "emr-7.2.0")
    assert app["livy_url"] == out["livy_url"]
    html = cluster_html(out)
    assert f"EMR Serverless application <code>{app_id}</code> hail-interactive <code>STARTED</code>" in html
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", "00fnothere")
    missing = status.cluster_status(load_config())["serverless"]
    assert "no EMR Serverless application '00fnothere'" in missing["error"]
    assert "no EMR Serverless application" in cluster_html(status.cluster_status(load_config()))


def _answer(state: str) -> dict:
    app = dict(RECORDED_NOT_LIVY["application"], applicationId="00fslowstart00", state=state)
    app["interactiveConfiguration"] = {"livyEndpointEnabled": True}
    return {"application": app}


def test_waits_through_creating_and_starting(monkeypatch):
    """The phases moto skips, replayed: CREATING -> CREATED (we start it) -> STARTING -> STARTED."""
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(serverless, "serverless_client", lambda *a, **k: client)
    seen = []
    with Stubber(client) as stub:
        stub.add_response("get_application", _answer("CREATING"), {"applicationId": "00fslowstart00"})
        stub.add_response("get_application", _answer("CREATED"), {"applicationId": "00fslowstart00"})
        stub.add_response("start_application", {}, {"applicationId": "00fslowstart00"})
        stub.add_response("get_application", _answer("STARTING"), {"applicationId": "00fslowstart00"})
        stub.add_response("get_application", _answer("STARTED"), {"applicationId": "00fslowstart00"})
        app = application_for("00fslowstart00", on_state=lambda s, e: seen.append(s), poll=0.01)
        stub.assert_no_pending_responses()  # started exactly once
    assert app.state == "STARTED" and app.livy_enabled is True
    assert seen == ["CREATING", "CREATED", "STARTING", "STARTED"]


def test_start_timeout_says_it_may_still_start(monkeypatch):
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(serverless, "serverless_client", lambda *a, **k: client)
    with Stubber(client) as stub:
        for _ in range(50):
            stub.add_response("get_application", _answer("STARTING"), {"applicationId": "00fslowstart00"})
        with pytest.raises(ServerlessError, match=r"still STARTING after 0 s; it may still start"):
            application_for("00fslowstart00", timeout=0.05, poll=0.01)
