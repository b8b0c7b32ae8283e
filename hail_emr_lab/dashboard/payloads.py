"""The JSON answers of the sidebar's REST API, declared once.

Each GET route of ``hail_emr_lab.server.handlers`` answers one of the ``*Payload`` shapes below
(the handler adds ``elapsed_ms``, the server's cost in milliseconds). The labextension's
TypeScript interfaces (``labextension/src/payloads.ts``) are generated from these declarations
by ``labextension/scripts/payload_types.py``, so the browser reads exactly the fields sent.

Keys of a ``total=False`` part may be absent; ``Optional`` values may be null. Times are ISO
8601 text or epoch seconds as noted; sizes are bytes.
"""

from __future__ import annotations

import typing
from typing import Any, Optional, TypedDict, Union


class Answer(TypedDict):
    """What every GET answer carries besides its section's fields."""

    elapsed_ms: float  # the server's time spent on the answer, in milliseconds


# ----------------------------------------------------------------- status (Cluster section)


class ConfigItem(TypedDict):
    """One effective configuration value (secrets as "***") and where it came from."""

    value: Any
    source: str


class ServerlessApp(TypedDict):
    """The configured EMR Serverless application (``emr.serverless.ServerlessApp.to_dict``)."""

    application_id: str
    name: str
    state: str  # CREATED, STARTING, STARTED, STOPPING, STOPPED, TERMINATED (GetApplication)
    release: str  # e.g. emr-7.2.0
    livy_enabled: Optional[bool]  # None: the answer did not say
    livy_url: str
    region: str


class ServerlessAppError(TypedDict):
    """The configured EMR Serverless application could not be described."""

    application_id: str
    error: str


class _ClusterStatus(Answer):
    livy_url: Optional[str]
    livy_url_source: str
    session_name: Optional[str]
    auth: Optional[str]
    cluster_id: Optional[str]
    reachable: bool
    error: Optional[str]
    latency_ms: Optional[float]
    hint: str
    config: dict[str, ConfigItem]


class ClusterStatus(_ClusterStatus, total=False):
    """GET status: the endpoint, whether it answers, and the serverless application if any."""

    serverless: Union[ServerlessApp, ServerlessAppError]


# ----------------------------------------------------------------- sessions


class _SessionInfo(TypedDict):

    id: int
    name: Optional[str]
    state: str
    alive: bool
    busy: bool
    starting: bool
    kind: Optional[str]
    app_id: Optional[str]
    owner: Optional[str]
    proxy_user: Optional[str]
    spark_ui_url: Optional[str]
    driver_log_url: Optional[str]
    own: bool
    notebook: Optional[str]  # the owning notebook's path when open here, else its name's stem


class SessionInfo(_SessionInfo, total=False):
    """One Livy session; ``own``: named after the user's session_name."""

    spark_ui_note: Optional[str]  # EMR Serverless: where the Spark UI or driver log is when not linked


class Sessions(Answer):
    """GET sessions."""

    session_name: Optional[str]
    sessions: list[SessionInfo]
    error: Optional[str]


# ----------------------------------------------------------------- progress (Running section)


class _SparkStage(TypedDict):
    stageId: int


class SparkStage(_SparkStage, total=False):
    """A stage as the Spark REST API reports it (only these scalar fields are passed on)."""

    attemptId: int
    name: str
    status: str
    numTasks: int
    numActiveTasks: int
    numCompleteTasks: int
    numFailedTasks: int
    numKilledTasks: int
    inputBytes: int
    outputBytes: int
    shuffleReadBytes: int
    shuffleWriteBytes: int
    submissionTime: str


class _SparkJob(TypedDict):
    jobId: int
    stages: list[SparkStage]


class SparkJob(_SparkJob, total=False):
    """A Spark job of a statement (its job group is the statement id) with its stages."""

    name: str
    status: str
    jobGroup: str
    submissionTime: str
    completionTime: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numSkippedTasks: int
    numFailedTasks: int
    numKilledTasks: int
    numActiveStages: int
    numCompletedStages: int
    numSkippedStages: int
    numFailedStages: int


class StatementProgress(TypedDict):
    """A running statement: ``progress`` in 0..1, ``code`` the line that says what it does."""

    id: int
    state: str
    progress: float
    started: Optional[int]  # Livy's start time, ms since the epoch
    code: str
    jobs: list[SparkJob]


class SessionProgress(TypedDict):
    """One alive session's running statements; ``spark_error``: why its Spark jobs are unknown."""

    session_id: int
    name: Optional[str]
    state: str
    own: bool
    app_id: Optional[str]
    spark_ui_url: Optional[str]
    statements: list[StatementProgress]
    error: Optional[str]
    spark_error: Optional[str]


class Transfer(TypedDict):
    """A pull (``-o``) or push running in one of this user's kernels (``dashboard/transfers.py``):
    sizes in bytes, ``rate`` in bytes per second over the last seconds, ``eta`` and ``elapsed``
    in seconds; ``total_bytes``, ``rows``, ``rate`` and ``eta`` are null while unknown."""

    kernel_pid: int
    notebook: Optional[str]
    session_name: Optional[str]
    direction: str  # pull or push
    name: str  # the variable
    transport: Optional[str]  # livy or staged, null until the cluster chose
    done_bytes: int
    total_bytes: Optional[int]
    rows: Optional[int]
    rate: Optional[float]
    eta: Optional[float]
    elapsed: float


class Progress(Answer):
    """GET progress (``transfers_error``: published transfers that could not be read)."""

    sessions: list[SessionProgress]
    error: Optional[str]
    transfers: list[Transfer]
    transfers_error: Optional[str]


