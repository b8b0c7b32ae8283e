"""The ``%hail panel`` ipywidgets panel, on the embedded Livy server and the moto S3 server.

No Livy session is created here: the panel is checked against whatever the endpoint holds,
its plots come from a real directory, and "Back up now" runs a real backup into moto.
"""

from __future__ import annotations

import boto3
import pytest

from hail_emr_lab import widgets
from hail_emr_lab.config import load_config
from hail_emr_lab.context import HailContext, set_current
from hail_emr_lab.overview.backup import RUNNER

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
