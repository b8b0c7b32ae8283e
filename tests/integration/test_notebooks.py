"""The tutorials in common-notebooks/ run end to end, unchanged, through a real kernel.

Each notebook is executed by nbclient against the embedded Livy server (real PySpark +
Hail) with only the connection configuration set (``HAIL_EMR_LAB_LIVY_URL``), exactly as a
user's configuration would; the backup notebook talks to S3 on the moto server. We check
that no cell errored, that the expected plots were pulled next to the notebook, and key
numbers.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import boto3
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "common-notebooks"

pytestmark = pytest.mark.slow


def execute(name: str, workdir: Path, env: dict[str, str], monkeypatch, timeout: int = 900,
            source: Path = NOTEBOOKS) -> nbformat.NotebookNode:
    """Run ``<source>/<name>`` in ``workdir`` with ``env``; returns the executed notebook."""
    shutil.copy(source / name, workdir / name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(workdir / name, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()
    nbformat.write(nb, workdir / name)  # kept in tmp for post-mortems
    return nb


def text_of(nb: nbformat.NotebookNode) -> str:
    """Every stream and text/plain or text/html output, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(str(out["data"].get("text/plain", "")))
                parts.append(str(out["data"].get("text/html", "")))
    return "\n".join(parts)


def assert_no_errors(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"cell failed: {cell.source[:80]!r}: {out.get('evalue')}"


def with_parameters(name: str, folder: Path, **values: object) -> Path:
    """A copy of ``common-notebooks/<name>`` in ``folder`` whose parameters cell sets ``values`` (as
    papermill would set them); returns ``folder``, the ``source`` to execute it from."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for key, value in values.items():
        params.source, found = re.subn(rf"^{key} = .*$", f"{key} = {value!r}", params.source, flags=re.M)
        assert found == 1, f"{name} has no parameter {key}"
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder


def test_all_notebooks_are_stripped_and_listed_in_readme():
    readme = (ROOT / "README.md").read_text()
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names, "no notebooks"
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not stripped"
        assert f"common-notebooks/{name}" in readme, f"README does not link {name}"
        # Only the connect configuration may differ between local and EMR: no addresses in cells.
        source = "\n".join(c.source for c in nb.cells)
        assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", source), f"{name} has an IP address"


def test_getting_started(livy_server, tmp_path, monkeypatch):
    nb = execute("getting-started.ipynb", tmp_path, {"HAIL_EMR_LAB_LIVY_URL": livy_server.url}, monkeypatch)
    assert_no_errors(nb)
    out = text_of(nb)
    assert "samples, variants: 100 500" in out
    assert "pulled 100 samples" in out
    assert "rows on the cluster: 100" in out


def test_plotting_tutorial(livy_server, tmp_path, monkeypatch):
    nb = execute("plotting-tutorial.ipynb", tmp_path, {"HAIL_EMR_LAB_LIVY_URL": livy_server.url}, monkeypatch)
    assert_no_errors(nb)
    assert "samples: 200 variants: 2000" in text_of(nb)
    pulled = {p.name for p in (tmp_path / "plots").iterdir()}
    for name in (
        "af-histogram.html",
        "af-cumulative-histogram.html",
        "height-weight-histogram2d.html",
        "het-homvar-scatter.html",
        "height-qq.html",
        "height-manhattan.html",
        "pca-scatter.html",
    ):
        assert name in pulled, f"{name} was not pulled; have {sorted(pulled)}"
        assert (tmp_path / "plots" / name).stat().st_size > 1000


def test_gwas_tutorial(livy_server, tmp_path, monkeypatch):
    nb = execute("gwas-tutorial.ipynb", tmp_path, {"HAIL_EMR_LAB_LIVY_URL": livy_server.url}, monkeypatch)
    assert_no_errors(nb)
    out = text_of(nb)
    assert "before QC: samples 200 variants 2000" in out
    assert "samples after QC: 190" in out, "the 10 samples with many missing calls should be removed"
    kept = int(re.search(r"variants after QC: (\d+)", out).group(1))
    assert 1000 < kept <= 2000
    assert f"tests: {kept}" in out
    for name in ("gwas-manhattan.html", "gwas-qq.html", "gwas-pca.html"):
        assert (tmp_path / "plots" / name).is_file(), name


def test_vep_tutorial_without_vep(livy_server, tmp_path, monkeypatch):
    """On the embedded default (no VEP) every other cell runs, and the VEP cells say what is missing."""
    nb = execute("vep-tutorial.ipynb", tmp_path, {"HAIL_EMR_LAB_LIVY_URL": livy_server.url}, monkeypatch)
    assert_no_errors(nb)
    out = text_of(nb)
    assert "samples, variants: 100 1000" in out
    assert re.search(r"common variants \(AF > 5%\): \d+", out) and "pulled 10 common variants locally" in out
    assert "VEP is not installed on this cluster (no VEP configuration was given" in out
    assert out.count("Skipped: VEP is not installed on this cluster") == 3, "each VEP cell says so"
    assert "VEP AMI" in out and "set VEP_CONFIG" in out, "and how to get it"
    assert "Traceback" not in out


# A stand-in for the vep program, speaking hl.vep's protocol (VCF lines on stdin, one JSON object
# per variant on stdout, "input" echoing the VCF line). Real VEP's cache, plugins and consequence
# calls are not covered: only that the tutorial's VEP cells run hl.vep and use its output.
STAND_IN_VEP = """#!{python}
import json, sys
for line in sys.stdin:
    if line.startswith("#") or not line.strip():
        continue
    chrom, pos = line.split("\\t")[:2]
    worst = "stop_gained" if int(pos) % 5 == 0 else "missense_variant"
    print(json.dumps({{"input": line.rstrip("\\n"), "most_severe_consequence": worst,
                       "seq_region_name": chrom, "start": int(pos)}}), flush=True)
"""


def test_vep_tutorial_with_vep(livy_server, tmp_path, monkeypatch):
    """With VEP_CONFIG set (the only change, as papermill would make it), the VEP cells run hl.vep."""
    import sys

    vep = tmp_path / "vep"
    vep.write_text(STAND_IN_VEP.format(python=sys.executable))
    vep.chmod(0o755)
    config = tmp_path / "vep-configuration.json"
    config.write_text(json.dumps({
        "command": [str(vep), "__OUTPUT_FORMAT_FLAG__"],
        "env": {},
        "vep_json_schema": "Struct{input:String,most_severe_consequence:String,seq_region_name:String,start:Int32}",
    }))
    name = "vep-tutorial.ipynb"
    source = with_parameters(name, tmp_path / "src", VEP_CONFIG=str(config))
    nb = execute(name, tmp_path, {"HAIL_EMR_LAB_LIVY_URL": livy_server.url}, monkeypatch, source=source)
    assert_no_errors(nb)
    out = text_of(nb)
    assert f"VEP found: {vep}" in out and "Skipped" not in out
    assert "annotated variants: 1000" in out
    types = int(re.search(r"consequence types: (\d+)", out).group(1))
    assert types == 2
    lof = int(re.search(r"loss-of-function candidates: (\d+)", out).group(1))
    assert 0 < lof < 1000


def test_backup_and_restore(aws_env, tmp_path, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="nb-bucket")
    env = {"HAIL_EMR_LAB_BUCKET": "nb-bucket", "HAIL_EMR_LAB_PREFIX": "alice", "HAIL_EMR_LAB_HOME": str(tmp_path)}
    nb = execute("backup-and-restore.ipynb", tmp_path, env, monkeypatch, timeout=300)
    assert_no_errors(nb)
    out = text_of(nb)
    assert "bucket: nb-bucket prefix: alice" in out
    assert "files waiting after the backup: 0" in out
    assert "results I do not want to lose" in out
    body = boto3.client("s3").get_object(Bucket="nb-bucket", Key="alice/backup-demo.txt")["Body"].read()
    assert body == b"results I do not want to lose\n"
    assert json.loads((tmp_path / "backup-and-restore.ipynb").read_text())["cells"]


def test_serverless_tutorial(livy_server, aws_env, tmp_path, monkeypatch):
    """The application is moto's EMR Serverless (stopped: the tutorial starts it), its Livy endpoint a
    SigV4-verifying gateway in front of the embedded Livy that knows the kernel's AWS credentials; the
    parameters are set as papermill would set them. Not covered: AWS's IAM decisions, EMR Serverless's
    own Livy (its start-up time, its Spark UI links: moto lacks GetDashboardForJobRun)."""
    from support.sigv4_gateway import SigV4Gateway

    client = boto3.client("emr-serverless")
    app = client.create_application(name="hail-tutorial", releaseLabel="emr-7.2.0", type="SPARK",
                                    interactiveConfiguration={"livyEndpointEnabled": True})["applicationId"]
    client.stop_application(applicationId=app)
    role = "arn:aws:iam::123456789012:role/HailTutorial"
    name = "serverless-tutorial.ipynb"
    gateway = SigV4Gateway(livy_server.url, {"testing": ("testing", None)}, region="us-east-1").start()
    try:
        source = with_parameters(name, tmp_path / "src", SERVERLESS_APP=app, EXECUTION_ROLE=role,
                                 ENDPOINT_URL=gateway.url)
        nb = execute(name, tmp_path, {}, monkeypatch, source=source)
    finally:
        gateway.stop()
    assert_no_errors(nb)
    out = text_of(nb)
    assert f"[EMR Serverless application {app} (hail-tutorial)]" in out
    assert client.get_application(applicationId=app)["application"]["state"] == "STARTED", "connect started it"
    assert "samples, variants: 60 300" in out
    assert re.search(r"pulled 300 allele frequencies; mean 0\.\d+", out)
    # The embedded Livy's appId is no job run id: its own Spark UI link stays, and where the driver log is.
    assert "driver log: the Spark UI's Executors tab" in out
    assert "Deleted session" in out
    assert gateway.created and gateway.created[-1]["conf"]["emr-serverless.session.executionRoleArn"] == role
    assert gateway.log and all(verdict == "ok" for *_, verdict in gateway.log), "every request was signed"


def test_batch_jobs(livy_server, tmp_path, monkeypatch):
    env = {
        "HAIL_EMR_LAB_LIVY_URL": livy_server.url,
        "HAIL_EMR_LAB_JOBS_STORE": str(tmp_path / "jobs.jsonl"),
    }
    nb = execute("batch-jobs.ipynb", tmp_path, env, monkeypatch)
    assert_no_errors(nb)
    out = text_of(nb)
    assert "qc-job" in out
    assert "JOB-RESULT samples: 50 mean call rate: 1.0" in out, "the job's own output should be in its log"
