"""The one job interface: a common state set, the ``Job`` record, the ``JobSpec`` to submit,
and the ``JobBackend`` every service implements (submit, status, list, logs, cancel).

Each backend maps its own state names onto :class:`JobState` and keeps the original in
``Job.native_state``, so nothing is lost while the CLI, the notebook and the sidebar show one
vocabulary.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Optional, Sequence

from ..errors import HailEmrLabError


class JobError(HailEmrLabError):
    """A job could not be submitted, found, followed or cancelled."""


class JobNotFound(JobError):
    """No job with that id (locally remembered or on the service)."""


class JobState(str, enum.Enum):
    """The common states of a job on any backend."""

    PENDING = "PENDING"  # accepted, waiting for resources or starting
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"  # the service no longer knows the job, or said something new

    @property
    def is_final(self) -> bool:
        """The job is over and will not change again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def map_state(native: Optional[str], table: Mapping[str, JobState]) -> JobState:
    """The common state for a service's state name (``UNKNOWN`` when unmapped)."""
    if native is None:
        return JobState.UNKNOWN
    return table.get(str(native).upper(), JobState.UNKNOWN)


def now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds (what the store and sidebar show)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Job:
    """One submitted job, as remembered locally and reported by its service.

    ``details`` holds what the backend needs to find the job again (application id,
    virtual cluster id, Livy URL, log locations...); it never holds credentials.
    """

    id: str
    backend: str
    name: str
    state: JobState = JobState.PENDING
    native_state: Optional[str] = None
    submitted: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    details: dict[str, Any] = field(default_factory=dict)
    message: Optional[str] = None  # a reason the service gave (failure, cancel)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (state as its string)."""
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`, tolerant of missing optional fields."""
        try:
            state = JobState(str(data.get("state") or "UNKNOWN"))
        except ValueError:
            state = JobState.UNKNOWN
        return cls(
            id=str(data["id"]),
            backend=str(data["backend"]),
            name=str(data.get("name") or ""),
            state=state,
            native_state=data.get("native_state"),
            submitted=str(data.get("submitted") or now_iso()),
            updated=str(data.get("updated") or now_iso()),
            details=dict(data.get("details") or {}),
            message=data.get("message"),
        )


@dataclass
class JobSpec:
    """What to run: an entry point (local path or S3 URI), its arguments and Spark sizing.

    Backend-specific settings (application id, queue, role ...) live in ``options`` after
    validation by :mod:`hail_emr_lab.jobs.params`.
    """

    file: str
    args: Sequence[str] = ()
    name: Optional[str] = None
    py_files: Sequence[str] = ()
    conf: Mapping[str, str] = field(default_factory=dict)
    driver_memory: Optional[str] = None
    driver_cores: Optional[int] = None
    executor_memory: Optional[str] = None
    executor_cores: Optional[int] = None
    num_executors: Optional[int] = None
    options: dict[str, Any] = field(default_factory=dict)


class JobBackend(ABC):
    """A service that runs jobs. Implementations take their clients in the constructor
    (boto3 clients, a LivyClient) so tests can point them at real local servers."""

    #: backend name as used on the command line (``--backend``)
    name: str = ""
    #: seconds between polls while following a job
    poll_interval: float = 2.0

    @abstractmethod
    def submit(self, spec: JobSpec) -> Job:
        """Validate, upload what is needed, start the job; returns it in its first state."""

    @abstractmethod
    def status(self, job: Job) -> Job:
        """The job with its current state (a new object; ``job`` is not changed)."""

    @abstractmethod
    def list(self, limit: int = 50) -> list[Job]:
        """Recent jobs known to the service (newest first)."""

    @abstractmethod
    def logs(self, job: Job, follow: bool = False) -> Iterator[str]:
        """Lines of the job's driver log; with ``follow``, keep yielding until the job ends."""

    @abstractmethod
    def cancel(self, job: Job) -> Job:
        """Ask the service to stop the job; returns its state after the request."""

    def wait(self, job: Job, timeout: Optional[float] = None, on_change=None) -> Job:
        """Poll until the job is final (or ``timeout`` seconds pass); ``on_change(job)`` on each
        state change. Returns the last known job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = job.state
        delay = min(0.5, self.poll_interval)
        while True:
            job = self.status(job)
            if job.state != last and on_change is not None:
                on_change(job)
            last = job.state
            if job.state.is_final:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job
            time.sleep(delay)
            delay = min(self.poll_interval, delay * 1.5)
