"""The operations behind ``hail-emr-lab jobs`` and ``%hail submit`` / ``%hail jobs``:
build a validated spec, pick the backend, and keep the local store up to date."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

from ..config import job_flag_name
from ..errors import HailEmrLabError
from . import store
from .base import Job, JobBackend, JobNotFound, JobSpec, JobState
from .params import PARAMS, JobParamError, Settings, conf_pairs, job_name, safe_name, string_list
from .upload import check_local_files

if TYPE_CHECKING:
    from ..livy import LivyClient

BACKENDS = ("livy", "emr-serverless", "emr-eks", "aws-batch")
SPEC_PARAMS = ("driver_memory", "driver_cores", "executor_memory", "executor_cores", "num_executors")


def check_backend(name: Optional[str]) -> str:
    """A known backend name (clear error otherwise)."""
    if name not in BACKENDS:
        raise JobParamError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} (--backend)")
    return name


def make_backend(
    name: str, settings: Settings, job: Optional[Job] = None, livy_client: Optional[LivyClient] = None
) -> JobBackend:
    """The backend object for ``name``; for Livy, the endpoint the job was submitted to
    (``livy_client``: the caller's client, e.g. the notebook's connected one)."""
    check_backend(name)
    if name == "livy":
        from .livy import LivyBackend, endpoint_client

        return LivyBackend(endpoint_client(settings, job, livy_client), settings)
    if name == "emr-serverless":
        from .emr_serverless import EmrServerlessBackend

        return EmrServerlessBackend(settings)
    if name == "emr-eks":
        from .emr_eks import EmrEksBackend

        return EmrEksBackend(settings)
    from .aws_batch import AwsBatchBackend

    return AwsBatchBackend(settings)


def check_flags_apply(backend: str, flags: Mapping[str, Any]) -> None:
    """A flag given for another backend is an error, not silently ignored."""
    for name, value in flags.items():
        param = PARAMS.get(name)
        if value is None or param is None or not param.backends:
            continue
        if backend not in param.backends:
            raise JobParamError(
                f"{job_flag_name(name)} applies to the {', '.join(param.backends)} backend(s), not to {backend}"
            )


def default_job_name(file: str) -> str:
    """``<script stem>-<YYYYmmdd-HHMMSS>-<4 hex>``: unique (Livy wants unique batch names)."""
    stem = safe_name(Path(file.rstrip("/")).stem)[:40]
    return f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def build_spec(
    backend: str,
    file: str,
    args: Sequence[str] = (),
    name: Optional[str] = None,
    py_files: Any = None,
    conf: Any = None,
    settings: Optional[Settings] = None,
) -> JobSpec:
    """A validated :class:`JobSpec` (sizes, counts, conf, name) -- nothing is contacted."""
    settings = settings or Settings()
    if not file:
        raise JobParamError("give the job's entry point FILE (a local .py/.nf file or an s3:// URI)")
    values = {key: settings.get(key) for key in SPEC_PARAMS if backend in PARAMS[key].backends}
    return JobSpec(
        file=file,
        args=list(args),
        name=job_name(name, backend) if name else default_job_name(file),
        py_files=string_list(py_files),
        conf=conf_pairs(conf),
        options={},
        **values,
    )


def submit(
    backend: str,
    file: str,
    args: Sequence[str] = (),
    flags: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
    py_files: Any = None,
    conf: Any = None,
    livy_client: Optional[LivyClient] = None,
) -> Job:
    """Validate everything, submit, remember the job; returns it in its first state."""
    check_backend(backend)
    flags = dict(flags or {})
    check_flags_apply(backend, flags)
    settings = Settings(flags)
    spec = build_spec(backend, file, args, name, py_files, conf, settings)
    check_local_files([spec.file, *spec.py_files])  # cheap and local: before any service is asked
    job = make_backend(backend, settings, livy_client=livy_client).submit(spec)
    store.save(job)
    return job


def locate(
    job_id: str,
    backend: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    livy_client: Optional[LivyClient] = None,
) -> tuple[JobBackend, Job]:
    """The backend and job for ``job_id``: from the store, or (with ``backend``) a job
    submitted elsewhere, identified by the service ids given as flags."""
    settings = Settings(flags)
    try:
        job = store.find(job_id, backend)
    except JobNotFound:
        if backend is None:
            raise
        check_backend(backend)
        job = Job(id=job_id, backend=backend, name=job_id, state=JobState.UNKNOWN)
    return make_backend(job.backend, settings, job, livy_client), job


def _update(
    act: Callable[[JobBackend, Job], Job],
    job_id: str,
    backend: Optional[str],
    flags: Optional[Mapping[str, Any]],
    livy_client: Optional[LivyClient],
) -> Job:
    be, job = locate(job_id, backend, flags, livy_client)
    job = act(be, job)
    store.save(job)
    return job


def status(
    job_id: str,
    backend: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    livy_client: Optional[LivyClient] = None,
) -> Job:
    """The job's current state (also saved in the store)."""
    return _update(lambda be, job: be.status(job), job_id, backend, flags, livy_client)


def cancel(
    job_id: str,
    backend: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    livy_client: Optional[LivyClient] = None,
) -> Job:
    """Cancel the job; returns (and stores) its state afterwards."""
    return _update(lambda be, job: be.cancel(job), job_id, backend, flags, livy_client)


def logs(
    job_id: str,
    backend: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    follow: bool = False,
    stream: str = "stdout",
    livy_client: Optional[LivyClient] = None,
) -> Iterator[str]:
    """The job's log lines (following until it ends with ``follow``)."""
    be, job = locate(job_id, backend, flags, livy_client)
    yield from be.logs(job, follow=follow, stream=stream)
    if follow:
        store.save(be.status(job))


def list_jobs(
    backend: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    limit: int = 50,
    refresh: bool = False,
    livy_client: Optional[LivyClient] = None,
) -> list[Job]:
    """Jobs: with ``backend``, those the service lists; else the ones remembered here
    (``refresh`` asks the services about the unfinished ones first)."""
    if backend:
        check_backend(backend)
        return make_backend(backend, Settings(flags), livy_client=livy_client).list(limit)
    jobs = store.all_jobs()[:limit]
    if refresh:
        settings = Settings(flags)
        fresh = []
        for job in jobs:
            if not job.state.is_final:
                try:
                    job = make_backend(job.backend, settings, job, livy_client).status(job)
                    store.save(job)
                except HailEmrLabError as exc:  # one unreachable service must not hide the others
                    job.message = f"could not refresh: {exc}"
            fresh.append(job)
        jobs = fresh
    return jobs
