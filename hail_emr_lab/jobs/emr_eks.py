"""EMR on EKS backend (``emr-containers start-job-run``).

Parameters: ``virtual_cluster_id``, ``execution_role_arn``, ``release_label`` (default
``emr-6.15.0-latest``); Spark sizing for driver and executors; ``driver_pod_template`` /
``executor_pod_template`` (local files are uploaded); ``hail_jar`` / ``hail_archive``;
``log_uri`` (default ``s3://BUCKET/PREFIX/jobs/logs/``). EMR writes the driver log to
``<log_uri>/<virtual-cluster>/jobs/<job>/containers/<spark-app>/<...>-driver/stdout.gz``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator, Optional

from . import spark
from .aws import AwsJobBackend, call
from .base import Job, JobError, JobSpec, JobState
from .emr_serverless import default_log_uri, job_from_emr_run
from .params import virtual_cluster_id
from .s3logs import find_keys, follow_object
from .upload import stage

STATES = {
    "PENDING": JobState.PENDING,
    "SUBMITTED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCEL_PENDING": JobState.CANCELLING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}


class EmrEksBackend(AwsJobBackend):
    """Jobs on an EMR on EKS virtual cluster."""

    name = "emr-eks"
    service = "emr-containers"

    def submit(self, spec: JobSpec) -> Job:
        s = self.settings
        vc = s.require("virtual_cluster_id", self.name)
        role = s.require("execution_role_arn", self.name)
        label = s.require("release_label", self.name)
        jar, archive = s.get("hail_jar"), s.get("hail_archive")
        bucket, prefix = s.get("bucket"), s.get("prefix")
        log_uri = s.get("log_uri") or default_log_uri(bucket, prefix)
        templates = {
            key: s.get(name)
            for key, name in (
                ("spark.kubernetes.driver.podTemplateFile", "driver_pod_template"),
                ("spark.kubernetes.executor.podTemplateFile", "executor_pod_template"),
            )
            if s.get(name)
        }
        cluster = call(f"looking up virtual cluster {vc}", self.client.describe_virtual_cluster, id=vc)["virtualCluster"]
        if cluster.get("state") not in (None, "RUNNING"):
            raise JobError(f"virtual cluster {vc} is {cluster.get('state')}, not RUNNING: it cannot take jobs")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        files = stage(
            self.s3, bucket, prefix, spec.name or "job", stamp, [spec.file, *spec.py_files, *templates.values()]
        )
        conf = {**spark.hail_conf(jar, archive, "spark.kubernetes.driverEnv"), **spark.sizing_conf(spec)}
        conf.update({key: files[path] for key, path in templates.items()})
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
            "name": spec.name,
            "virtualClusterId": vc,
            "executionRoleArn": role,
            "releaseLabel": label,
            "jobDriver": {"sparkSubmitJobDriver": driver},
        }
        if log_uri:
            request["configurationOverrides"] = {
                "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": log_uri}}
            }
        out = call("starting the EMR on EKS job run", self.client.start_job_run, **request)
        job = Job(
            id=out["id"],
            backend=self.name,
            name=spec.name or out["id"],
            native_state="SUBMITTED",
            details={"virtual_cluster_id": vc, "log_uri": log_uri, "entry_point": files[spec.file], "arn": out.get("arn")},
        )
        return self.status(job)

    def _vc(self, job: Job) -> str:
        vc = job.details.get("virtual_cluster_id") or self.settings.get("virtual_cluster_id")
        if not vc:
            raise JobError(f"job {job.id}: which virtual cluster? pass --virtual-cluster-id")
        return virtual_cluster_id(vc)

    def status(self, job: Job) -> Job:
        run = call(
            f"describing EMR on EKS job run {job.id}", self.client.describe_job_run, id=job.id, virtualClusterId=self._vc(job)
        )["jobRun"]
        return self._from_run(run, job)

    def _from_run(self, run: dict[str, Any], old: Optional[Job] = None) -> Job:
        return job_from_emr_run(
            self.name,
            run,
            old,
            STATES,
            ("virtual_cluster_id", "virtualClusterId"),
            run.get("stateDetails") or run.get("failureReason"),
        )

    def list(self, limit: int = 50) -> list[Job]:
        vc = self.settings.require("virtual_cluster_id", self.name)
        runs = call(
            "listing EMR on EKS job runs", self.client.list_job_runs, virtualClusterId=vc, maxResults=min(50, limit)
        ).get("jobRuns", [])
        return [self._from_run(r) for r in runs[:limit]]

    def log_prefix(self, job: Job) -> str:
        """The S3 prefix under which EMR puts this job's container logs."""
        base = job.details.get("log_uri") or self.settings.get("log_uri")
        if not base:
            raise JobError(
                f"job {job.id} was submitted without S3 logging (no log_uri/bucket); set --bucket or --log-uri "
                "for future jobs"
            )
        return f"{base.rstrip('/')}/{self._vc(job)}/jobs/{job.id}/containers/"

    def logs(self, job: Job, follow: bool = False, stream: str = "stdout") -> Iterator[str]:
        prefix = self.log_prefix(job)
        bucket = prefix[5:].split("/", 1)[0]
        state = {"job": job}

        def locate() -> Optional[str]:
            keys = find_keys(self.s3, prefix, f"-driver/{stream}.gz")
            return f"s3://{bucket}/{keys[-1]}" if keys else None

        def done() -> bool:
            state["job"] = self.status(state["job"])
            return state["job"].state.is_final

        return follow_object(self.s3, locate, done, follow, self.poll_interval, prefix)

    def cancel(self, job: Job) -> Job:
        call(
            f"cancelling EMR on EKS job run {job.id}", self.client.cancel_job_run, id=job.id, virtualClusterId=self._vc(job)
        )
        return self.status(job)
