"""The AWS job backends against the moto server over HTTP: EMR Serverless, EMR on EKS and
AWS Batch -- submit (with S3 staging), status, list, logs (gzip objects on S3, CloudWatch
streams that the test puts in place), cancel; and bad inputs rejected before anything is
created."""

from __future__ import annotations

import gzip
import io
import json
import threading
import time

import boto3
import pytest
import requests

from hail_emr_lab.cli import main
from hail_emr_lab.jobs import JobState, manager, store

ROLE = "arn:aws:iam::123456789012:role/EMRJobRole"
BUCKET = "lab-bucket"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["jobs", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def put_gzip(s3, bucket: str, key: str, lines: list[str]) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


@pytest.fixture
def aws(aws_env):
    session = boto3.session.Session(region_name="us-east-1")
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return session


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "pipeline.py"
    path.write_text("import hail as hl\nhl.init()\nprint(hl.balding_nichols_model(3, 10, 10).count())\n")
    return path


def aws_env_url(session) -> str:
    import os

    return os.environ["AWS_ENDPOINT_URL"]


def s3_text(session, uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


# ----------------------------------------------------------------------------- EMR Serverless


def test_emr_serverless_submit_status_list_logs_cancel(aws, script, capsys):
    es = aws.client("emr-serverless")
    app = es.create_application(name="hail", releaseLabel="emr-6.15.0", type="SPARK")["applicationId"]
    code, out, err = run_cli(
        capsys,
        "submit", "--backend", "emr-serverless", "--application-id", app, "--execution-role-arn", ROLE,
        "--bucket", BUCKET, "--prefix", "alice", "--driver-memory", "4G", "--executor-memory", "8g",
        "--num-executors", "3", "--hail-jar", f"s3://{BUCKET}/hail/hail-all-spark.jar",
        "--hail-archive", f"s3://{BUCKET}/hail/pyspark_hail.tar.gz", "--conf", "spark.sql.shuffle.partitions=64",
        "--name", "gwas-1", "--json", str(script), "--chrom", "22",
    )  # fmt: skip
    assert code == 0, err
    job = json.loads(out)
    assert job["backend"] == "emr-serverless" and job["name"] == "gwas-1"

    run = es.get_job_run(applicationId=app, jobRunId=job["id"])["jobRun"]
    driver = run["jobDriver"]["sparkSubmit"]
    # the entry point was uploaded under the user's prefix, byte for byte
    assert driver["entryPoint"].startswith(f"s3://{BUCKET}/alice/jobs/gwas-1/")
    assert driver["entryPoint"].endswith("/pipeline.py")
    assert s3_text(aws, driver["entryPoint"]) == script.read_text()
    assert driver["entryPointArguments"] == ["--chrom", "22"]
    params = driver["sparkSubmitParameters"]
    assert f"--archives s3://{BUCKET}/hail/pyspark_hail.tar.gz#environment" in params
    assert f"--jars s3://{BUCKET}/hail/hail-all-spark.jar" in params
    for conf in (
        "spark.driver.memory=4g",
        "spark.executor.memory=8g",
        "spark.executor.instances=3",
        "spark.kryo.registrator=is.hail.kryo.HailKryoRegistrator",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
        "spark.sql.shuffle.partitions=64",
    ):
        assert f"--conf {conf}" in params
    log_uri = run["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"]
    assert log_uri == f"s3://{BUCKET}/alice/jobs/logs/"

    # status and the local list (what the sidebar shows)
    code, out, _ = run_cli(capsys, "status", job["id"], "--json")
    status = json.loads(out)
    assert status["native_state"] == run["state"]
    assert status["state"] == {"SUCCESS": "SUCCEEDED", "RUNNING": "RUNNING"}.get(run["state"], status["state"])
    listed = store.list_jobs()
    assert [(j["id"], j["backend"], j["name"]) for j in listed] == [(job["id"], "emr-serverless", "gwas-1")]
    assert set(listed[0]) == {"id", "backend", "name", "submitted", "state", "updated"}
    code, out, _ = run_cli(capsys, "list")
    assert job["id"] in out and "gwas-1" in out
    # the service's own list
    code, out, _ = run_cli(capsys, "list", "--backend", "emr-serverless", "--application-id", app, "--json")
    assert job["id"] in [j["id"] for j in json.loads(out)]

    # logs: driver stdout.gz where EMR Serverless puts it, read as a stream (many lines)
    lines = [f"line {i}" for i in range(20000)] + ["count: (10, 3)"]
    put_gzip(aws.client("s3"), BUCKET, f"alice/jobs/logs/applications/{app}/jobs/{job['id']}/SPARK_DRIVER/stdout.gz", lines)
    put_gzip(aws.client("s3"), BUCKET, f"alice/jobs/logs/applications/{app}/jobs/{job['id']}/SPARK_DRIVER/stderr.gz", ["WARN x"])
    code, out, _ = run_cli(capsys, "logs", job["id"])
    assert out.splitlines() == lines
    code, out, _ = run_cli(capsys, "logs", job["id"], "--stderr")
    assert out.splitlines() == ["WARN x"]

    code, out, _ = run_cli(capsys, "cancel", job["id"], "--json")
    assert json.loads(out)["state"] == "CANCELLED"
    assert es.get_job_run(applicationId=app, jobRunId=job["id"])["jobRun"]["state"] == "CANCELLED"
    assert store.find(job["id"]).state is JobState.CANCELLED


def test_emr_serverless_job_submitted_elsewhere(aws, capsys):
    """status/logs of a job not in the local store: --backend and the service ids."""
    es = aws.client("emr-serverless")
    app = es.create_application(name="hail", releaseLabel="emr-7.1.0", type="SPARK")["applicationId"]
    run = es.start_job_run(
        applicationId=app, executionRoleArn=ROLE, name="other",
        jobDriver={"sparkSubmit": {"entryPoint": f"s3://{BUCKET}/x.py"}},
    )  # fmt: skip
    code, out, err = run_cli(capsys, "status", run["jobRunId"])
    assert code != 0 and "no remembered job" in err and "--backend" in err
    code, out, err = run_cli(capsys, "status", run["jobRunId"], "--backend", "emr-serverless", "--application-id", app)
    assert code == 0, err
    assert "name:      other" in out
    code, out, err = run_cli(capsys, "logs", run["jobRunId"], "-b", "emr-serverless", "--application-id", app)
    assert code == 1 and "without S3 logging" in err


# ----------------------------------------------------------------------------- EMR on EKS


def test_emr_eks_submit_logs_follow_cancel(aws, script, tmp_path, monkeypatch):
    ec = aws.client("emr-containers")
    vc = ec.create_virtual_cluster(
        name="hail-vc", containerProvider={"type": "EKS", "id": "eks-1", "info": {"eksInfo": {"namespace": "hail"}}}
    )["id"]
    template = tmp_path / "driver.yaml"
    template.write_text("apiVersion: v1\nkind: Pod\nspec:\n  nodeSelector:\n    role: driver\n")
    job = manager.submit(
        "emr-eks",
        str(script),
        ["1", "2"],
        flags={
            "virtual_cluster_id": vc,
            "execution_role_arn": ROLE,
            "release_label": "emr-6.15.0-latest",
            "bucket": BUCKET,
            "prefix": "bob",
            "driver_cores": "2",
            "executor_cores": 4,
            "driver_memory": "2g",
            "driver_pod_template": str(template),
        },
        name="eks-job",
    )
    assert job.state is JobState.RUNNING and job.details["virtual_cluster_id"] == vc
    run = ec.describe_job_run(id=job.id, virtualClusterId=vc)["jobRun"]
    driver = run["jobDriver"]["sparkSubmitJobDriver"]
    assert run["releaseLabel"] == "emr-6.15.0-latest" and run["executionRoleArn"] == ROLE
    assert s3_text(aws, driver["entryPoint"]) == script.read_text()
    assert driver["entryPointArguments"] == ["1", "2"]
    params = driver["sparkSubmitParameters"]
    assert "--conf spark.driver.cores=2" in params and "--conf spark.executor.cores=4" in params
    pod_conf = [p for p in params.split() if p.startswith("spark.kubernetes.driver.podTemplateFile=")]
    assert len(pod_conf) == 1
    assert s3_text(aws, pod_conf[0].split("=", 1)[1]) == template.read_text()

    assert [j.id for j in manager.list_jobs("emr-eks", {"virtual_cluster_id": vc})] == [job.id]

    s3 = aws.client("s3")
    key = f"bob/jobs/logs/{vc}/jobs/{job.id}/containers/spark-{job.id}/spark-{job.id}-driver/stdout.gz"
    put_gzip(s3, BUCKET, key, ["starting", "step 1"])
    assert list(manager.logs(job.id)) == ["starting", "step 1"]

    # follow: sees lines added while the job runs, and stops once it is cancelled
    from hail_emr_lab.jobs.emr_eks import EmrEksBackend

    monkeypatch.setattr(EmrEksBackend, "poll_interval", 0.1)
    seen: list[str] = []
    follower = threading.Thread(target=lambda: seen.extend(manager.logs(job.id, follow=True)), daemon=True)
    follower.start()
    time.sleep(0.5)
    put_gzip(s3, BUCKET, key, ["starting", "step 1", "step 2", "done"])
    time.sleep(0.5)
    cancelled = manager.cancel(job.id)
    follower.join(20)
    assert not follower.is_alive()
    assert seen == ["starting", "step 1", "step 2", "done"]
    assert cancelled.state is JobState.CANCELLED
    assert ec.describe_job_run(id=job.id, virtualClusterId=vc)["jobRun"]["state"] == "CANCELLED"


# ----------------------------------------------------------------------------- AWS Batch


@pytest.fixture
def batch_queue(aws):
    role = aws.client("iam").create_role(RoleName="batch-svc", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = aws.client("batch")
    ce = batch.create_compute_environment(
        computeEnvironmentName="genomics-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName="genomics",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName="nextflow",
        type="container",
        containerProperties={"image": "nextflow/nextflow:23.10.0", "vcpus": 1, "memory": 1024, "command": ["true"]},
    )
    return batch


@pytest.fixture
def hold_batch_jobs(aws_env):
    """Keep Batch jobs SUBMITTED (moto runs containers with docker, which is absent here)."""
    url = aws_env + "/moto-api/state-manager"
    requests.post(
        url + "/set-transition",
        json={"model_name": "batch::job", "transition": {"progression": "time", "seconds": 600}},
        timeout=10,
    ).raise_for_status()
    yield
    requests.post(url + "/unset-transition", json={"model_name": "batch::job"}, timeout=10)


def test_aws_batch_nextflow_head_job(aws, batch_queue, hold_batch_jobs, tmp_path, capsys):
    main_nf = tmp_path / "main.nf"
    main_nf.write_text("workflow { println 'hello' }\n")
    code, out, err = run_cli(
        capsys, "submit", "-b", "aws-batch", "--job-queue", "genomics", "--job-definition", "nextflow",
        "--bucket", BUCKET, "--prefix", "carol", "--vcpus", "2", "--memory", "2g", "--name", "nf-head",
        "--json", str(main_nf), "-profile", "awsbatch",
    )  # fmt: skip
    assert code == 0, err
    job = json.loads(out)
    assert job["state"] == "PENDING" and job["native_state"] == "SUBMITTED"
    desc = batch_queue.describe_jobs(jobs=[job["id"]])["jobs"][0]
    uploaded = job["details"]["file"]
    assert uploaded.startswith(f"s3://{BUCKET}/carol/jobs/nf-head/") and uploaded.endswith("/main.nf")
    assert s3_text(aws, uploaded) == main_nf.read_text()
    assert desc["container"]["command"] == ["nextflow", "run", uploaded, "-profile", "awsbatch"]
    env = {e["name"]: e["value"] for e in desc["container"]["environment"]}
    assert env["HAIL_EMR_LAB_JOB_FILE"] == uploaded

    code, out, _ = run_cli(capsys, "list", "--backend", "aws-batch", "--job-queue", "genomics")
    assert job["id"] in out and "nf-head" in out

    # CloudWatch: the stream Batch would create for this job (<definition>/default/<id>)
    logs = aws.client("logs")
    logs.create_log_group(logGroupName="/aws/batch/job")
    stream = f"nextflow/default/{job['id']}"
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": f"N E X T F L O W {i}"} for i in range(3)]
    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=events)
    code, out, err = run_cli(capsys, "logs", job["id"])
    assert code == 0, err
    assert out.splitlines() == [e["message"] for e in events]

    code, out, _ = run_cli(capsys, "cancel", job["id"], "--json")
    cancelling = json.loads(out)  # Batch acts on a cancel asynchronously
    assert cancelling["state"] == "CANCELLING" and cancelling["native_state"] == "SUBMITTED"
    # let moto's job thread move on: it sees the cancel and stops the job
    requests.post(aws_env_url(aws) + "/moto-api/state-manager/unset-transition",
                  json={"model_name": "batch::job"}, timeout=10)  # fmt: skip
    deadline = time.monotonic() + 30
    while (final := manager.status(job["id"])).state is JobState.CANCELLING and time.monotonic() < deadline:
        time.sleep(0.2)
    assert final.state is JobState.CANCELLED and final.native_state == "FAILED"
    desc = batch_queue.describe_jobs(jobs=[job["id"]])["jobs"][0]
    assert desc["status"] == "FAILED" and "cancelled from hail-emr-lab" in desc["statusReason"]


# ----------------------------------------------------------------------------- bad inputs


def _no_job_runs(aws, app=None, vc=None) -> bool:
    if app:
        es = aws.client("emr-serverless")
        assert es.get_application(applicationId=app)["application"]["applicationId"] == app
        try:
            return es.list_job_runs(applicationId=app)["jobRuns"] == []
        except es.exceptions.ResourceNotFoundException:
            return True  # moto 5.2.5 answers so for an application without any job run
    return aws.client("emr-containers").list_job_runs(virtualClusterId=vc)["jobRuns"] == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--execution-role-arn", "arn:aws:iam::12345:role/x"], "is not an IAM role ARN"),
        ([], "needs IAM role the job runs as"),
        (["--execution-role-arn", ROLE, "--driver-memory", "4 gigs"], "is not a memory size"),
        (["--execution-role-arn", ROLE, "--num-executors", "0"], "must be a positive count"),
        (["--execution-role-arn", ROLE, "--bucket", "no-such-bucket"], "does not exist"),
        (["--execution-role-arn", ROLE, "--hail-jar", "/opt/hail/hail-all-spark.jar"], "is not an S3 URI"),
        (["--execution-role-arn", ROLE, "--job-queue", "q"], "applies to the aws-batch backend"),
    ],
)
def test_emr_serverless_bad_inputs_submit_nothing(aws, script, capsys, extra, message):
    app = aws.client("emr-serverless").create_application(name="a", releaseLabel="emr-6.15.0", type="SPARK")[
        "applicationId"
    ]
    code, out, err = run_cli(capsys, "submit", "-b", "emr-serverless", "--application-id", app, *extra, str(script))
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err
    assert _no_job_runs(aws, app=app)
    assert store.list_jobs() == []


