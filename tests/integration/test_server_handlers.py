"""The server extension's REST API, through a real jupyter_server (pytest-jupyter's jp_fetch).

Livy data comes from the embedded server (one session for this module), sync status from the
moto server, clusters from moto's EMR. Every route is checked for 403 without credentials,
and POST for XSRF with a cookie-authenticated request.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from hail_emr_lab.server.handlers import API, PLOT_CSP

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SESSION_NAME = "hail-test-server-api"
SECRET = "pw-do-not-leak-7f3a"
AWS_SECRET = "aws-do-not-leak-91c2"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"hail_emr_lab": True}}}


@pytest.fixture(scope="module")
def livy_session(livy_server):
    """One session for the module, named as the user's own (session_name = SESSION_NAME)."""
    from hail_emr_lab.livy import LivyClient, LivySession

    client = LivyClient(livy_server.url)
    session = LivySession.create(client, name=SESSION_NAME, kind="pyspark")
    session.wait_ready(timeout=300)
    yield session
    client.delete_session(session.id)
    client.close()


@pytest.fixture
def livy_env(livy_server, livy_session, monkeypatch):
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", livy_server.url)
    monkeypatch.setenv("HAIL_EMR_LAB_SESSION_NAME", SESSION_NAME)
    monkeypatch.setenv("HAIL_EMR_LAB_AUTH", "none")
    monkeypatch.setenv("HAIL_EMR_LAB_PASSWORD", SECRET)
    return livy_server


async def get_json(jp_fetch, route: str, **params) -> dict:
    response = await jp_fetch(*API.split("/"), *route.split("/"), params=params or None)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.body.decode()
    assert SECRET not in body and AWS_SECRET not in body
    return json.loads(body)


async def error_of(jp_fetch, route: str, method: str = "GET", body: str | None = None, **params):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*API.split("/"), *route.split("/"), method=method, body=body, params=params or None)
    return info.value.code, json.loads(info.value.response.body or b"{}")


# ----------------------------------------------------------------- authentication / XSRF

ROUTES = [
    ("GET", "status"),
    ("GET", "sessions"),
    ("DELETE", "sessions/1"),
    ("GET", "progress"),
    ("GET", "plots"),
    ("GET", "plots/view"),
    ("GET", "sync"),
    ("POST", "sync"),
    ("GET", "clusters"),
    ("GET", "jobs"),
]


@pytest.mark.parametrize("method,route", ROUTES)
async def test_every_route_needs_authentication(http_server_client, jp_base_url, method, route):
    url = f"{jp_base_url}{API}/{route}"
    body = json.dumps({"action": "backup"}) if method == "POST" else None
    response = await http_server_client.fetch(url, method=method, body=body, raise_error=False)
    assert response.code == 403, (route, response.code)


async def _login_cookies(jp_fetch) -> dict[str, str]:
    """Cookies of a browser that logged in with the token (jupyter_server sets them)."""
    response = await jp_fetch(*API.split("/"), "jobs")
    cookies = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";", 1)[0]
    assert any(name.startswith("username-") for name in cookies), cookies
    return cookies


