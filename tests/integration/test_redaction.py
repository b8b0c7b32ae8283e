"""A password in a Livy URL (``http://USER:SECRET@host:port``) never reaches what we show.

Every surface is driven for real: the Livy client against real sockets and small real HTTP
servers, the sidebar's REST API through a real jupyter_server (pytest-jupyter), the lifecycle
CLI as a subprocess, and the config as ``%hail config`` shows it. No Spark is needed here; the
connect status line and ``%hail info`` are checked through a real kernel in
``test_magics_resilience.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.net import free_port
from tornado.httpclient import HTTPClientError

from hail_emr_lab.config import load_config, password_from, read_password_file
from hail_emr_lab.errors import ConfigError
from hail_emr_lab.livy import LivyClient, LivyError, LivySession, normalize_url
from hail_emr_lab.redact import redact_text, redact_url, redact_values, split_userinfo
from hail_emr_lab.server.handlers import API

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SECRET = "Sekr3t-do-not-leak"


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with one fixed (status, content type, body); records headers."""

    status, ctype, body = 200, "text/html", b"<html>login</html>"
    seen: list = []

    def _answer(self):
        type(self).seen.append(dict(self.headers))
        self.send_response(self.status)
        self.send_header("Content-Type", self.ctype)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        return None


@pytest.fixture
def serve():
    servers = []

    def start(status, ctype, body):
        handler = type("H", (_Answer,), {"status": status, "ctype": ctype, "body": body, "seen": []})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return handler, srv.server_address[1]

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_redact_text_hides_every_userinfo():
    text = (f"at http://alice:{SECRET}@10.0.0.5:8998/sessions and 'https://bob:{SECRET}@h/x' "
            f"and http://u:p@{SECRET}@host:1 but not http://plain:8998 nor mail@example.org")
    out = redact_text(text)
    assert SECRET not in out
    assert "http://***@10.0.0.5:8998/sessions" in out and "'https://***@h/x'" in out
    assert "http://plain:8998" in out and "mail@example.org" in out
    assert redact_url(None) is None
    # Characters a password may hold that a URL would escape: quotes, angle brackets, a slash, a space.
    for pw in ("it's", 'say"hi', "a<b>c", "sl/ash", "two words", "p@ss"):
        url = f"http://alice:{pw}@10.0.0.5:8998"
        assert split_userinfo(url)[1] == ("alice", pw) or "/" in pw  # what the client would send
        assert pw not in redact_url(url) and redact_url(url) == "http://***@10.0.0.5:8998", redact_url(url)
        if " " in pw:
            continue  # in free text whitespace ends a URL; every surface that holds one URL uses redact_url
        assert pw not in redact_text(f"cannot reach {url}: refused"), redact_text(f"cannot reach {url}: refused")
        shown = json.dumps(redact_values({"error": f"cannot reach {url}", "sessions": [{"url": url, "id": 1}]}))
        assert pw.replace('"', '\\"') not in shown and json.loads(shown)["sessions"][0]["id"] == 1, shown
    assert split_userinfo(f"http://alice:{SECRET.replace('-', '%2D')}@h:1/p") == ("http://h:1/p", ("alice", SECRET))


def _all_text(exc: BaseException) -> str:
    """The message, repr and everything chained to it, as a traceback would show."""
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + repr(exc)


