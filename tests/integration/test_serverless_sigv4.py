"""The sigv4 Livy auth against a SigV4-verifying gateway in front of the embedded Livy.

The gateway (tests/support/sigv4_gateway.py) recomputes each signature with botocore from known test
credentials, as AWS's front end of the EMR Serverless Livy endpoint does; it does not cover
AWS's IAM decision (AccessLivyEndpoints, PassRole) nor the real endpoint's TLS.
"""

from __future__ import annotations

import datetime as dt

import boto3
import botocore.auth
import pytest
import requests
from support.sigv4_gateway import SigV4Gateway

from hail_emr_lab.livy import LivyClient, make_auth
from hail_emr_lab.livy.errors import LivyAuthError, LivyError
from hail_emr_lab.livy.sigv4 import SigV4Auth

KEY, SECRET, TOKEN = "AKIAGATEWAYTEST", "gateway-test-secret", "gateway-session-token"


@pytest.fixture(scope="module")
def gateway(livy_server):
    gw = SigV4Gateway(livy_server.url, {KEY: (SECRET, TOKEN)}, region="eu-west-1").start()
    yield gw
    gw.stop()


def _session(key=KEY, secret=SECRET, token=TOKEN, region="eu-west-1"):
    return boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token, region_name=region
    )


def _client(gateway, **kw) -> LivyClient:
    service = kw.pop("service", "emr-serverless")
    region = kw.pop("region", None)
    return LivyClient(gateway.url, auth=SigV4Auth(service, region, _session(**kw)), retries=0)


def test_signed_requests_pass_and_reach_livy(gateway):
    with _client(gateway) as client:
        assert isinstance(client.list_sessions(), list)
    assert gateway.log[-1][2] == KEY and gateway.log[-1][3] == "ok"


def test_make_auth_sigv4_takes_service_and_region():
    auth = make_auth("sigv4", sigv4_service="execute-api", region="ap-south-1")
    assert isinstance(auth, SigV4Auth) and (auth.service, auth.region) == ("execute-api", "ap-south-1")
    assert "secret" not in repr(auth).lower()
    with pytest.raises(LivyError, match="unknown auth 'nope': use none, basic, kerberos or sigv4"):
        make_auth("nope")


def test_no_region_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(LivyError, match="needs an AWS region: pass --region"):
        SigV4Auth("emr-serverless", None, boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b"))


def test_wrong_service_is_refused(gateway):
    with _client(gateway, service="execute-api") as client, pytest.raises(LivyAuthError) as err:
        client.list_sessions()
    assert err.value.status == 403 and "scoped to correct service: 'emr-serverless'" in str(err.value)
    assert "emr-serverless:AccessLivyEndpoints" in str(err.value)  # the sigv4 hint, not basic/kerberos


def test_wrong_region_is_refused(gateway):
    with _client(gateway, region="us-west-2") as client, pytest.raises(LivyAuthError, match="valid region"):
        client.list_sessions()


def test_unknown_key_and_wrong_token_are_refused(gateway):
    with _client(gateway, key="AKIAOTHER") as client, pytest.raises(LivyAuthError, match="security token"):
        client.list_sessions()
    with _client(gateway, token="stale-token") as client, pytest.raises(LivyAuthError, match="security token"):
        client.list_sessions()


def test_body_changed_after_signing_is_refused(gateway):
    auth = SigV4Auth("emr-serverless", None, _session())
    with requests.Session() as http:
        req = requests.Request("POST", gateway.url + "/sessions", data=b'{"kind": "pyspark"}',
                               headers={"Content-Type": "application/json", "X-Requested-By": "t"}, auth=auth)
        prepared = http.prepare_request(req)
        prepared.body = b'{"kind": "PySpark"}'  # same length, other bytes: only the body hash differs
        answer = http.send(prepared, timeout=10)
    assert answer.status_code == 403
    assert "signature we calculated does not match" in answer.json()["message"]
    assert answer.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")


def test_missing_signed_header_and_missing_auth_are_refused(gateway):
    auth = SigV4Auth("emr-serverless", None, _session())
    with requests.Session() as http:
        req = requests.Request("GET", gateway.url + "/sessions", headers={"X-Requested-By": "t"}, auth=auth)
        prepared = http.prepare_request(req)
        del prepared.headers["X-Requested-By"]  # signed, then dropped on the way
        answer = http.send(prepared, timeout=10)
        assert answer.status_code == 403 and "missing from the request: x-requested-by" in answer.json()["message"]
        prepared = http.prepare_request(requests.Request("GET", gateway.url + "/sessions"))
        answer = http.send(prepared, timeout=10)
        assert answer.status_code == 403 and answer.json() == {"message": "Missing Authentication Token"}


def test_expired_date_is_refused(gateway, monkeypatch):
    past = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    with _client(gateway) as client, pytest.raises(LivyAuthError, match="Signature expired"):
        client.list_sessions()


def test_credentials_are_fetched_for_every_request(gateway):
    """A refreshed credential (new key) is used by the next request of the same client."""
    session = _session()
    with LivyClient(gateway.url, auth=SigV4Auth("emr-serverless", None, session), retries=0) as client:
        client.list_sessions()
        gateway.rotate(KEY, "AKIAROTATED", "rotated-secret", "rotated-token")
        try:
            with pytest.raises(LivyAuthError):  # the old key is revoked
                client.list_sessions()
            # What botocore's refreshable credentials do on expiry: the session now holds new ones.
            session._session._credentials = boto3.session.Session(
                aws_access_key_id="AKIAROTATED", aws_secret_access_key="rotated-secret",
                aws_session_token="rotated-token").get_credentials()
            client.list_sessions()
            assert gateway.log[-1][2:] == ("AKIAROTATED", "ok")
        finally:
            gateway.rotate("AKIAROTATED", KEY, SECRET, TOKEN)
