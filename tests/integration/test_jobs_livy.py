"""Livy batches end to end on the embedded server: a real spark-submit of a small Hail
script (success, with its output in the log), a failing script (dead), through the CLI and
through the notebook entry point (``%%hail submit``). Batches are few: each is a JVM."""

from __future__ import annotations

import json

import pytest

from hail_emr_lab.cli import main
from hail_emr_lab.jobs import JobState, manager, notebook, store

pytestmark = pytest.mark.slow

HAIL_SCRIPT = """\
import sys
import hail as hl
hl.init(quiet=True)
mt = hl.balding_nichols_model(3, 10, 10)
print("ROWS-COLS", mt.count(), "ARGS", sys.argv[1:])
"""


def test_hail_batch_succeeds_with_output_in_log(livy_server, tmp_path, capsys):
    script = tmp_path / "bn.py"
    script.write_text(HAIL_SCRIPT)
    code = main(["jobs", "submit", "--backend", "livy", "--url", livy_server.url, "--driver-memory", "1g",
                 "--name", "bn-model", "--wait", "--json", str(script), "alpha", "beta"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    job = json.loads(out[out.index("{") :])
    assert job["state"] == "SUCCEEDED" and job["native_state"] == "success" and job["name"] == "bn-model"
    assert job["details"]["url"] == livy_server.url

    # the log has the script's output; the store remembers the final state
    code = main(["jobs", "logs", job["id"]])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "ROWS-COLS (10, 10) ARGS ['alpha', 'beta']" in out
    assert store.find(job["id"], "livy").state is JobState.SUCCEEDED
    # the service's list has it too
    listed = manager.list_jobs("livy", {"url": livy_server.url})
    assert job["id"] in [j.id for j in listed]


def test_failing_cell_job_ends_dead_and_follow_shows_the_error(livy_server, tmp_path):
    cell = "print('before the failure')\nraise SystemExit('boom: bad input file')\n"
    view = notebook.run_magic("submit", f"--backend livy --url {livy_server.url} --name failing-cell --follow", cell)
    # --follow printed the log while it ran and waited for the end
    assert view.job.state is JobState.FAILED and view.job.native_state == "dead"
    text = "\n".join(manager.logs(view.job.id, "livy"))
    assert "before the failure" in text and "boom: bad input file" in text
    # the cell became a kept script file
    assert store.find(view.job.id).name == "failing-cell"
    table = notebook.run_magic("jobs", "list", None)
    assert view.job.id in [j.id for j in table.jobs]
    assert "FAILED" in table._repr_html_()


def test_cancel_a_running_batch(livy_server, tmp_path):
    script = tmp_path / "sleepy.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    job = manager.submit("livy", str(script), flags={"url": livy_server.url})
    assert job.state in (JobState.PENDING, JobState.RUNNING)
    view = notebook.run_magic("jobs", f"cancel {job.id}", None)
    assert view.job.state is JobState.CANCELLED
    assert store.find(job.id, "livy").state is JobState.CANCELLED
    # cancelled is final: status keeps saying so even after Livy forgot the batch
    assert manager.status(job.id).state is JobState.CANCELLED


def test_livy_jobs_authenticate_as_configured(tmp_path, monkeypatch, capsys):
    """``jobs --backend livy`` builds its client like %hail connect does: basic auth with the
    password from ``password_file`` (here a Livy that requires a token as the basic password)."""
    from hail_emr_lab.embedded.server import EmbeddedLivy

    token = "t0ken-" + "x" * 37
    server = EmbeddedLivy(host="127.0.0.1", port=0, token=token, max_sessions=1)
    server.start()
    try:
        secret = tmp_path / "livy-password"
        secret.write_text(token + "\n")
        secret.chmod(0o600)
        monkeypatch.setenv("HAIL_EMR_LAB_AUTH", "basic")
        monkeypatch.setenv("HAIL_EMR_LAB_USERNAME", "me")
        monkeypatch.setenv("HAIL_EMR_LAB_PASSWORD_FILE", str(secret))
        code = main(["jobs", "list", "--backend", "livy", "--url", server.url])
        out, err = capsys.readouterr()
        assert code == 0, (out, err)
        assert out.strip() == "no jobs" and token not in out + err
    finally:
        server.stop()


def test_notebook_jobs_use_the_client_they_are_given(livy_server):
    """The magic passes the kernel's client in: with no endpoint configured, ``--backend livy``
    uses it; without one, the error says how to name an endpoint."""
    from hail_emr_lab.jobs.base import JobError
    from hail_emr_lab.livy import LivyClient

    with LivyClient(livy_server.url) as client:
        table = notebook.run_magic("jobs", "list --backend livy", None, livy_client=client)
        assert table.jobs == [] or all(j.details["url"] == livy_server.url for j in table.jobs)
    with pytest.raises(JobError, match="needs a Livy endpoint: pass --url"):
        notebook.run_magic("jobs", "list --backend livy", None)