async def test_post_with_login_cookie_needs_xsrf(jp_fetch, http_server_client, jp_base_url):
    cookies = await _login_cookies(jp_fetch)
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items() if k.startswith("username-"))
    url = f"{jp_base_url}{API}/sync"
    # Cookie-authenticated (as a browser) but no XSRF token: refused.
    response = await http_server_client.fetch(
        url, method="POST", body='{"action": "nope"}', headers={"Cookie": cookie_header}, raise_error=False
    )
    assert response.code == 403
    # Same cookie, plus the _xsrf cookie and header as JupyterLab sends them: accepted (400 = the
    # handler ran and refused the bad action, i.e. the XSRF check passed).
    xsrf = "2|abcdef01|0123456789abcdef0123456789abcdef|1700000000"
    response = await http_server_client.fetch(
        url,
        method="POST",
        body='{"action": "nope"}',
        raise_error=False,
        headers={"Cookie": f"{cookie_header}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert response.code == 400, response.body
    assert "unknown sync action" in json.loads(response.body)["message"]
    # And a cookie-authenticated DELETE without XSRF is refused too.
    response = await http_server_client.fetch(
        f"{jp_base_url}{API}/sessions/0", method="DELETE", headers={"Cookie": cookie_header}, raise_error=False
    )
    assert response.code == 403


# ----------------------------------------------------------------- status


async def test_status_reachable_without_secrets(jp_fetch, livy_env):
    data = await get_json(jp_fetch, "status")
    assert data["reachable"] is True, data
    assert data["livy_url"] == livy_env.url
    assert data["livy_url_source"] == "environment"
    assert data["session_name"] == SESSION_NAME
    assert data["config"]["password"]["value"] == "***"
    assert data["latency_ms"] >= 0


async def test_status_unreachable_and_unconfigured(jp_fetch, monkeypatch):
    from support.net import free_port

    data = await get_json(jp_fetch, "status")
    assert data["reachable"] is False and data["livy_url"] is None
    assert "%hail connect" in data["error"]
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", f"http://user:{SECRET}@127.0.0.1:{free_port()}")
    data = await get_json(jp_fetch, "status")  # also asserts the password in the URL is not echoed
    assert data["reachable"] is False
    assert data["error"] and "127.0.0.1" in data["error"]


async def test_status_bad_config_file_is_a_clear_error(jp_fetch, isolated_config):
    (isolated_config / "config.json").write_text("{not json")
    code, body = await error_of(jp_fetch, "status")
    assert code == 400
    assert "not valid JSON" in body["message"]


# ----------------------------------------------------------------- sessions and progress


async def test_sessions_lists_own_session(jp_fetch, livy_env, livy_session):
    data = await get_json(jp_fetch, "sessions")
    assert data["error"] is None
    mine = [s for s in data["sessions"] if s["id"] == livy_session.id]
    assert mine and mine[0]["own"] is True and mine[0]["name"] == SESSION_NAME
    assert mine[0]["state"] in ("idle", "busy")
    ui = mine[0]["spark_ui_url"]
    assert ui is None or ui.startswith("http")


@pytest.mark.parametrize(
    "code, shown",
    [
        ("import time\nsc.parallelize([1]).count()", "sc.parallelize([1]).count()"),
        ("# QC\nfrom hail import methods\n\n  mt = hl.read_matrix_table(p)\nmt.count()", "mt = hl.read_matrix_table(p)"),
        ("import hail as hl", "import hail as hl"),
        ("", ""),
        ("x = '" + "y" * 300 + "'", "x = '" + "y" * 195),
    ],
)
def test_running_statement_shows_what_it_does(code, shown):
    from hail_emr_lab.dashboard.progress import code_preview

    assert code_preview(code) == shown


async def test_progress_maps_spark_jobs_to_statements(jp_fetch, livy_env, livy_session):
    code = "import time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(6) or x).count()"
    st = livy_session.submit(code)
    row = None
    spark_errors = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and row is None:
        data = await get_json(jp_fetch, "progress")
        assert data["error"] is None, data
        mine = [s for s in data["sessions"] if s["session_id"] == livy_session.id]
        assert mine and mine[0]["own"] is True
        spark_errors.append(mine[0]["spark_error"])  # the Spark UI's first answer can take seconds
        row = next((r for r in mine[0]["statements"] if r["id"] == st.id and r["jobs"]), None)
        await asyncio.sleep(0.3)
    assert row is not None, f"the running statement never showed its Spark job: {spark_errors}"
    assert row["state"] == "running" and 0.0 <= row["progress"] <= 1.0
    assert row["code"].startswith("sc.parallelize(range(4), 4)")  # what it does, not its imports
    job = row["jobs"][0]
    assert str(job["jobGroup"]) == str(st.id)
    assert job["numTasks"] == 4
    assert job["stages"] and job["stages"][0]["numTasks"] == 4
    done = await asyncio.get_running_loop().run_in_executor(None, lambda: livy_session.wait(st, timeout=120))
    assert done.output is not None and done.output.ok and "4" in done.output.text
    data = await get_json(jp_fetch, "progress")
    assert [r for s in data["sessions"] for r in s["statements"]] == []


# A kernel stand-in: another process that publishes a transfer the way a kernel's -o does
# (the real TransferProgress and file), then waits to be told to end it or to be killed.
PUBLISHER = """
import sys
import time
from hail_emr_lab.notebook.progress import Progress
from hail_emr_lab.notebook.transfer_progress import TransferProgress
moving = TransferProgress("pull", ["gwas"], session_name="hail-x", runtime_dir=sys.argv[1], bar=Progress(show_after=99))
moving.on_chunk("gwas", 0, 40_000_000, transport="staged", rows=2_000_000)
time.sleep(0.3)  # redraws are throttled
moving.on_chunk("gwas", 10_000_000, 40_000_000, transport="staged", rows=2_000_000)
print("published", flush=True)
if sys.stdin.readline().strip() == "end":
    moving.finish("ok")
    print("ended", flush=True)
"""


def _publisher(runtime: str):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, runtime], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "published"
    return proc


async def test_progress_shows_the_transfers_kernels_publish(jp_fetch, monkeypatch):
    from jupyter_core.paths import jupyter_runtime_dir

    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", "http://127.0.0.1:9")  # no Livy: transfers still show
    proc = _publisher(jupyter_runtime_dir())
    try:
        data = await get_json(jp_fetch, "progress")
        assert data["error"] and data["transfers_error"] is None
        (moving,) = data["transfers"]
        assert moving["kernel_pid"] == proc.pid and moving["name"] == "gwas" and moving["direction"] == "pull"
        assert (moving["transport"], moving["done_bytes"], moving["total_bytes"], moving["rows"]) == \
            ("staged", 10_000_000, 40_000_000, 2_000_000)
        proc.stdin.write("end\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ended"
        assert (await get_json(jp_fetch, "progress"))["transfers"] == []  # gone when it ends
        proc.wait(timeout=30)
        # A kernel killed mid-transfer leaves a file behind: the server drops it.
        proc = _publisher(jupyter_runtime_dir())
        proc.kill()
        proc.wait(timeout=30)
        assert (await get_json(jp_fetch, "progress"))["transfers"] == []
    finally:
        proc.kill()
        proc.wait(timeout=30)


# ----------------------------------------------------------------- plots


@pytest.fixture
def plot_tree(jp_root_dir):
    plots = jp_root_dir / "analysis" / "plots"
    plots.mkdir(parents=True)
    (plots / "hist.html").write_text("<html><body><script>document.title='ok'</script>hist</body></html>")
    (plots / "qq.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (plots / "notes.txt").write_text("not a plot")
    outside = jp_root_dir / "secret.html"
    outside.write_text("<p>outside</p>")
    (plots / "link.html").symlink_to(outside)
    return plots


async def test_plots_gallery_lists_plot_files(jp_fetch, plot_tree):
    data = await get_json(jp_fetch, "plots", dir="analysis")
    files = {p["file"]: p for p in data["plots"]}
    assert {"hist.html", "qq.png"} <= set(files)
    assert "notes.txt" not in files and "link.html" not in files
    assert files["hist.html"]["kind"] == "html" and files["qq.png"]["size"] == 40
    empty = await get_json(jp_fetch, "plots", dir="")
    assert empty["plots"] == [] and "no plots" in empty["message"]


async def test_plot_viewer_serves_with_strict_csp(jp_fetch, plot_tree):
    response = await jp_fetch(*API.split("/"), "plots", "view", params={"dir": "analysis", "name": "hist.html"})
    assert response.code == 200
    assert response.body == (plot_tree / "hist.html").read_bytes()
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Content-Security-Policy"] == PLOT_CSP
    assert "sandbox allow-scripts" in PLOT_CSP and "allow-same-origin" not in PLOT_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    png = await jp_fetch(*API.split("/"), "plots", "view", params={"dir": "analysis", "name": "qq.png"})
    assert png.headers["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    "params,code",
    [
        ({"dir": "analysis", "name": "../../secret.html"}, 400),
        ({"dir": "analysis", "name": "/etc/passwd"}, 400),
        ({"dir": "analysis", "name": "..\\secret.html"}, 400),
        ({"dir": "analysis", "name": "link.html"}, 400),
        ({"dir": "analysis", "name": "notes.txt"}, 400),
        ({"dir": "../..", "name": "hist.html"}, 400),
        ({"dir": "/etc", "name": "hist.html"}, 400),
        ({"dir": "analysis", "name": ""}, 400),
        ({"dir": "analysis", "name": "missing.html"}, 404),
    ],
)
async def test_plot_viewer_refuses_escapes(jp_fetch, plot_tree, params, code):
    status, body = await error_of(jp_fetch, "plots/view", **params)
    assert status == code, body
    assert body["message"]


async def test_plots_refuses_dir_outside_root(jp_fetch, plot_tree):
    status, body = await error_of(jp_fetch, "plots", dir="../")
    assert status == 400 and ".." in body["message"]


@pytest.fixture
def plots_link_outside(jp_root_dir, tmp_path_factory):
    """``linked/plots`` is a symlink to a directory outside the Jupyter root holding a plot."""
    outside = tmp_path_factory.mktemp("outside-root") / "their-plots"
    outside.mkdir()
    (outside / "private.html").write_text("<p>outside the root</p>")
    (outside / "private.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    notebook_dir = jp_root_dir / "linked"
    notebook_dir.mkdir()
    (notebook_dir / "plots").symlink_to(outside, target_is_directory=True)
    inside = jp_root_dir / "shared-plots"
    inside.mkdir()
    (inside / "mine.html").write_text("<p>inside</p>")
    (jp_root_dir / "alias").mkdir()
    (jp_root_dir / "alias" / "plots").symlink_to(inside, target_is_directory=True)
    return outside


async def test_plots_folder_linked_outside_root_is_refused(jp_fetch, plots_link_outside):
    # Jupyter's own file handler refuses the same path: the sidebar must not be a way around it.
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("files", "linked", "plots", "private.html")
    assert info.value.code in (403, 404)
    status, body = await error_of(jp_fetch, "plots", dir="linked")
    assert status == 400 and "outside" in body["message"], body
    for name in ("private.html", "private.png"):
        status, body = await error_of(jp_fetch, "plots/view", dir="linked", name=name)
        assert status == 400 and "outside" in body["message"], body
    # A plots folder linked to another directory inside the root is still followed.
    data = await get_json(jp_fetch, "plots", dir="alias")
    assert [p["file"] for p in data["plots"]] == ["mine.html"]
    response = await jp_fetch(*API.split("/"), "plots", "view", params={"dir": "alias", "name": "mine.html"})
    assert response.body == b"<p>inside</p>"


# ----------------------------------------------------------------- sync


@pytest.fixture
def sync_env(aws_env, tmp_path, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    home = tmp_path / "sagemaker"
    home.mkdir()
    (home / "work.ipynb").write_text('{"cells": []}')
    boto3.client("s3").create_bucket(Bucket="lab-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_BUCKET", "lab-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_PREFIX", "alice")
    monkeypatch.setenv("HAIL_EMR_LAB_HOME", str(home))
    monkeypatch.setenv("HAIL_EMR_LAB_SYNC_STATE_DIR", str(tmp_path / "sync-state"))
    return home


async def test_sync_status_and_backup_now(jp_fetch, sync_env):
    import boto3

    from hail_emr_lab.dashboard.backup import RUNNER

    before = await get_json(jp_fetch, "sync")
    assert before["available"] and before["configured"], before
    assert before["status"]["last_backup"] is None
    assert before["status"]["pending_count"] == 1 and before["status"]["pending"] == ["work.ipynb"]

    response = await jp_fetch(*API.split("/"), "sync", method="POST", body=json.dumps({"action": "backup"}))
    assert response.code == 202
    assert json.loads(response.body)["started"] is True
    assert RUNNER.wait(60)
    after = await get_json(jp_fetch, "sync")
    assert after["run"]["ok"] is True and after["run"]["action"] == "backup", after["run"]
    assert after["status"]["last_backup"] and after["status"]["pending_count"] == 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="lab-bucket").get("Contents", [])]
    assert "alice/work.ipynb" in keys


async def test_sync_restore_keeps_local_work(jp_fetch, sync_env):
    """Restore from the sidebar: a file lost locally comes back; a file changed only locally is
    kept as it is; a file changed on both sides keeps the local version and gets the S3 one as a
    conflict copy next to it."""
    import boto3

    from hail_emr_lab.dashboard.backup import RUNNER

    (sync_env / "analysis.py").write_text("print('v1')\n")
    (sync_env / "notes.md").write_text("v1\n")
    response = await jp_fetch(*API.split("/"), "sync", method="POST", body=json.dumps({"action": "backup"}))
    assert response.code == 202 and RUNNER.wait(60)
    (sync_env / "work.ipynb").unlink()  # lost locally
    (sync_env / "analysis.py").write_text("print('v2, not backed up yet')\n")  # changed locally
    (sync_env / "notes.md").write_text("local v2\n")  # changed on both sides
    boto3.client("s3").put_object(Bucket="lab-bucket", Key="alice/notes.md", Body=b"remote v2\n")

    response = await jp_fetch(*API.split("/"), "sync", method="POST", body=json.dumps({"action": "restore"}))
    assert response.code == 202 and json.loads(response.body)["started"] is True
    assert RUNNER.wait(60)
    after = await get_json(jp_fetch, "sync")
    assert after["run"]["ok"] is True and after["run"]["action"] == "restore", after["run"]
    assert (sync_env / "work.ipynb").read_text() == '{"cells": []}'
    assert (sync_env / "analysis.py").read_text() == "print('v2, not backed up yet')\n"
    assert (sync_env / "notes.md").read_text() == "local v2\n"
    others = sorted(p.name for p in sync_env.iterdir() if p.is_file())
    copies = [n for n in others if n.startswith("notes") and n != "notes.md"]
    assert len(copies) == 1 and (sync_env / copies[0]).read_text() == "remote v2\n", others
    assert [n for n in others if n.startswith("analysis")] == ["analysis.py"], others


async def test_sync_bad_requests(jp_fetch, sync_env):
    code, body = await error_of(jp_fetch, "sync", method="POST", body="{oops")
    assert code == 400 and "JSON" in body["message"]
    code, body = await error_of(jp_fetch, "sync", method="POST", body=json.dumps({"action": "rm -rf"}))
    assert code == 400 and "backup" in body["message"]


async def test_sync_unconfigured_says_what_to_set(jp_fetch):
    data = await get_json(jp_fetch, "sync")
    assert data["configured"] is False and "bucket" in data["error"].lower()
    code, body = await error_of(jp_fetch, "sync", method="POST", body=json.dumps({"action": "backup"}))
    assert code == 409 and "bucket" in body["message"].lower()


# ----------------------------------------------------------------- clusters and jobs


async def test_clusters_from_moto_emr(jp_fetch, aws_env, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    emr = boto3.client("emr")
    cluster = emr.run_job_flow(
        Name="hail-lab-cluster",
        ReleaseLabel="emr-7.1.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        Applications=[{"Name": "Spark"}, {"Name": "Livy"}],
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )
    data = await get_json(jp_fetch, "clusters")
    assert data["available"] is True and data["error"] is None, data
    assert cluster["JobFlowId"] in json.dumps(data["clusters"])


async def test_clusters_without_aws(jp_fetch, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    data = await get_json(jp_fetch, "clusters")
    assert data["available"] is False and "credentials" in data["error"]


async def test_jobs_section(jp_fetch, tmp_path, monkeypatch):
    from hail_emr_lab.jobs import store
    from hail_emr_lab.jobs.base import Job, JobState

    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_STORE", str(tmp_path / "jobs.jsonl"))
    data = await get_json(jp_fetch, "jobs", limit="5")
    assert data.pop("elapsed_ms") >= 0
    assert data == {"available": True, "jobs": [], "error": None}
    for i in range(7):
        store.save(Job(id=f"batch-{i}", backend="livy", name=f"qc-{i}", state=JobState.RUNNING,
                       submitted=f"2026-11-21T10:0{i}:00+00:00"))
    data = await get_json(jp_fetch, "jobs", limit="5")
    assert [j["id"] for j in data["jobs"]] == [f"batch-{i}" for i in (6, 5, 4, 3, 2)], data
    assert data["jobs"][0]["state"] == "RUNNING" and data["jobs"][0]["name"] == "qc-6"
    code, body = await error_of(jp_fetch, "jobs", limit="many")
    assert code == 400


# ----------------------------------------------------------------- delete (last: ends the session)


async def test_delete_only_own_session(jp_fetch, livy_env, livy_session, monkeypatch):
    monkeypatch.setenv("HAIL_EMR_LAB_SESSION_NAME", "someone-else")
    code, body = await error_of(jp_fetch, f"sessions/{livy_session.id}", method="DELETE")
    assert code == 403 and "not yours" in body["message"]
    assert livy_session.client.get_session(livy_session.id).state.is_alive
    code, body = await error_of(jp_fetch, "sessions/99999", method="DELETE")
    assert code == 404
    monkeypatch.setenv("HAIL_EMR_LAB_SESSION_NAME", SESSION_NAME)
    response = await jp_fetch(*API.split("/"), "sessions", str(livy_session.id), method="DELETE")
    assert json.loads(response.body)["deleted"] == livy_session.id
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ids = [s.id for s in livy_session.client.list_sessions() if s.state.is_alive]
        if livy_session.id not in ids:
            break
        await asyncio.sleep(0.3)
    assert livy_session.id not in ids


# ----------------------------------------------------------------- freshness


async def test_slow_backup_status_never_holds_back_running(jp_fetch, livy_env, sync_env):
    """Many backup-status requests on a big home (each a scan of its files) are under way when
    the Running section asks: its answer does not queue behind them."""
    for d in range(40):
        folder = sync_env / f"data{d}"
        folder.mkdir()
        for i in range(250):
            (folder / f"f{i}.txt").write_text("x")
    answered: list[tuple[str, float]] = []
    started = time.monotonic()

    async def ask(route: str) -> dict:
        data = await get_json(jp_fetch, route)
        answered.append((route, time.monotonic() - started))
        return data

    syncs = [asyncio.ensure_future(ask("sync")) for _ in range(8)]
    await asyncio.sleep(0.05)  # the scans are under way
    progress = await ask("progress")
    statuses = await asyncio.gather(*syncs)
    order = [route for route, _ in answered]
    assert order[0] == "progress", f"Running waited for the backup scans: {answered}"
    assert progress["error"] is None and progress["elapsed_ms"] >= 0
    assert all(s["status"]["pending_count"] >= 10_000 for s in statuses)
    # Each answer says what it cost the server (shown in the sidebar next to "updated").
    assert all(s["elapsed_ms"] > 0 for s in statuses)
