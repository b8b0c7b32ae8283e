"""The Running section: progress of running statements, with their Spark jobs and stages, and
the transfers (``-o``, ``%hail push``) this user's kernels publish (:mod:`.transfers`).

Livy gives each statement a ``progress`` (0..1). The detail comes from the Spark REST API
of the session's application (``appInfo.sparkUiUrl`` + ``/api/v1/applications/<appId>/jobs``
and ``/stages``), fetched here, server-side, so the browser never has to reach the cluster.
Livy runs each statement in the Spark job group named after the statement id, which is how
jobs map back to statements.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import requests

from ..config import Config
from ..errors import HailEmrLabError
from ..session_names import is_own
from . import transfers
from .status import configured_client, safe_url

SPARK_TIMEOUT = (2.0, 5.0)
#: Enough to find every running statement (a session runs one at a time, a few may queue).
STATEMENTS_LOOKBACK = 20
JOB_FIELDS = (
    "jobId",
    "name",
    "status",
    "jobGroup",
    "submissionTime",
    "completionTime",
    "numTasks",
    "numActiveTasks",
    "numCompletedTasks",
    "numSkippedTasks",
    "numFailedTasks",
    "numKilledTasks",
    "numActiveStages",
    "numCompletedStages",
    "numSkippedStages",
    "numFailedStages",
)
STAGE_FIELDS = (
    "stageId",
    "attemptId",
    "name",
    "status",
    "numTasks",
    "numActiveTasks",
    "numCompleteTasks",
    "numFailedTasks",
    "numKilledTasks",
    "inputBytes",
    "outputBytes",
    "shuffleReadBytes",
    "shuffleWriteBytes",
    "submissionTime",
)


class SparkRestError(HailEmrLabError):
    """The Spark REST API of a session could not be read."""


def _pick(obj: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Only the known fields, and only scalar values (nothing else from the cluster is passed on)."""
    return {k: obj[k] for k in fields if k in obj and isinstance(obj[k], (str, int, float, bool, type(None)))}


def _get_json(http: requests.Session, url: str) -> Any:
    try:
        response = http.get(url, timeout=SPARK_TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise SparkRestError(f"the Spark UI at {url} did not answer ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise SparkRestError(f"the Spark UI at {url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise SparkRestError(f"the Spark UI at {url} did not answer JSON (a proxy login page?)") from None


def spark_jobs_and_stages(
    spark_ui_url: str, app_id: Optional[str], http: Optional[requests.Session] = None
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """``(jobs, stages_by_id)`` of the application from its Spark REST API."""
    base = safe_url(spark_ui_url)
    if not base:
        raise SparkRestError(f"the session's Spark UI link {spark_ui_url!r} is not an http(s) URL")
    base = base.rstrip("/") + "/api/v1/applications"
    http = http or requests.Session()
    if not app_id:
        apps = _get_json(http, base)
        if not isinstance(apps, list) or not apps:
            raise SparkRestError(f"the Spark UI at {base} lists no application")
        app_id = str(apps[0].get("id"))
    jobs = _get_json(http, f"{base}/{app_id}/jobs")
    stages = _get_json(http, f"{base}/{app_id}/stages")
    if not isinstance(jobs, list) or not isinstance(stages, list):
        raise SparkRestError(f"the Spark UI at {base} answered an unexpected shape")
    by_id: dict[int, dict[str, Any]] = {}
    for stage in stages:
        if isinstance(stage, dict) and isinstance(stage.get("stageId"), int):
            # Several attempts of a stage: keep the latest.
            prev = by_id.get(stage["stageId"])
            if prev is None or stage.get("attemptId", 0) >= prev.get("attemptId", 0):
                by_id[stage["stageId"]] = stage
    return [j for j in jobs if isinstance(j, dict)], by_id


def jobs_for_statement(
    statement_id: int, jobs: list[dict[str, Any]], stages: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The Spark jobs of statement ``statement_id`` (job group = statement id), with their stages."""
    out = []
    for job in jobs:
        if str(job.get("jobGroup")) != str(statement_id):
            continue
        row = _pick(job, JOB_FIELDS)
        ids = [i for i in job.get("stageIds") or [] if isinstance(i, int)]
        row["stages"] = [_pick(stages[i], STAGE_FIELDS) for i in sorted(ids) if i in stages]
        out.append(row)
    return sorted(out, key=lambda j: j.get("jobId", 0))


_PREAMBLE = re.compile(r"^\s*(#|import\s|from\s+\S+\s+import\s|%)")


def code_preview(code: str) -> str:
    """The line that says what a statement does: its first line that is not blank, a comment, an
    import or a magic (cells often start with those), else its first non-blank line."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return next((line for line in lines if not _PREAMBLE.match(line)), lines[0] if lines else "")[:200]


def _statement_row(st: Any) -> dict[str, Any]:
    return {
        "id": st.id,
        "state": st.state.value,
        "progress": max(0.0, min(1.0, float(st.progress or 0.0))),
        "started": st.started or None,
        "code": code_preview(st.code or ""),
        "jobs": [],
    }


def running_progress(cfg: Config, client: Any = None, include_all: bool = False,
                     runtime_dir: Optional[str] = None) -> dict[str, Any]:
    """The Running section: the transfers this user's kernels publish (:mod:`.transfers`, read
    from ``runtime_dir``), and for each alive session (own ones unless ``include_all``) its running
    statements with progress and Spark jobs/stages. Errors are reported per session."""
    own_name = cfg.get("session_name")
    moving, moving_error = transfers.running_transfers(runtime_dir)  # read first: Livy may fail
    out: dict[str, Any] = {"sessions": [], "error": None, "transfers": moving, "transfers_error": moving_error}
    close = client is None
    try:
        client = client or configured_client(cfg)
        sessions = client.list_sessions()
    except HailEmrLabError as exc:
        out["error"] = str(exc)
        if close and client is not None:
            client.close()
        return out
    http = requests.Session()
    try:
        for session in sorted(sessions, key=lambda s: s.id):
            own = is_own(session.name, own_name)
            if not (own or include_all) or not session.state.is_alive or session.state.is_starting:
                continue
            out["sessions"].append(_session_progress(client, http, session, own))
    finally:
        http.close()
        if close:
            client.close()
    return out


def _session_progress(client: Any, http: requests.Session, session: Any, own: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "session_id": session.id,
        "name": session.name,
        "state": session.state.value,
        "own": own,
        "app_id": session.app_id,
        "spark_ui_url": safe_url(session.spark_ui_url),
        "statements": [],
        "error": None,
        "spark_error": None,
    }
    try:
        recent = client.list_statements(session.id, size=STATEMENTS_LOOKBACK, order="desc")
    except HailEmrLabError as exc:
        entry["error"] = str(exc)
        return entry
    running = sorted((st for st in recent if st.state.is_running), key=lambda st: st.id)
    entry["statements"] = [_statement_row(st) for st in running]
    if not running:
        return entry
    if not session.spark_ui_url:
        entry["spark_error"] = "Livy does not report a Spark UI for this session yet"
        return entry
    try:
        jobs, stages = spark_jobs_and_stages(session.spark_ui_url, session.app_id, http)
    except SparkRestError as exc:
        entry["spark_error"] = str(exc)
        return entry
    for row in entry["statements"]:
        row["jobs"] = jobs_for_statement(row["id"], jobs, stages)
    return entry