def test_client_errors_and_repr_never_show_the_password(serve, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 / requests debug logs are captured too
    refused = free_port()
    cases = []
    with pytest.raises(LivyError) as err:
        LivyClient(f"http://user:{SECRET}@127.0.0.1:{refused}", retries=0).list_sessions()
    cases.append(err.value)
    assert "connection refused" in str(err.value)
    for status, ctype, body in [(200, "text/html", b"<html>login</html>"), (502, "text/html", b"bad gateway"),
                                (401, "text/html", b"no")]:
        handler, port = serve(status, ctype, body)
        client = LivyClient(f"http://user:{SECRET}@127.0.0.1:{port}", retries=0)
        with pytest.raises(LivyError) as err:
            client.list_sessions()
        cases.append(err.value)
        # The credentials were not dropped: they are sent as basic auth.
        auth = handler.seen[-1]["Authorization"]
        assert base64.b64decode(auth.split()[1]).decode() == f"user:{SECRET}"
        assert SECRET not in repr(LivySession(client, 3, name="n"))
        assert client.url == f"http://127.0.0.1:{port}"
    for bad in (f"http://user:{SECRET}@host:notaport", f"user:{SECRET}@host:8998"):
        with pytest.raises(LivyError) as err:
            normalize_url(bad)
        cases.append(err.value)
    for exc in cases:
        assert SECRET not in _all_text(exc), _all_text(exc)
    assert SECRET not in caplog.text


def test_config_shows_urls_without_password(monkeypatch):
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", f"http://user:{SECRET}@10.0.0.5:8998")
    monkeypatch.setenv("HAIL_EMR_LAB_PLOTS_URL", f"http://user:{SECRET}@10.0.0.5/plots")
    monkeypatch.setenv("HAIL_EMR_LAB_PASSWORD", SECRET)
    shown = json.dumps(load_config().as_dict())
    assert SECRET not in shown and "http://***@10.0.0.5:8998" in shown
    assert SECRET not in repr(load_config()) and "http://***@10.0.0.5:8998" in repr(load_config())


def test_password_sources(tmp_path, monkeypatch, capsys):
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\nignored\n")
    pw.chmod(0o600)
    assert password_from(file=str(pw)) == SECRET
    assert capsys.readouterr().err == ""
    pw.chmod(0o644)
    assert read_password_file(pw) == SECRET
    assert f"chmod 600 {pw}" in capsys.readouterr().err
    assert password_from(env_var="MY_LIVY_PW", env={"MY_LIVY_PW": SECRET}) == SECRET
    with pytest.raises(ConfigError, match="MY_LIVY_PW is not set"):
        password_from(env_var="MY_LIVY_PW", env={})
    with pytest.raises(ConfigError, match="cannot read the password file"):
        password_from(file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="one way only"):
        password_from(file=str(pw), env_var="X")
    monkeypatch.setattr("getpass.getpass", lambda prompt: SECRET if "alice" in prompt else "")
    assert password_from(prompt=True, user="alice") == SECRET
    # The config's password_file is what the client sends when auth is basic.
    monkeypatch.setenv("HAIL_EMR_LAB_PASSWORD_FILE", str(pw))
    assert load_config().password() == SECRET
    assert SECRET not in json.dumps(load_config().as_dict())


def test_lifecycle_refusal_hides_the_password(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "render", "--bucket", "my-bucket",
         "--livy-url", f"http://user:{SECRET}@10.0.0.5:8998", "--out", str(tmp_path / "lc")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "must not contain credentials" in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


# ----------------------------------------------------------------- the sidebar's REST API


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"hail_emr_lab": True}}}


async def _body(jp_fetch, route):
    try:
        response = await jp_fetch(*API.split("/"), route)
        return response.code, response.body.decode()
    except HTTPClientError as exc:
        return exc.code, exc.response.body.decode()


@pytest.mark.parametrize("route", ["status", "sessions", "progress"])
async def test_sidebar_errors_hide_the_password(jp_fetch, route, serve, monkeypatch):
    _, html_port = serve(200, "text/html", b"<html>please log in</html>")
    urls = [f"http://user:{SECRET}@127.0.0.1:{html_port}",  # not Livy: "is URL a Livy endpoint?"
            f"http://user:{SECRET}@127.0.0.1:notaport",  # malformed: echoed in the error
            f"http://user:{SECRET}@127.0.0.1:{free_port()}"]  # refused
    monkeypatch.setenv("HAIL_EMR_LAB_AUTH", "basic")
    monkeypatch.setenv("HAIL_EMR_LAB_USERNAME", "user")
    for url in urls:
        monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", url)
        code, body = await _body(jp_fetch, route)
        assert SECRET not in body, (route, url, body)
        assert "127.0.0.1" in body, body  # the error is still there, only without the password