def test_missing_bucket_for_local_file(aws, script, capsys):
    app = aws.client("emr-serverless").create_application(name="a", releaseLabel="emr-6.15.0", type="SPARK")[
        "applicationId"
    ]
    code, _, err = run_cli(capsys, "submit", "-b", "emr-serverless", "--application-id", app,
                           "--execution-role-arn", ROLE, str(script))  # fmt: skip
    assert code == 2 and "no bucket is set" in err
    assert _no_job_runs(aws, app=app)
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_unknown_application_and_malformed_id(aws, script, capsys):
    code, _, err = run_cli(capsys, "submit", "-b", "emr-serverless", "--application-id", "00fakeapp0000000",
                           "--execution-role-arn", ROLE, "--bucket", BUCKET, str(script))  # fmt: skip
    assert code == 1 and "does not exist" in err
    code, _, err = run_cli(capsys, "submit", "-b", "emr-serverless", "--application-id", "My-App",
                           "--execution-role-arn", ROLE, str(script))  # fmt: skip
    assert code == 2 and "not an EMR Serverless application id" in err
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_emr_eks_bad_release_label_and_role(aws, script, capsys):
    vc = aws.client("emr-containers").create_virtual_cluster(
        name="vc", containerProvider={"type": "EKS", "id": "eks-1", "info": {"eksInfo": {"namespace": "ns"}}}
    )["id"]
    base = ["submit", "-b", "emr-eks", "--virtual-cluster-id", vc, "--bucket", BUCKET]
    code, _, err = run_cli(capsys, *base, "--execution-role-arn", ROLE, "--release-label", "6.15", str(script))
    assert code == 2 and "not an EMR release label" in err
    code, _, err = run_cli(capsys, *base, "--execution-role-arn", "role/x", str(script))
    assert code == 2 and "not an IAM role ARN" in err
    code, _, err = run_cli(capsys, *base, str(script))
    assert code == 2 and "HAIL_EMR_LAB_JOBS_EXECUTION_ROLE_ARN" in err
    assert _no_job_runs(aws, vc=vc)


