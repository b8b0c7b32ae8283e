"""One way from configuration to a Livy client (``hail_emr_lab.endpoint``), and jobs that get
their client injected instead of reading kernel state. No server: the clients are only built."""

from __future__ import annotations

import ast
from pathlib import Path

from requests.auth import HTTPBasicAuth

from hail_emr_lab.config import load_config
from hail_emr_lab.endpoint import QUICK_CONNECT_TIMEOUT, configured_url, make_client
from hail_emr_lab.livy.sigv4 import SigV4Auth

PACKAGE = Path(__file__).resolve().parents[2] / "hail_emr_lab"
SERVERLESS_URL = "https://00fabcdexample.livy.emr-serverless-services.eu-west-1.amazonaws.com"


def test_basic_auth_takes_the_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n")
    secret.chmod(0o600)
    cfg = load_config({"auth": "basic", "username": "me", "password_file": str(secret), "proxy_user": "alice"})
    client = make_client(cfg, "http://10.0.0.5:8998")
    assert isinstance(client.http.auth, HTTPBasicAuth)
    assert (client.http.auth.username, client.http.auth.password) == ("me", "s3cret")
    assert client.proxy_user == "alice"


def test_serverless_endpoints_are_signed_in_their_region():
    client = make_client(load_config(), SERVERLESS_URL)
    assert isinstance(client.http.auth, SigV4Auth) and client.http.auth.region == "eu-west-1"
    signed = make_client(load_config(), "http://proxy:8998", signing_region="us-east-2")
    assert isinstance(signed.http.auth, SigV4Auth) and signed.http.auth.region == "us-east-2"


def test_the_panel_client_uses_the_credentials_given_to_connect():
    """``%hail connect --auth basic --user alice --password-prompt``: the context keeps the
    configuration with those options, so the panel's quick client (built from the context's
    configuration alone) authenticates as the session's client does, instead of getting 401s."""
    from hail_emr_lab.notebook.connect import ConnectOptions, with_connect_options

    cfg = with_connect_options(load_config(), ConnectOptions(auth="basic", username="alice", password="typed"))
    panel = make_client(cfg, "http://10.0.0.5:8998", quick=True)
    assert isinstance(panel.http.auth, HTTPBasicAuth)
    assert (panel.http.auth.username, panel.http.auth.password) == ("alice", "typed")
    assert "typed" not in repr(cfg)


def test_quick_clients_for_dashboards():
    client = make_client(load_config(), "http://10.0.0.5:8998", quick=True)
    assert (client.connect_timeout, client.retries) == (QUICK_CONNECT_TIMEOUT, 0)
    assert make_client(load_config(), "http://10.0.0.5:8998").retries > 0


def test_configured_url():
    assert configured_url(load_config({"livy_url": "http://h:8998"})) == "http://h:8998"
    assert configured_url(load_config({"serverless_app": "00fabcdexample", "region": "eu-west-1"})) == SERVERLESS_URL
    assert configured_url(load_config()) is None


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, relative ones resolved against the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            out.append(".".join([*base, node.module or ""]).strip("."))
    return out


def test_jobs_never_import_kernel_state():
    for path in sorted((PACKAGE / "jobs").glob("*.py")):
        assert not [m for m in _imports(path) if m.startswith("hail_emr_lab.notebook")], path.name


def test_one_client_factory():
    """No module but ``endpoint`` builds a LivyClient from configuration."""
    builders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "endpoint.py" or "livy" in path.relative_to(PACKAGE).parts[:1] or "embedded" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "LivyClient":
                builders.append(str(path.relative_to(PACKAGE)))
    assert builders == []


def test_dashboard_sections_take_the_configuration_they_are_given():
    """The server resolves the configuration once per request and passes it down: no section
    of the sidebar resolves it again."""
    callers = []
    for path in sorted((PACKAGE / "dashboard").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "load_config":
                callers.append(path.name)
    assert callers == []
