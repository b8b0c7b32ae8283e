"""Job parameter validation and resolution, the local job store, argument parsing shared by
the CLI and the notebook (no services involved: these are pure functions and files)."""

from __future__ import annotations

import json
import threading

import pytest

from hail_emr_lab.jobs import Job, JobState, manager, notebook, params, store
from hail_emr_lab.jobs.aws_batch import render_command
from hail_emr_lab.jobs.params import JobParamError, Settings
from hail_emr_lab.jobs.spark import submit_parameters


@pytest.mark.parametrize(
    "raw, norm", [("4g", "4g"), ("4G", "4g"), ("512m", "512m"), ("1024MB", "1024m"), (" 2t ", "2t")]
)
def test_memory_strings(raw, norm):
    assert params.parse_memory(raw) == norm


@pytest.mark.parametrize("raw", ["4", "4.5g", "0g", "-1g", "4 gigs", "g", ""])
def test_bad_memory_strings(raw):
    with pytest.raises(JobParamError, match="not a memory size"):
        params.parse_memory(raw)


def test_batch_memory_in_mib():
    assert params.memory_mib("2g") == 2048
    assert params.memory_mib("4096") == 4096
    with pytest.raises(JobParamError):
        params.memory_mib("0")
    with pytest.raises(JobParamError, match="less than 1 MiB"):
        params.memory_mib("10k")


