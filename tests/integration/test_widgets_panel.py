"""The ``%hail panel`` ipywidgets panel, on the embedded Livy server and the moto S3 server.

No Livy session is created here: the panel is checked against whatever the endpoint holds,
its plots come from a real directory, and "Back up now" runs a real backup into moto.
"""

from __future__ import annotations

import re
import time

import boto3
import pytest

from hail_emr_lab.config import load_config
from hail_emr_lab.dashboard.backup import RUNNER
from hail_emr_lab.dashboard.times import local_time
from hail_emr_lab.notebook import panel as widgets
from hail_emr_lab.notebook.context import HailContext, set_current

EVIL = '<img src=x onerror="alert(1)">'


@pytest.fixture
def notebook_dir(tmp_path, aws_env, monkeypatch):
    home = tmp_path / "SageMaker"
    plots = home / "plots"
    plots.mkdir(parents=True)
    (plots / "scatter.html").write_text("<html><body><script>document.body.dataset.ran='1'</script></body></html>")
    (plots / f"{EVIL}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    (home / "work.ipynb").write_text('{"cells": []}')
    boto3.client("s3").create_bucket(Bucket="panel-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_BUCKET", "panel-bucket")
    monkeypatch.setenv("HAIL_EMR_LAB_PREFIX", "panel-user")
    monkeypatch.setenv("HAIL_EMR_LAB_HOME", str(home))
    monkeypatch.setenv("HAIL_EMR_LAB_SYNC_STATE_DIR", str(tmp_path / "state"))
    return home


@pytest.fixture
def connected(livy_server, monkeypatch):
    monkeypatch.setenv("HAIL_EMR_LAB_PASSWORD", "panel-secret-123")
    set_current(HailContext(config=load_config(), endpoint=livy_server.url))
    yield livy_server
    set_current(None)


def test_panel_sections_and_backup(connected, notebook_dir):
    panel = widgets.HailPanel(notebook_dir=str(notebook_dir), auto_refresh=False)
    panel.refresh()
    values = {name: w.value for name, w in panel.sections.items()}
    assert connected.url in values["cluster"] and "not reachable" not in values["cluster"]
    assert "reachable" in values["cluster"]
    assert "panel-secret-123" not in "".join(values.values())
    assert "Nothing running." in values["running"] or "statement" in values["running"]
    assert "2 plot(s)" in values["plots"]
    # Names from the cluster are escaped, never markup.
    names = sorted(b.tooltip for b in panel.plot_buttons.children)
    assert names == sorted(["scatter.html", f"{EVIL}.png"])
    assert "<img src=x" not in values["plots"]
    assert "Last backup: never" in values["backup"] and "Pending files: " in values["backup"]

    # The HTML plot is shown only in a sandboxed iframe (scripts, no same-origin).
    shown = panel.plot_view("scatter.html").data
    assert 'sandbox="allow-scripts"' in shown and "allow-same-origin" not in shown
    assert "&lt;script&gt;" in shown  # inside srcdoc, escaped
    assert "inside its directory" in panel.plot_view("../work.ipynb").data
    assert panel.plot_view(f"{EVIL}.png").data.startswith(b"\x89PNG")

    result = panel.sync("backup")
    assert result["started"] is True
    assert RUNNER.wait(60)
    panel.refresh()
    assert "Last backup: never" not in panel.sections["backup"].value
    # Local time, the sidebar's format (not the ISO text the sync state keeps).
    assert re.search(r"Last backup: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", panel.sections["backup"].value)
    assert "backup finished" in panel.sections["backup"].value
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="panel-bucket")["Contents"]}
    assert "panel-user/work.ipynb" in keys and "panel-user/plots/scatter.html" in keys
    panel.close()


