"""Bad input to %hail connect in a real kernel: one-paragraph messages, no library tracebacks.

No Livy session is created here: every target is wrong in its own way (a real local HTTP
server plays the proxy / the server refusing credentials; moto plays EMR).
"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from support.kernel import Kernel, kernel_env

pytestmark = pytest.mark.slow


class _Answer(http.server.BaseHTTPRequestHandler):
    status, ctype, body = 200, "text/html", b"<html>login</html>"
    seen: list = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append(dict(self.headers))
        self.send_response(self.status)
        self.send_header("Content-Type", self.ctype)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        return None


def _serve(status, ctype, body):
    handler = type("H", (_Answer,), {"status": status, "ctype": ctype, "body": body, "seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, moto_server):
    cfg = tmp_path_factory.mktemp("kerr")
    env = kernel_env(str(cfg), AWS_ENDPOINT_URL=moto_server, AWS_ACCESS_KEY_ID="testing",
                     AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    k = Kernel(env, cwd=str(cfg))
    yield k
    k.shutdown()


def _one_paragraph(res):
    assert res.status == "error" and res.ename == "HailMagicError", res.text
    tb = "\n".join(res.traceback)
    assert "Traceback" not in tb and "site-packages" not in tb and 'File "' not in tb, tb
    return tb


def test_malformed_url(kernel):
    tb = _one_paragraph(kernel.run("%hail connect --url htp:/nowhere"))
    assert "is not a Livy URL: expected http(s)://HOST:PORT" in tb


def test_unreachable_port(kernel):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tb = _one_paragraph(kernel.run(f"%hail connect --url http://127.0.0.1:{port}"))
    assert f"nothing listens on port {port}" in tb


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials(kernel, status):
    srv = _serve(status, "application/json", b'{"msg": "denied"}')
    try:
        tb = _one_paragraph(kernel.run(f"%hail connect --url http://127.0.0.1:{srv.server_address[1]}"))
    finally:
        srv.shutdown()
    assert f"HTTP {status}: denied" in tb and "--auth basic" in tb


SECRET = "Sekr3t-in-a-kernel"


def test_passwords_are_never_shown_and_literal_ones_warned(kernel, tmp_path):
    import base64

    srv = _serve(401, "application/json", b'{"msg": "denied"}')
    port = srv.server_address[1]
    seen = srv.RequestHandlerClass.seen
    try:
        res = kernel.run(f"%hail connect --url http://alice:{SECRET}@127.0.0.1:{port}")
        tb = _one_paragraph(res)
        assert "HTTP 401: denied" in tb and SECRET not in res.text
        assert "Warning: a password in --url stays in this notebook" in res.stderr
        assert base64.b64decode(seen[-1]["Authorization"].split()[1]).decode() == f"alice:{SECRET}"
        res = kernel.run(f"%hail connect --url http://127.0.0.1:{port} --auth basic --user alice --password {SECRET}")
        _one_paragraph(res)
        assert "Warning: --password stays in this notebook" in res.stderr and "--password-prompt" in res.stderr
        assert SECRET not in "\n".join(res.traceback)
        pw = tmp_path / "livy-password"
        pw.write_text(SECRET + "\n")
        pw.chmod(0o600)
        res = kernel.run(f"%hail connect --url http://127.0.0.1:{port} --auth basic --user bob --password-file {pw}")
        _one_paragraph(res)
        assert "Warning" not in res.stderr and SECRET not in res.text
        assert base64.b64decode(seen[-1]["Authorization"].split()[1]).decode() == f"bob:{SECRET}"
        res = kernel.run(f"import os; os.environ['MY_LIVY_PW'] = {SECRET!r}\n"
                         f"%hail connect --url http://127.0.0.1:{port} --auth basic --user carol --password-env MY_LIVY_PW")
        _one_paragraph(res)
        assert base64.b64decode(seen[-1]["Authorization"].split()[1]).decode() == f"carol:{SECRET}"
        res = kernel.run("%hail connect --url http://127.0.0.1:1 --password-env NOT_SET_ANYWHERE")
        assert "NOT_SET_ANYWHERE is not set" in _one_paragraph(res)
    finally:
        srv.shutdown()
    assert "--password-prompt" in kernel.run("%hail help").stdout


def test_non_json_proxy(kernel):
    srv = _serve(200, "text/html", b"<html><body>Please log in</body></html>")
    try:
        tb = _one_paragraph(kernel.run(f"%hail connect --url http://127.0.0.1:{srv.server_address[1]}"))
    finally:
        srv.shutdown()
    assert "not JSON" in tb and "proxy" in tb


def test_unknown_cluster_id(kernel, moto_server):
    tb = _one_paragraph(kernel.run("%hail connect --cluster-id j-DOESNOTEXIST1"))
    assert "EMR has no cluster 'j-DOESNOTEXIST1'" in tb


def test_two_targets(kernel):
    tb = _one_paragraph(kernel.run("%hail connect --url http://127.0.0.1:1 --local"))
    assert "give only one target" in tb


def test_commands_before_connecting(kernel):
    tb = _one_paragraph(kernel.run("%hail info"))
    assert "Not connected: run %hail connect first" in tb
    res = kernel.run("%hail disconnect")
    assert res.status == "ok" and "Not connected" in res.stdout


def test_clusters_magic_lists_moto_clusters(kernel, moto_server):
    import boto3

    client = boto3.client("emr", region_name="us-east-1", endpoint_url=moto_server,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    cid = client.run_job_flow(
        Name="magic-listed", ReleaseLabel="emr-6.15.0", Applications=[{"Name": "Livy"}],
        Instances={"InstanceGroups": [{"Name": "Master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                                       "InstanceCount": 1}], "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]
    try:
        res = kernel.run("%hail clusters --timeout 0.3")
        assert res.status == "ok", res.text
        assert cid in res.text and "magic-listed" in res.text and ":8998" in res.text
    finally:
        client.terminate_job_flows(JobFlowIds=[cid])


def test_config_shows_sources(kernel, tmp_path):
    res = kernel.run("import os; os.environ['HAIL_EMR_LAB_LIVY_URL'] = 'http://10.1.2.3:8998'\n%hail config")
    assert res.status == "ok", res.text
    assert "http://10.1.2.3:8998" in res.text and "environment" in res.text
    kernel.run("del os.environ['HAIL_EMR_LAB_LIVY_URL']")