def test_counts_arns_labels_names():
    assert params.positive_int("3") == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(JobParamError):
            params.positive_int(bad)
    assert params.role_arn("arn:aws:iam::123456789012:role/path/Job_Role+1") .endswith("Job_Role+1")
    assert params.role_arn("arn:aws-cn:iam::123456789012:role/x")
    for bad in ("arn:aws:iam::12345678901:role/x", "arn:aws:s3:::bucket", "role/x", "arn:aws:iam::123456789012:user/x"):
        with pytest.raises(JobParamError, match="not an IAM role ARN"):
            params.role_arn(bad)
    for ok in ("emr-6.15.0", "emr-7.1.0", "emr-6.15.0-latest", "emr-6.9.0-20230624"):
        assert params.release_label(ok) == ok
    for bad in ("6.15.0", "emr-7.x", "emr-6.15", "EMR-6.15.0"):
        with pytest.raises(JobParamError, match="release label"):
            params.release_label(bad)
    assert params.job_queue("arn:aws:batch:us-east-1:123456789012:job-queue/genomics")
    assert params.job_definition("nextflow:3") and params.job_definition(
        "arn:aws:batch:eu-west-1:123456789012:job-definition/nf:2"
    )
    with pytest.raises(JobParamError):
        params.job_definition("nf:latest")
    with pytest.raises(JobParamError, match="invalid bucket"):
        params.s3_uri("s3://Bad_Bucket/x")
    assert params.bucket_name("s3://my-bucket/") == "my-bucket"
    with pytest.raises(JobParamError, match="AWS Batch wants"):
        params.job_name("my job", "aws-batch")
    assert params.job_name("a.b/c#1", "emr-eks") == "a.b/c#1"
    assert params.conf_pairs(["a=b", "c=d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(JobParamError, match="KEY=VALUE"):
        params.conf_pairs(["novalue"])


def test_settings_precedence_flag_env_file_general(isolated_config, monkeypatch):
    (isolated_config / "config.json").write_text(
        json.dumps({"bucket": "general-bucket", "jobs": {"driver_memory": "2g", "application_id": "0123456789abcdef"}})
    )
    s = Settings({})
    path = isolated_config / "config.json"
    assert s.get("driver_memory") == "2g" and s.sources["driver_memory"] == f'{path} ("jobs": "driver_memory")'
    assert s.get("bucket") == "general-bucket" and s.sources["bucket"] == f"bucket ({path})"
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_DRIVER_MEMORY", "3G")
    assert Settings({}).get("driver_memory") == "3g"
    assert Settings({"driver_memory": "5g"}).get("driver_memory") == "5g"
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_NUM_EXECUTORS", "zero")
    with pytest.raises(JobParamError, match="HAIL_EMR_LAB_JOBS_NUM_EXECUTORS"):
        Settings({}).get("num_executors")
    with pytest.raises(JobParamError, match="--execution-role-arn, HAIL_EMR_LAB_JOBS_EXECUTION_ROLE_ARN"):
        Settings({}).require("execution_role_arn", "emr-serverless")
    (isolated_config / "config.json").write_text(json.dumps({"jobs": {"drivr_memory": "2g"}}))
    with pytest.raises(JobParamError, match="unknown job setting"):
        Settings({})


def test_flags_for_another_backend_are_rejected():
    with pytest.raises(JobParamError, match="--virtual-cluster-id applies to the emr-eks"):
        manager.check_flags_apply("aws-batch", {"virtual_cluster_id": "x"})
    manager.check_flags_apply("emr-eks", {"virtual_cluster_id": "x", "driver_memory": "1g"})


def test_spark_parameters_and_batch_command():
    text = submit_parameters({"spark.driver.memory": "4g", "spark.x": "a b"}, jars=["s3://b/h.jar"],
                             archives=["s3://b/env.tgz#environment"])  # fmt: skip
    assert text == "--archives s3://b/env.tgz#environment --jars s3://b/h.jar --conf spark.driver.memory=4g --conf 'spark.x=a b'"
    assert render_command("nextflow run {file} {args} -with-report", "s3://b/main.nf", ["-profile", "aws"]) == [
        "nextflow", "run", "s3://b/main.nf", "-profile", "aws", "-with-report",
    ]  # fmt: skip
    assert render_command("sh -c 'aws s3 cp {file} /tmp/x.py && python3 /tmp/x.py'", "s3://b/x.py", []) == [
        "sh", "-c", "aws s3 cp s3://b/x.py /tmp/x.py && python3 /tmp/x.py",
    ]  # fmt: skip
    with pytest.raises(JobParamError, match="quotes"):
        render_command("echo 'unclosed", "s3://b/x", [])


def _job(i: int, backend: str = "emr-serverless", state: JobState = JobState.RUNNING) -> Job:
    return Job(id=f"job{i:04d}abcdef", backend=backend, name=f"n{i}", state=state, submitted=f"2024-01-01T00:{i % 60:02d}:00")


def test_store_updates_find_and_sidebar_list():
    assert store.list_jobs() == []
    store.save(_job(1))
    store.save(_job(2, "emr-eks"))
    store.save(_job(1, state=JobState.SUCCEEDED))
    rows = store.list_jobs()
    assert [(r["id"], r["state"]) for r in rows] == [("job0002abcdef", "RUNNING"), ("job0001abcdef", "SUCCEEDED")]
    assert store.find("job0001").state is JobState.SUCCEEDED  # unique prefix
    assert store.find("n2").backend == "emr-eks"  # by name
    store.save(Job(id="job0001abcdef", backend="aws-batch", name="other"))
    with pytest.raises(store.JobNotFound, match="several backends"):
        store.find("job0001abcdef")
    assert store.find("job0001abcdef", "aws-batch").name == "other"
    with pytest.raises(store.JobNotFound, match="no remembered job"):
        store.find("zzzz")
    store.forget(_job(2, "emr-eks"))
    assert "job0002abcdef" not in [r["id"] for r in store.list_jobs()]
    assert len(store.list_jobs(limit=1)) == 1


def test_store_survives_torn_lines_concurrent_writers_and_compacts(monkeypatch):
    monkeypatch.setattr(store, "COMPACT_BYTES", 150_000)
    path = store.store_path()
    store.save(_job(1))
    with open(path, "a") as fh:
        fh.write('{"id": "broken", "backe')  # a crash mid-write
    threads = [threading.Thread(target=lambda k=k: [store.save(_job(k * 100 + i)) for i in range(60)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.all_jobs()) == 240
    before = store.all_jobs()
    for _ in range(5):  # many updates of the same jobs: the file is compacted, nothing lost
        for job in before:
            store.save(job)
    lines = path.read_text().splitlines()
    assert len(lines) < 4 * 240  # compacted (5 * 240 updates were appended)
    assert "broken" not in path.read_text()
    assert [j.to_dict() for j in store.all_jobs()] == [j.to_dict() for j in before]


def test_notebook_parsing_errors_are_clear_and_do_not_exit():
    with pytest.raises(JobParamError, match="--backend"):
        notebook.run_magic("submit", "x.py", None)
    with pytest.raises(JobParamError, match="quotes"):
        notebook.run_magic("submit", "--backend livy 'x.py", None)
    with pytest.raises(JobParamError, match="cell is empty"):
        notebook.run_magic("submit", "--backend livy --url http://127.0.0.1:1", "  \n")
    assert notebook.run_magic("jobs", "status --help", None) is None
    with pytest.raises(JobParamError, match="not a memory size"):
        notebook.run_magic("submit", "--backend livy --url http://127.0.0.1:1 --driver-memory lots", "print(1)")
    assert repr(notebook.run_magic("jobs", "", None)) == "no jobs"


def test_html_is_escaped():
    job = Job(id="1", backend="livy", name="<img src=x onerror=alert(1)>", message="<script>x</script>")
    html = notebook.render_html([job])
    assert "<img" not in html and "<script>" not in html and "&lt;img" in html