def test_panel_without_endpoint_says_how_to_connect(tmp_path):
    set_current(HailContext(config=load_config()))
    try:
        panel = widgets.HailPanel(notebook_dir=str(tmp_path), auto_refresh=False)
        panel.refresh()
        assert "%hail connect" in panel.sections["cluster"].value
        assert "%hail connect" in panel.sections["sessions"].value
        assert "no plots pulled yet" in panel.sections["plots"].value
        assert "bucket" in panel.sections["backup"].value.lower()
        assert panel.backup_button.disabled
        result = panel.sync("backup")
        assert result["started"] is False and "bucket" in panel.message.value.lower()
    finally:
        set_current(None)


def test_html_helpers_escape_cluster_values():
    html = widgets.sessions_html(
        {"sessions": [{"id": 1, "name": EVIL, "state": "idle", "own": True, "spark_ui_url": None}]}
    )
    assert EVIL not in html and "&lt;img" in html
    run = widgets.running_html(
        {
            "sessions": [
                {
                    "session_id": 1,
                    "error": None,
                    "spark_error": None,
                    "statements": [
                        {
                            "id": 3,
                            "state": "running",
                            "progress": 0.5,
                            "code": EVIL,
                            "jobs": [
                                {"jobId": 0, "status": "RUNNING", "numTasks": 4, "numCompletedTasks": 2, "stages": []}
                            ],
                        }
                    ],
                }
            ]
        }
    )
    assert EVIL not in run and "50%" in run and "2/4 tasks" in run


def _live_widgets() -> int:
    import ipywidgets

    return len(ipywidgets.Widget.widgets)


def test_refreshes_reuse_widgets(connected, notebook_dir):
    plots = notebook_dir / "plots"
    (plots / "third.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    panel = widgets.HailPanel(notebook_dir=str(notebook_dir), auto_refresh=False)
    panel.refresh()
    buttons = list(panel.plot_buttons.children)
    assert len(buttons) == 3
    before = _live_widgets()
    for _ in range(10):
        panel.refresh()
    assert _live_widgets() == before, "refreshing made new widgets"
    assert list(panel.plot_buttons.children) == buttons  # the same button objects
    # A new plot gets one new button; a removed plot's button is closed (with its layout and
    # style widgets), not leaked.
    (plots / "fourth.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    panel.refresh()
    per_button = _live_widgets() - before
    assert 1 <= per_button <= 3 and len(panel.plot_buttons.children) == 4
    (plots / "fourth.png").unlink()
    (plots / "third.svg").unlink()
    panel.refresh()
    assert _live_widgets() == before - per_button and len(panel.plot_buttons.children) == 2
    panel.close()
    assert _live_widgets() < before - 10, "closing the panel left its widgets open"


def test_refresh_thread_idles_while_no_front_end_displays_it(connected, notebook_dir):
    # Stand-in for the front end: ipywidgets' widget manager reports the views it displays by
    # setting _view_count on the model (+1 when a view is displayed, -1 when it is removed); here
    # the test sets it as those comm messages would. The browser test covers a real JupyterLab.
    panel = widgets.HailPanel(notebook_dir=str(notebook_dir), interval=0.1)
    try:
        time.sleep(1.0)
        assert panel.refreshes == 0, "refreshed while no front end displayed the panel"
        panel.widget._view_count = 1
        deadline = time.monotonic() + 20
        while panel.refreshes < 3:
            assert time.monotonic() < deadline, "did not refresh while displayed"
            time.sleep(0.05)
        panel.widget._view_count = 0
        time.sleep(1.0)  # a refresh already under way may finish
        seen = panel.refreshes
        time.sleep(1.0)
        assert panel.refreshes == seen, "kept refreshing after the last view was removed"
    finally:
        panel.close()


def test_showing_the_panel_again_closes_the_previous_one(connected, notebook_dir):
    first = widgets.show_panel(interval=60)
    count = _live_widgets()
    second = widgets.show_panel(interval=60)
    try:
        assert first._stop.is_set() and _live_widgets() <= count
    finally:
        second.close()


def test_times_are_shown_in_local_time_one_format(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert local_time("2026-11-29T20:05:09+00:00") == "2026-11-29 15:05:09"
        assert local_time(1_795_980_000) == "2026-11-29 14:20:00"
        assert local_time(None) == "never" and local_time("not a time") == "not a time"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
