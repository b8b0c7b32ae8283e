"""Livy batches (``POST /batches``): the EMR cluster's Livy or the embedded server.

The entry point must be readable by the Livy server: a local file is passed by absolute
path when Livy runs on this machine (the embedded server), and uploaded to S3 (``bucket``,
``prefix``) when Livy is remote (EMR reads ``s3://`` directly).
"""

from __future__ import annotations

import ipaddress
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

from ..livy import LivyClient, LivyError, LivyNotFound
from ..livy.models import Batch
from .base import Job, JobBackend, JobError, JobNotFound, JobSpec, JobState, map_state, now_iso
from .params import Settings
from .upload import check_local_files, is_remote

STATES = {
    "NOT_STARTED": JobState.PENDING,
    "STARTING": JobState.PENDING,
    "RECOVERING": JobState.PENDING,
    "IDLE": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "BUSY": JobState.RUNNING,
    "SHUTTING_DOWN": JobState.CANCELLING,
    "SUCCESS": JobState.SUCCEEDED,
    "DEAD": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
}
LOG_PAGE = 1000


def is_local_endpoint(host: str) -> bool:
    """True when Livy runs on this machine (so it can read our local paths)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_client(settings: Settings, job: Optional[Job] = None, client: Optional[LivyClient] = None) -> LivyClient:
    """The client for the job's Livy: ``--url`` if given, else the endpoint the job was submitted
    to, else the configured ``url``/``livy_url``; ``client`` (the notebook's, passed in by the
    caller) when it is that endpoint or none is named. Built by :func:`hail_emr_lab.endpoint.make_client`.

    Raises JobError when no endpoint is named and no client is given.
    """
    url = settings.get("url") if settings.section.source("url").startswith("argument") else None
    url = url or (job.details.get("url") if job else None) or settings.get("url")
    if url is None:
        if client is None:
            raise JobError(
                "the livy backend needs a Livy endpoint: pass --url http://HOST:8998, set HAIL_EMR_LAB_JOBS_URL or "
                "HAIL_EMR_LAB_LIVY_URL (config key livy_url), or run %hail connect in the notebook first"
            )
        return client
    from ..livy.client import normalize_url

    if client is not None and client.url == normalize_url(url):
        return client
    from ..endpoint import make_client

    return make_client(settings.config, url)


class LivyBackend(JobBackend):
    """Batches on a Livy endpoint."""

    name = "livy"
    poll_interval = 1.0

    def __init__(self, client: LivyClient, settings: Optional[Settings] = None, s3: Any = None):
        self.settings = settings or Settings()
        self.client = client
        self._s3 = s3

    def _stage(self, spec: JobSpec) -> dict[str, str]:
        paths = [spec.file, *spec.py_files]
        local = check_local_files(paths)
        mapping = {p: p for p in paths if is_remote(p)}
        if not local:
            return mapping
        if is_local_endpoint(self.client.host):
            mapping.update({p: str(Path(p).expanduser().resolve()) for p in paths if not is_remote(p)})
            return mapping
        from .aws import boto3_session, make_client
        from .upload import stage

        s3 = self._s3 or make_client(boto3_session(self.settings.get("region")), "s3")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return stage(s3, self.settings.get("bucket"), self.settings.get("prefix"), spec.name or "job", stamp, paths)

    def submit(self, spec: JobSpec) -> Job:
        files = self._stage(spec)
        batch = self.client.submit_batch(
            files[spec.file],
            name=spec.name,
            args=list(spec.args),
            pyFiles=[files[p] for p in spec.py_files],
            conf=dict(spec.conf),
            driverMemory=spec.driver_memory,
            driverCores=spec.driver_cores,
            executorMemory=spec.executor_memory,
            executorCores=spec.executor_cores,
            numExecutors=spec.num_executors,
        )
        job = Job(id=str(batch.id), backend=self.name, name=spec.name or f"batch-{batch.id}", details={"url": self.client.url})
        return self._from_batch(batch, job)

    def _from_batch(self, batch: Batch, old: Optional[Job] = None) -> Job:
        details = dict(old.details if old else {})
        details["url"] = self.client.url
        if batch.app_id:
            details["app_id"] = batch.app_id
        for key in ("sparkUiUrl", "driverLogUrl"):
            if batch.app_info.get(key):
                details[key] = batch.app_info[key]
        return Job(
            id=str(batch.id),
            backend=self.name,
            name=batch.name or (old.name if old else f"batch-{batch.id}"),
            state=map_state(batch.state.value, STATES),
            native_state=batch.state.value,
            submitted=old.submitted if old else now_iso(),
            updated=now_iso(),
            details=details,
        )

    def _id(self, job: Job) -> int:
        try:
            return int(job.id)
        except ValueError:
            raise JobError(f"{job.id!r} is not a Livy batch id (a number)") from None

    def status(self, job: Job) -> Job:
        try:
            return self._from_batch(self.client.get_batch(self._id(job)), job)
        except LivyNotFound:
            if job.state.is_final:
                return job  # Livy forgets finished batches; what we remember stays true
            gone = Job.from_dict(job.to_dict())
            gone.state, gone.updated = JobState.UNKNOWN, now_iso()
            gone.message = f"Livy at {self.client.url} no longer knows batch {job.id} (server restarted or deleted)"
            return gone

    def list(self, limit: int = 50) -> list[Job]:
        batches = sorted(self.client.list_batches(), key=lambda b: b.id, reverse=True)[:limit]
        return [self._from_batch(b) for b in batches]

    def logs(self, job: Job, follow: bool = False, stream: str = "stdout") -> Iterator[str]:
        """The batch's log (spark-submit's stdout and stderr, as Livy keeps them)."""
        batch_id = self._id(job)
        offset = 0
        delay = 0.2
        while True:
            try:
                done = not follow or self.client.batch_state(batch_id).is_final
                while True:
                    lines = self.client.batch_log(batch_id, from_=offset, size=LOG_PAGE)
                    yield from lines
                    offset += len(lines)
                    if len(lines) < LOG_PAGE:
                        break
            except LivyNotFound:
                raise JobNotFound(f"Livy at {self.client.url} does not know batch {job.id} (any more)") from None
            if done:
                return
            time.sleep(delay)
            delay = min(self.poll_interval, delay * 1.5)

    def cancel(self, job: Job) -> Job:
        try:
            self.client.delete_batch(self._id(job))
        except LivyError as exc:
            raise JobError(f"cancelling Livy batch {job.id}: {exc}") from None
        done = Job.from_dict(job.to_dict())
        if not done.state.is_final:
            done.state, done.native_state = JobState.CANCELLED, "killed"
            done.message = "deleted on Livy"
        done.updated = now_iso()
        return done