# ----------------------------------------------------------------- plots


class PlotEntry(TypedDict):
    """A plot file in the folder's plots/ (``indexed``: known to the plots index)."""

    name: str
    file: str  # relative to plots/
    kind: str  # html, svg, image, other
    remote_path: Optional[str]
    time: Union[str, float, None]  # ISO text (pulled at) or epoch seconds (file mtime)
    remote_mtime: Union[str, float, None]
    size: Optional[int]  # bytes
    sha256: Optional[str]
    exists: bool
    indexed: bool


class Plots(Answer):
    """GET plots?dir=DIR: the gallery of ``DIR/plots``, newest first."""

    dir: str
    plots_dir: str
    plots: list[PlotEntry]
    message: Optional[str]


# ----------------------------------------------------------------- sync (Backup section)


class BackupTarget(TypedDict):
    bucket: str
    prefix: str
    home: str


class Conflict(TypedDict):
    """A file changed on both sides: the other version was kept as ``conflict_copy``."""

    path: str
    conflict_copy: str
    time: str
    reason: str


class SyncStatus(TypedDict):
    """``hail_emr_lab.sync.status``; list fields are cut, their ``*_count`` is the full number."""

    home: str
    bucket: str
    prefix: str
    url: str
    last_backup: Optional[str]
    last_restore: Optional[str]
    pending: list[str]
    pending_count: int
    deleted_locally: list[str]
    deleted_locally_count: int
    synced_count: int
    conflicts: list[Conflict]
    errors: list[dict[str, str]]
    notes: list[str]
    server_limits: list[str]
    folder_markers: bool
    empty_dirs: list[str]
    empty_dirs_count: int
    skipped: dict[str, int]
    skipped_text: Optional[str]
    skipped_dirs: list[str]
    running: bool


class BackupRun(TypedDict):
    """The backup or restore started from the sidebar (``started``, ``finished``: epoch seconds;
    ``report``: what the sync returned)."""

    action: Optional[str]
    running: bool
    started: Optional[float]
    finished: Optional[float]
    ok: Optional[bool]
    message: Optional[str]
    report: Optional[dict[str, Any]]


class _Backup(Answer):
    available: bool
    configured: bool
    status: Optional[SyncStatus]
    skipped_note: Optional[str]
    error: Optional[str]
    run: BackupRun


class Backup(_Backup, total=False):
    """GET sync."""

    target: BackupTarget


# ----------------------------------------------------------------- clusters, nodes, jobs


class ClusterRow(TypedDict):
    """An active EMR cluster (``emr.discovery.list_clusters``)."""

    cluster_id: str
    name: str
    state: str
    host: Optional[str]
    port: int
    private_ip: Optional[str]
    private_dns: Optional[str]
    security_groups: list[str]
    release_label: Optional[str]
    has_livy: bool
    livy_url: Optional[str]
    reachable: bool
    problem: Optional[str]


class Clusters(Answer):
    """GET clusters."""

    available: bool
    clusters: list[ClusterRow]
    error: Optional[str]


class NodeRow(TypedDict):
    """One EC2 instance of the configured cluster; ``shell``: ``terminal_command`` can open a
    shell there (``emr.ssm.require_managed``), else ``no_shell_reason`` says why."""

    instance_id: str
    group: str  # MASTER, CORE, TASK
    state: str
    private_ip: Optional[str]
    private_dns: Optional[str]
    managed: Optional[bool]
    ping_status: Optional[str]  # the SSM agent's PingStatus: Online, ConnectionLost, Inactive
    aws_command: str
    terminal_command: str
    shell: bool
    no_shell_reason: Optional[str]


class Nodes(Answer):
    """GET nodes."""

    available: bool
    cluster_id: Optional[str]
    region: Optional[str]
    nodes: list[NodeRow]
    error: Optional[str]


class JobRow(TypedDict):
    """A job submitted from here (``jobs.store.list_jobs``); times are ISO 8601."""

    id: str
    backend: str
    name: str
    submitted: str
    state: str
    updated: str


class Jobs(Answer):
    """GET jobs."""

    available: bool
    jobs: list[JobRow]
    error: Optional[str]


#: The answer of each GET route, by route (what the generated TypeScript exports).
ROUTES: dict[str, type] = {
    "status": ClusterStatus,
    "sessions": Sessions,
    "progress": Progress,
    "plots": Plots,
    "sync": Backup,
    "clusters": Clusters,
    "nodes": Nodes,
    "jobs": Jobs,
}


def is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def field_errors(value: Any, tp: Any, path: str = "$") -> list[str]:
    """What in ``value`` (decoded JSON) does not fit ``tp``: missing, unknown or mistyped fields,
    as ``["$.nodes[0].shell: missing", ...]``; empty when it fits."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return []
    if origin is Union:
        tried = [field_errors(value, arg, path) for arg in args]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        hints = typing.get_type_hints(tp)
        out = [f"{path}.{k}: missing" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{path}.{k}: not declared" for k in sorted(value.keys() - hints.keys())]
        for key in sorted(value.keys() & hints.keys()):
            out += field_errors(value[key], hints[key], f"{path}.{key}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [e for i, item in enumerate(value) for e in field_errors(item, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        return [e for k, item in value.items() for e in field_errors(item, args[1], f"{path}.{k}")]
    return _scalar_errors(value, tp, path)


def _scalar_errors(value: Any, tp: Any, path: str) -> list[str]:
    if tp is type(None):
        ok = value is None
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{path}: {value!r} is not {getattr(tp, '__name__', tp)}"]
