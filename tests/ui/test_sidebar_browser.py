"""The Hail sidebar in a real JupyterLab, driven by headless Chromium.

JupyterLab runs as a subprocess on the embedded Livy server and the moto S3 server. A notebook
with ``%%hail`` cells makes a bokeh plot on the "cluster" and then runs a slow Spark job; the
test opens the sidebar and sees the session, the live progress with its Spark job, the plot in
the gallery, opens the plot (sandboxed iframe, rendered canvas), presses "Back up now" and
sees the backup status change. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from support.lab import Lab, chromium, delete_livy_sessions, failure_artifacts, open_notebook, run_command, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSION_NAME = "hail-ui-sidebar"
POLL_SECONDS = 1  # the sidebar's poll interval setting (default 3)

NOTEBOOK_CELLS = [
    "%load_ext hail_emr_lab",
    "%hail connect",
    "%%hail\nfrom bokeh.plotting import figure\n"
    "p = figure(title='sidebar test', width=400, height=300)\n"
    "p.scatter([1, 2, 3, 4], [4, 1, 3, 2], size=12)\n"
    "save_plot(p, 'sidebar_scatter')",
    "%%hail\nimport time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(60) or x).count()",
]


@pytest.fixture
def lab(livy_server, aws_env, tmp_path, isolated_config, artifacts_dir):
    """JupyterLab with the extension, on the embedded Livy and moto S3."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="ui-bucket")
    root = tmp_path / "SageMaker"
    env = {
        "HAIL_EMR_LAB_LIVY_URL": livy_server.url,
        "HAIL_EMR_LAB_SESSION_NAME": SESSION_NAME,
        "HAIL_EMR_LAB_PLOTS_DIR": str(livy_server.plots_dir),
        "HAIL_EMR_LAB_BUCKET": "ui-bucket",
        "HAIL_EMR_LAB_PREFIX": "ui-user",
        "HAIL_EMR_LAB_HOME": str(root),
        "HAIL_EMR_LAB_SYNC_STATE_DIR": str(tmp_path / "sync-state"),
    }
    try:
        with running_lab(
            tmp_path, artifacts_dir, "sidebar", root=root, notebooks={"analysis.ipynb": NOTEBOOK_CELLS}, env=env,
            settings={"pollInterval": POLL_SECONDS},
        ) as running:
            yield running
    finally:
        delete_livy_sessions(livy_server.url, SESSION_NAME)  # the kernel's session: keep the server lean


def test_sidebar_end_to_end(lab: Lab, livy_server, artifacts_dir):
    api = f"{lab.url}/hail-emr-lab/api"
    assert requests.get(f"{api}/status", timeout=10).status_code == 403  # no token, no data
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        log = ApiRecorder(page, artifacts_dir / "sidebar-api.jsonl")
        try:
            with failure_artifacts(page, artifacts_dir, "sidebar", lab):
                _run(page, lab, artifacts_dir, livy_server.url, log)
        finally:
            log.close()


class ApiRecorder:
    """Logs the test's steps and every answer of the extension's API (time, path, status, body)
    and every kernel action, as a test artifact: when the sidebar shows something unexpected,
    this says whether the server, the kernel or the panel erred."""

    def __init__(self, page, path: Path) -> None:
        self._clock = time.monotonic
        self._start = self._clock()
        self._out = open(path, "w")
        self.rows: list[dict] = []
        page.on("response", self._on_response)

    def now(self) -> float:
        return round(self._clock() - self._start, 2)

    def mark(self, step: str) -> None:
        """Record a step of the test."""
        self._write({"step": step})

    def answers(self, path: str, since: float) -> int:
        """How many answers of API ``path`` arrived since ``since``."""
        return sum(1 for r in self.rows if r.get("path") == path and r["t"] >= since)

    def close(self) -> None:
        self._out.close()

    def _write(self, row: dict) -> None:
        row = {"t": self.now(), **row}
        self.rows.append(row)
        self._out.write(json.dumps(row) + "\n")
        self._out.flush()

    def _on_response(self, response) -> None:
        url = response.url.split("?", 1)[0]
        if "/api/kernels/" in url and response.request.method == "POST":
            self._write({"path": "kernels/" + url.split("/api/kernels/", 1)[1], "status": response.status})
        elif "/hail-emr-lab/api/" in url and "/plots/view" not in url:
            try:
                body = response.json()
            except Exception as exc:  # a non-JSON answer is itself worth recording
                body = f"<{type(exc).__name__}>"
            self._write({"path": url.split("/hail-emr-lab/api/", 1)[1], "status": response.status, "body": body})


