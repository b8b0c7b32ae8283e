"""EMR Serverless backend: ``start-job-run`` on an existing Spark application.

Parameters: ``application_id`` and ``execution_role_arn`` (required); ``hail_archive`` (a
packed ``pyspark_hail.tar.gz``, passed as ``--archives ...#environment``) and ``hail_jar``
(``--jars``); Spark sizing; ``log_uri`` (default ``s3://BUCKET/PREFIX/jobs/logs/``) where the
driver logs land as ``applications/<app>/jobs/<job>/SPARK_DRIVER/stdout.gz``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator, Optional

from . import spark
from .aws import AwsJobBackend, call
from .base import Job, JobError, JobNotFound, JobSpec, JobState, map_state, now_iso
from .params import application_id
from .s3logs import follow_object
from .upload import stage

STATES = {
    "SUBMITTED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "SCHEDULED": JobState.PENDING,
    "QUEUED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCESS": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELLING": JobState.CANCELLING,
    "CANCELLED": JobState.CANCELLED,
}


def default_log_uri(bucket: Optional[str], prefix: Optional[str]) -> Optional[str]:
    """``s3://BUCKET/PREFIX/jobs/logs/`` (None without a bucket)."""
    if not bucket:
        return None
    parts = [p for p in ((prefix or "").strip("/"), "jobs", "logs") if p]
    return f"s3://{bucket}/" + "/".join(parts) + "/"


def _iso(value: Any) -> Optional[str]:
    return value.replace(microsecond=0).isoformat() if isinstance(value, datetime) else None


def job_from_emr_run(
    backend: str,
    run: dict[str, Any],
    old: Optional[Job],
    states: dict[str, JobState],
    container: tuple[str, str],
    message: Optional[str],
) -> Job:
    """A :class:`Job` from an EMR Serverless or EMR on EKS job run (same shape in both APIs).

    ``container`` is ``(detail key, run field)`` of what holds the run: the application or
    the virtual cluster; the log URI of the run's S3 monitoring configuration is kept too.
    """
    native = run.get("state")
    details = dict(old.details if old else {})
    key, run_field = container
    details[key] = run.get(run_field) or details.get(key)
    log_uri = (
        ((run.get("configurationOverrides") or {}).get("monitoringConfiguration") or {})
        .get("s3MonitoringConfiguration", {})
        .get("logUri")
    )
    if log_uri:
        details["log_uri"] = log_uri
    run_id = run.get("jobRunId") or run["id"]  # get-job-run vs list-job-runs summaries
    return Job(
        id=run_id,
        backend=backend,
        name=run.get("name") or (old.name if old else run_id),
        state=map_state(native, states),
        native_state=native,
        submitted=old.submitted if old else (_iso(run.get("createdAt")) or now_iso()),
        updated=now_iso(),
        details=details,
        message=message or None,
    )


class EmrServerlessBackend(AwsJobBackend):
    """Jobs on an EMR Serverless application."""

    name = "emr-serverless"
    service = "emr-serverless"

    # -------------------------------------------------------------- submit

    def submit(self, spec: JobSpec) -> Job:
        s = self.settings
        app = s.require("application_id", self.name)
        role = s.require("execution_role_arn", self.name)
        jar, archive = s.get("hail_jar"), s.get("hail_archive")
        bucket, prefix = s.get("bucket"), s.get("prefix")
        log_uri = s.get("log_uri") or default_log_uri(bucket, prefix)
        info = call(
            f"looking up EMR Serverless application {app}", self.client.get_application, applicationId=app
        )["application"]
        if info.get("state") in ("TERMINATED",):
            raise JobError(f"EMR Serverless application {app} is TERMINATED: create a new one or pick another")
        if info.get("type", "SPARK").upper() != "SPARK":
            raise JobError(f"EMR Serverless application {app} is of type {info.get('type')}, not SPARK")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        files = stage(self.s3, bucket, prefix, spec.name or "job", stamp, [spec.file, *spec.py_files])
        conf = {**spark.hail_conf(jar, archive, "spark.emr-serverless.driverEnv"), **spark.sizing_conf(spec)}
        conf.update(spec.conf)
        params = spark.submit_parameters(
            conf,
            jars=[jar] if jar else [],
            archives=[f"{archive}#environment"] if archive else [],
            py_files=[files[p] for p in spec.py_files],
        )
        driver: dict[str, Any] = {"entryPoint": files[spec.file], "entryPointArguments": list(spec.args)}
        if params:
            driver["sparkSubmitParameters"] = params
        request: dict[str, Any] = {
            "applicationId": app,
            "executionRoleArn": role,
            "name": spec.name,
            "jobDriver": {"sparkSubmit": driver},
        }
        if log_uri:
            request["configurationOverrides"] = {
                "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": log_uri}}
            }
        out = call("starting the EMR Serverless job run", self.client.start_job_run, **request)
        job = Job(
            id=out["jobRunId"],
            backend=self.name,
            name=spec.name or out["jobRunId"],
            state=JobState.PENDING,
            native_state="SUBMITTED",
            details={"application_id": app, "log_uri": log_uri, "entry_point": files[spec.file], "arn": out.get("arn")},
        )
        return self.status(job)

    # -------------------------------------------------------------- follow

    def _app(self, job: Job) -> str:
        app = job.details.get("application_id") or self.settings.get("application_id")
        if not app:
            raise JobError(f"job {job.id}: which EMR Serverless application? pass --application-id")
        return application_id(app)

    def status(self, job: Job) -> Job:
        run = call(
            f"getting EMR Serverless job run {job.id}",
            self.client.get_job_run,
            applicationId=self._app(job),
            jobRunId=job.id,
        )["jobRun"]
        return self._from_run(run, job)

    def _from_run(self, run: dict[str, Any], old: Optional[Job] = None) -> Job:
        return job_from_emr_run(
            self.name, run, old, STATES, ("application_id", "applicationId"), run.get("stateDetails")
        )

    def list(self, limit: int = 50) -> list[Job]:
        app = self.settings.require("application_id", self.name)
        try:
            runs = call(
                "listing EMR Serverless job runs", self.client.list_job_runs, applicationId=app, maxResults=min(50, limit)
            ).get("jobRuns", [])
        except JobNotFound:
            # some implementations answer "not found" for an application without runs: tell them apart
            call(f"looking up EMR Serverless application {app}", self.client.get_application, applicationId=app)
            runs = []
        return [self._from_run(r) for r in runs[:limit]]

    def log_uri_for(self, job: Job, stream: str = "stdout") -> str:
        """Where the driver's ``stream`` (stdout/stderr) lands on S3."""
        base = job.details.get("log_uri") or self.settings.get("log_uri")
        if not base:
            raise JobError(
                f"job {job.id} was submitted without S3 logging (no log_uri/bucket), so its driver log is only "
                "in the EMR Studio / Spark UI; set --bucket or --log-uri for future jobs"
            )
        return f"{base.rstrip('/')}/applications/{self._app(job)}/jobs/{job.id}/SPARK_DRIVER/{stream}.gz"

    def logs(self, job: Job, follow: bool = False, stream: str = "stdout") -> Iterator[str]:
        uri = self.log_uri_for(job, stream)
        state = {"job": job}

        def done() -> bool:
            state["job"] = self.status(state["job"])
            return state["job"].state.is_final

        return follow_object(self.s3, lambda: uri, done, follow, self.poll_interval, uri)

    def cancel(self, job: Job) -> Job:
        call(
            f"cancelling EMR Serverless job run {job.id}",
            self.client.cancel_job_run,
            applicationId=self._app(job),
            jobRunId=job.id,
        )
        return self.status(job)