def test_aws_batch_unknown_queue_and_definition(aws, batch_queue, tmp_path, capsys):
    main_nf = tmp_path / "main.nf"
    main_nf.write_text("workflow {}\n")
    base = ["submit", "-b", "aws-batch", "--bucket", BUCKET]
    code, _, err = run_cli(capsys, *base, "--job-queue", "nope", "--job-definition", "nextflow", str(main_nf))
    assert code == 2 and "job queue 'nope' does not exist" in err
    code, _, err = run_cli(capsys, *base, "--job-queue", "genomics", "--job-definition", "nextflow:7", str(main_nf))
    assert code == 2 and "job definition 'nextflow:7' does not exist" in err
    code, _, err = run_cli(capsys, *base, "--job-queue", "bad queue!", "--job-definition", "nextflow", str(main_nf))
    assert code == 2 and "neither a Batch job queue name" in err
    code, _, err = run_cli(capsys, *base, "--job-queue", "genomics", "--job-definition", "nextflow",
                           "--memory", "lots", str(main_nf))  # fmt: skip
    assert code == 2 and "not a memory size" in err
    script = tmp_path / "x.py"
    script.write_text("print(1)\n")
    code, _, err = run_cli(capsys, *base, "--job-queue", "genomics", "--job-definition", "nextflow", str(script))
    assert code == 2 and "--command" in err
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
        assert batch_queue.list_jobs(jobQueue="genomics", jobStatus=status)["jobSummaryList"] == []
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