def _run(page, lab: Lab, shots: Path, livy_url: str, log: ApiRecorder) -> None:
    from playwright.sync_api import expect

    mark = log.mark
    root = lab.root
    open_notebook(page, lab, "analysis.ipynb")

    # Open the Hail sidebar the way a user does: its tab in the left bar.
    page.click(".jp-SideBar.jp-mod-left [data-id='hail-emr-lab-panel']")
    panel = page.locator("#hail-emr-lab-panel")
    expect(panel).to_be_visible()
    cluster = panel.locator("[data-section='cluster']")
    expect(cluster.locator(".jp-HailReach")).to_have_attribute("data-reachable", "true", timeout=30_000)
    expect(cluster.locator(".jp-HailEndpoint")).to_have_text(livy_url)
    backup = panel.locator("[data-section='backup']")
    expect(backup.locator("[data-field='last-backup']")).to_have_text("Last backup: never", timeout=30_000)
    page.screenshot(path=str(shots / "sidebar-1-connected-endpoint.png"))

    # Run the notebook: connect, make a plot on the cluster, then a slow Spark job.
    mark("run all")
    run_command(page, "notebook:run-all-cells")
    mark("run all sent")

    sessions = panel.locator("[data-section='sessions']")
    own = sessions.locator(".jp-HailSession[data-own='true']")
    expect(own).to_have_count(1, timeout=240_000)
    # One session per notebook: named after user and notebook, and the sidebar says which notebook.
    expect(own.locator(".jp-HailSession-name")).to_contain_text(f"{SESSION_NAME}@analysis-")
    expect(own.locator(".jp-HailSession-notebook")).to_have_text("notebook: analysis.ipynb", timeout=30_000)

    # The slow statement, found by its code: hidden statements of the magics (connect, plot scans)
    # run too, and must not be mistaken for it.
    running = panel.locator("[data-section='running']")
    statement = running.locator(".jp-HailStatement").filter(has_text="sc.parallelize(range(4), 4)")
    expect(statement).to_be_visible(timeout=240_000)
    mark("slow statement seen")
    expect(statement.locator(".jp-HailJob").first).to_contain_text("tasks", timeout=60_000)
    expect(statement.locator(".jp-HailProgress")).to_be_visible()
    mark("its Spark job seen")
    page.screenshot(path=str(shots / "sidebar-2-session-and-progress.png"))

    plots = panel.locator("[data-section='plots']")
    tile = plots.locator(".jp-HailPlot[data-plot='sidebar_scatter.html']")
    expect(tile).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "sidebar-3-plot-gallery.png"))
    assert (root / "plots" / "sidebar_scatter.html").is_file()

    # Open the plot: a main-area tab with a sandboxed iframe, where bokeh draws its canvas.
    mark("plot in gallery")
    tile.click()
    frame_el = page.locator(".jp-HailPlotViewer-frame")
    expect(frame_el).to_have_count(1, timeout=20_000)
    assert frame_el.get_attribute("sandbox") == "allow-scripts"
    assert "allow-same-origin" not in (frame_el.get_attribute("sandbox") or "")
    frame = page.frame_locator(".jp-HailPlotViewer-frame")
    expect(frame.locator("canvas").first).to_be_attached(timeout=30_000)
    # The plot's scripts live in an opaque origin: they cannot read the Lab page or its cookies.
    plot_frame = next(f for f in page.frames if "hail-emr-lab/api/plots/view" in f.url)
    assert plot_frame.evaluate("() => window.origin") == "null"
    probe = "() => { try { return parent.document.title; } catch (e) { return 'blocked'; } }"
    assert plot_frame.evaluate(probe) == "blocked"
    assert plot_frame.evaluate("() => { try { return document.cookie; } catch (e) { return 'blocked'; } }") in (
        "blocked",
        "",
    )
    page.screenshot(path=str(shots / "sidebar-4-plot-viewer.png"))

    # The slow job (long enough to be seen even when polls are slow on a loaded machine) is
    # interrupted from the notebook, as a user does: back to its tab, then Kernel > Interrupt. The
    # magic cancels it on the cluster and the Running section empties.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="analysis.ipynb").click()
    page.wait_for_function("window.jupyterapp.shell.currentWidget?.title.label === 'analysis.ipynb'", timeout=10_000)
    # Every section says when it was last refreshed.
    for section in ("cluster", "sessions", "running", "plots", "backup", "jobs"):
        stamp = panel.locator(f"[data-section='{section}'] [data-field='updated']")
        expect(stamp).to_have_text(re.compile(r"updated \d\d:\d\d:\d\d( · [\d.]+ ms)?"), timeout=30_000)
    # The server stops answering the Running section (its requests hang), and the statement then
    # ends: the sidebar does not keep showing it as running, it says it has no fresh answer.
    page.route("**/hail-emr-lab/api/progress*", lambda route: None)  # never answered
    mark("progress answers held back")
    mark("interrupt")
    run_command(page, "notebook:interrupt-kernel")
    stale = running.locator(".jp-HailMuted", has_text="No answer from the server for")
    expect(stale).to_be_visible(timeout=30_000)
    expect(running.locator(".jp-HailStatement")).to_have_count(0)
    expect(running.locator("[data-field='updated']")).to_have_class(re.compile("jp-mod-stale"))
    mark("stale running section emptied")
    page.unroute("**/hail-emr-lab/api/progress*")
    expect(running).to_contain_text("Nothing running.", timeout=60_000)  # the held request is given up
    expect(running.locator("[data-field='updated']")).not_to_have_class(re.compile("jp-mod-stale"))
    mark("nothing running")
    last_cell = page.locator(".jp-Notebook .jp-Cell").nth(len(NOTEBOOK_CELLS) - 1)
    expect(last_cell.locator(".jp-OutputArea")).to_contain_text("cancelled on the cluster", timeout=30_000)

    # Back up now: our run reports "backup finished" and nothing is left pending. (The sync's
    # on-save hook may also have backed up the saved notebook meanwhile: the plot files
    # pulled by the kernel are only picked up by a full backup.)
    pending = backup.locator("[data-field='pending']")
    expect(pending).not_to_have_text("Pending files: 0", timeout=30_000)
    mark("back up now")
    backup.locator("button[data-action='backup']").click()
    expect(backup.locator("[data-field='run']")).to_contain_text("backup finished", timeout=60_000)
    expect(pending).to_have_text("Pending files: 0", timeout=30_000)
    expect(backup.locator("[data-field='last-backup']")).not_to_have_text("Last backup: never")
    page.screenshot(path=str(shots / "sidebar-5-backup-done.png"))
    import boto3

    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="ui-bucket").get("Contents", [])}
    assert "ui-user/analysis.ipynb" in keys and "ui-user/plots/sidebar_scatter.html" in keys, keys

    # The poll interval comes from the settings: answers arrive about every POLL_SECONDS.
    times = [r["t"] for r in log.rows if r.get("path") == "status"]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    assert len(gaps) > 5 and gaps[len(gaps) // 2] < POLL_SECONDS + 1.5, gaps

    # Hidden, the panel stops polling; shown again, it refreshes at once.
    tab = page.locator(".jp-SideBar.jp-mod-left [data-id='hail-emr-lab-panel']")
    tab.click()
    expect(panel).to_be_hidden()
    page.wait_for_timeout(2_000)  # a poll already in flight may still land
    mark("hidden")
    hidden_at = log.now()
    page.wait_for_timeout(10_000)  # many poll intervals
    assert log.answers("status", since=hidden_at) == 0, "the panel kept polling while hidden"
    mark("shown")
    shown_at = log.now()
    tab.click()
    expect(panel).to_be_visible()
    deadline = log.now() + 10
    while log.answers("status", since=shown_at) == 0:
        assert log.now() < deadline, "the panel did not refresh when shown again"
        page.wait_for_timeout(200)

    # Delete our session from the Sessions section (after a confirmation): it is gone on the server.
    mark("delete session")
    own.locator("button[data-action='delete-session']").click()
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-warn").click()
    expect(own).to_have_count(0, timeout=30_000)
    from hail_emr_lab.livy import LivyClient

    with LivyClient(livy_url) as client:
        assert not [s for s in client.list_sessions() if (s.name or "").startswith(SESSION_NAME) and s.state.is_alive]



@pytest.fixture
def serverless_lab(livy_server, aws_env, tmp_path, isolated_config, artifacts_dir):
    """JupyterLab whose target is a moto EMR Serverless application, its Livy endpoint stood in
    for by the SigV4-verifying gateway in front of the embedded Livy (as after
    ``%hail connect --serverless-app``: auth sigv4, the region recorded); yields (lab, app id)."""
    import boto3
    from support.sigv4_gateway import SigV4Gateway

    app_id = boto3.client("emr-serverless").create_application(
        name="hail-interactive", releaseLabel="emr-7.2.0", type="SPARK",
        interactiveConfiguration={"livyEndpointEnabled": True},
    )["applicationId"]
    gateway = SigV4Gateway(livy_server.url, {"testing": ("testing", None)}, region="us-east-1").start()
    env = {
        "HAIL_EMR_LAB_LIVY_URL": gateway.url,
        "HAIL_EMR_LAB_AUTH": "sigv4",
        "HAIL_EMR_LAB_REGION": "us-east-1",
        "HAIL_EMR_LAB_SERVERLESS_APP": app_id,
    }
    try:
        with running_lab(
            tmp_path, artifacts_dir, "serverless", root=tmp_path / "SageMaker", env=env,
            settings={"pollInterval": POLL_SECONDS},
        ) as running:
            yield running, app_id
    finally:
        gateway.stop()


def test_cluster_section_shows_the_serverless_target(serverless_lab, artifacts_dir):
    """The Cluster section names the EMR Serverless application that is the target: id, name,
    state, release and Livy endpoint, and reaches the endpoint with signed requests.

    Not covered: the real endpoint over the internet (the gateway stands in for it, signatures
    checked with botocore), IAM, and application states moto skips (STARTING, STOPPING)."""
    from playwright.sync_api import expect

    lab, app_id = serverless_lab
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        with failure_artifacts(page, artifacts_dir, "serverless", lab):
            page.goto(lab.page("lab"))
            page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
            page.click(".jp-SideBar.jp-mod-left [data-id='hail-emr-lab-panel']", timeout=60_000)
            cluster = page.locator("#hail-emr-lab-panel [data-section='cluster']")
            expect(cluster.locator(".jp-HailReach")).to_have_attribute("data-reachable", "true", timeout=60_000)
            app = cluster.locator("[data-field='serverless']")
            expect(app).to_have_attribute("data-application-id", app_id)
            expect(app).to_contain_text(f"EMR Serverless application {app_id} hail-interactive")
            expect(app.locator(".jp-HailBadge")).to_have_text("started")
            expect(app).to_contain_text("emr-7.2.0")
            expect(app.locator("[data-field='serverless-livy']")).to_have_text(
                f"https://{app_id}.livy.emr-serverless-services.us-east-1.amazonaws.com"
            )
            cluster.screenshot(path=str(artifacts_dir / "serverless-sidebar.png"))
