"""The notebook side in a real IPython kernel (nbclient): ``run_magic`` submits an EMR on EKS
job to the moto server, the state table is shown with a display id, and the watcher thread
updates that same output in place when the job is cancelled from the next cell."""

from __future__ import annotations

import boto3
import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::123456789012:role/EMRJobRole"


def test_state_display_updates_in_place(aws_env, tmp_path, monkeypatch):
    session = boto3.session.Session(region_name="us-east-1")
    session.client("s3").create_bucket(Bucket="nb-bucket")
    vc = session.client("emr-containers").create_virtual_cluster(
        name="vc", containerProvider={"type": "EKS", "id": "eks-1", "info": {"eksInfo": {"namespace": "ns"}}}
    )["id"]
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_VIRTUAL_CLUSTER_ID", vc)
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_EXECUTION_ROLE_ARN", ROLE)
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_BUCKET", "nb-bucket")
    cells = [
        "from hail_emr_lab.jobs import notebook\n"
        "from hail_emr_lab.jobs.emr_eks import EmrEksBackend\n"
        "EmrEksBackend.poll_interval = 0.2",
        "view = notebook.run_magic('submit', '--backend emr-eks --name nb-job', 'print(\"hello from EKS\")')\nview",
        "import time\ntime.sleep(1)\ncancelled = notebook.run_magic('jobs', 'cancel nb-job', None)\n"
        "view.thread.join(30)\nprint(view.job.state.value, view.thread.is_alive())",
        "notebook.run_magic('jobs', 'list', None)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    shown = nb.cells[1].outputs
    assert len(shown) == 1 and shown[0]["output_type"] == "display_data"
    html = shown[0]["data"]["text/html"]
    # when shown, the job was RUNNING (moto's EKS jobs run until cancelled); the one output of
    # that cell now says CANCELLED: nbclient applied update_display_data to it by display id
    assert "CANCELLED" in html and "nb-job" in html, html
    assert nb.cells[2].outputs[-1]["text"].strip().endswith("CANCELLED False")
    listing = nb.cells[3].outputs[0]["data"]["text/html"]
    assert "nb-job" in listing and "CANCELLED" in listing
    runs = session.client("emr-containers").list_job_runs(virtualClusterId=vc)["jobRuns"]
    assert [(r["name"], r["state"]) for r in runs] == [("nb-job", "CANCELLED")]
