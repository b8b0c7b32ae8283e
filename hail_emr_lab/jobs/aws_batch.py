"""AWS Batch backend: ``submit-job`` with container overrides (e.g. a Nextflow head job).

Parameters: ``job_queue`` and ``job_definition`` (checked to exist before submitting);
``command``, a template split like a shell line where ``{file}`` is the S3 URI of FILE and
``{args}`` expands to the job's arguments (default for ``.nf`` files:
``nextflow run {file} {args}``); ``vcpus`` and ``memory`` overrides; ``log_group``
(default ``/aws/batch/job``) for the CloudWatch log stream of the container.
"""

from __future__ import annotations

import shlex
import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Iterator, Optional

from .aws import AwsJobBackend, call, make_client
from .base import Job, JobError, JobNotFound, JobSpec, JobState, map_state, now_iso
from .params import JobParamError
from .upload import stage

STATES = {
    "SUBMITTED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "RUNNABLE": JobState.PENDING,
    "STARTING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}
ALL_STATUSES = tuple(STATES)
DEFAULT_COMMANDS = {".nf": "nextflow run {file} {args}"}
CANCEL_REASON = "cancelled from hail-emr-lab"


def render_command(template: str, file_uri: str, args: list[str]) -> list[str]:
    """The container command: ``template`` split shell-style, ``{args}`` expanded in place,
    ``{file}`` replaced inside any word."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise JobParamError(f"--command {template!r}: {exc} (check the quotes)") from None
    out: list[str] = []
    for word in words:
        if word == "{args}":
            out += args
        else:
            out.append(word.replace("{file}", file_uri))
    if not out:
        raise JobParamError("--command is empty")
    return out


def _ms_iso(ms: Any) -> Optional[str]:
    if not ms:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, timezone.utc).replace(microsecond=0).isoformat()


class AwsBatchBackend(AwsJobBackend):
    """Jobs on an AWS Batch job queue."""

    name = "aws-batch"
    service = "batch"

    @cached_property
    def logs_client(self) -> Any:
        """The boto3 logs client (created on first use, after validation)."""
        return make_client(self.session, "logs")

    def _command_template(self, spec: JobSpec) -> str:
        template = self.settings.get("command")
        if template:
            return str(template)
        for ext, default in DEFAULT_COMMANDS.items():
            if spec.file.endswith(ext):
                return default
        raise JobParamError(
            "AWS Batch runs a container command: give it with --command (e.g. --command "
            "'python3 /opt/run.py {file} {args}', where {file} becomes the S3 URI of FILE), or set "
            "HAIL_EMR_LAB_JOBS_COMMAND; only .nf files have a default (nextflow run {file} {args})"
        )

    def _check_queue(self, queue: str) -> None:
        found = call("looking up the Batch job queue", self.client.describe_job_queues, jobQueues=[queue])
        queues = found.get("jobQueues") or []
        if not queues:
            raise JobParamError(
                f"AWS Batch job queue {queue!r} does not exist (in this region); see `aws batch describe-job-queues`"
            )
        q = queues[0]
        if q.get("state") == "DISABLED" or q.get("status") in ("INVALID", "DELETING", "DELETED"):
            raise JobError(f"AWS Batch job queue {queue!r} is {q.get('state')}/{q.get('status')}: it takes no jobs")

    def _check_definition(self, definition: str) -> None:
        if definition.startswith("arn:"):
            found = call(
                "looking up the Batch job definition", self.client.describe_job_definitions, jobDefinitions=[definition]
            )
        else:
            name, _, rev = definition.partition(":")
            found = call(
                "looking up the Batch job definition",
                self.client.describe_job_definitions,
                jobDefinitionName=name,
                status="ACTIVE",
            )
            if rev:
                found["jobDefinitions"] = [
                    d for d in found.get("jobDefinitions") or [] if str(d.get("revision")) == rev
                ]
        if not found.get("jobDefinitions"):
            raise JobParamError(
                f"AWS Batch job definition {definition!r} does not exist or is not ACTIVE; "
                "see `aws batch describe-job-definitions --status ACTIVE`"
            )

    def submit(self, spec: JobSpec) -> Job:
        s = self.settings
        queue = s.require("job_queue", self.name)
        definition = s.require("job_definition", self.name)
        template = self._command_template(spec)
        vcpus, memory = s.get("vcpus"), s.get("memory")
        self._check_queue(queue)
        self._check_definition(definition)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        files = stage(self.s3, s.get("bucket"), s.get("prefix"), spec.name or "job", stamp, [spec.file])
        overrides: dict[str, Any] = {
            "command": render_command(template, files[spec.file], list(spec.args)),
            "environment": [{"name": "HAIL_EMR_LAB_JOB_FILE", "value": files[spec.file]}],
        }
        resources = []
        if vcpus:
            resources.append({"type": "VCPU", "value": str(vcpus)})
        if memory:
            resources.append({"type": "MEMORY", "value": str(memory)})
        if resources:
            overrides["resourceRequirements"] = resources
        out = call(
            "submitting the AWS Batch job",
            self.client.submit_job,
            jobName=spec.name,
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides=overrides,
        )
        job = Job(
            id=out["jobId"],
            backend=self.name,
            name=spec.name or out["jobName"],
            native_state="SUBMITTED",
            details={"job_queue": queue, "job_definition": definition, "file": files[spec.file], "arn": out.get("jobArn")},
        )
        return self.status(job)

    def describe(self, job_id: str) -> dict[str, Any]:
        """The raw ``describe-jobs`` entry for one job."""
        found = call(f"describing AWS Batch job {job_id}", self.client.describe_jobs, jobs=[job_id]).get("jobs") or []
        if not found:
            raise JobNotFound(f"AWS Batch does not know job {job_id} (Batch forgets jobs ~7 days after they end)")
        return found[0]

    def status(self, job: Job) -> Job:
        return self._from_desc(self.describe(job.id), job)

    def _from_desc(self, desc: dict[str, Any], old: Optional[Job] = None) -> Job:
        native = desc.get("status")
        details = dict(old.details if old else {})
        for key, field in (("job_queue", "jobQueue"), ("job_definition", "jobDefinition")):
            if desc.get(field) and key not in details:
                details[key] = desc[field]
        stream = self._stream_of(desc)
        if stream:
            details["log_stream"] = stream
        state = map_state(native, STATES)
        if state is JobState.FAILED and str(desc.get("statusReason") or "").startswith(CANCEL_REASON):
            state = JobState.CANCELLED  # Batch has no CANCELLED state; our own cancel is not a failure
        elif not state.is_final and details.get("cancel_requested"):
            state = JobState.CANCELLING  # Batch acts on a cancel asynchronously
        return Job(
            id=desc["jobId"],
            backend=self.name,
            name=desc.get("jobName") or (old.name if old else desc["jobId"]),
            state=state,
            native_state=native,
            submitted=old.submitted if old else (_ms_iso(desc.get("createdAt")) or now_iso()),
            updated=now_iso(),
            details=details,
            message=desc.get("statusReason") or None,
        )

    @staticmethod
    def _stream_of(desc: dict[str, Any]) -> Optional[str]:
        stream = (desc.get("container") or {}).get("logStreamName")
        for attempt in reversed(desc.get("attempts") or []):
            stream = stream or (attempt.get("container") or {}).get("logStreamName")
        return stream

    def list(self, limit: int = 50) -> list[Job]:
        queue = self.settings.require("job_queue", self.name)
        summaries: list[dict[str, Any]] = []
        for status in ALL_STATUSES:  # without a status Batch lists only RUNNING jobs
            summaries += call(
                "listing AWS Batch jobs", self.client.list_jobs, jobQueue=queue, jobStatus=status
            ).get("jobSummaryList", [])
        summaries.sort(key=lambda d: d.get("createdAt") or 0, reverse=True)
        return [self._from_desc(d) for d in summaries[:limit]]

    def log_location(self, job: Job) -> tuple[str, str]:
        """(log group, log stream) of the job's container."""
        group = str(self.settings.get("log_group") or "/aws/batch/job")
        desc = self.describe(job.id)
        stream = self._stream_of(desc)
        if stream:
            return group, stream
        # Batch names the stream <definition>/default/<id>; look it up before the job reports it.
        definition = str(desc.get("jobDefinition") or job.details.get("job_definition") or "")
        def_name = definition.rsplit("/", 1)[-1].split(":")[0]
        try:
            found = call(
                "looking up the job's CloudWatch log stream",
                self.logs_client.describe_log_streams,
                logGroupName=group,
                logStreamNamePrefix=f"{def_name}/default/",
            ).get("logStreams", [])
        except JobNotFound:
            found = []
        for entry in found:
            if entry["logStreamName"].endswith("/" + job.id):
                return group, entry["logStreamName"]
        raise JobNotFound(
            f"AWS Batch job {job.id} has no CloudWatch log stream (yet) in {group}: a stream appears once its "
            f"container starts (state now {desc.get('status')})"
        )

    def logs(self, job: Job, follow: bool = False, stream: str = "stdout") -> Iterator[str]:
        """CloudWatch events of the container (stdout and stderr share one stream)."""
        while True:
            try:
                group, name = self.log_location(job)
                break
            except JobNotFound:
                if not follow or self.status(job).state.is_final:
                    raise
                time.sleep(self.poll_interval)
        return self._events(job, group, name, follow)

    def _events(self, job: Job, group: str, name: str, follow: bool) -> Iterator[str]:
        token: Optional[str] = None
        while True:
            done = not follow or self.status(job).state.is_final
            while True:
                kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": name, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                page = call(f"reading CloudWatch log {group} {name}", self.logs_client.get_log_events, **kwargs)
                for event in page.get("events", []):
                    yield str(event.get("message", ""))
                new_token = page.get("nextForwardToken")
                if new_token == token or not page.get("events"):
                    token = new_token or token
                    break
                token = new_token
            if done:
                return
            time.sleep(self.poll_interval)

    def cancel(self, job: Job) -> Job:
        current = self.status(job)
        reason = CANCEL_REASON
        if current.native_state in ("SUBMITTED", "PENDING", "RUNNABLE"):
            call(f"cancelling AWS Batch job {job.id}", self.client.cancel_job, jobId=job.id, reason=reason)
        elif not current.state.is_final:
            call(f"terminating AWS Batch job {job.id}", self.client.terminate_job, jobId=job.id, reason=reason)
        else:
            return current
        job = Job.from_dict(current.to_dict())
        job.details["cancel_requested"] = now_iso()
        return self.status(job)
