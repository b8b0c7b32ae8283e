"""The progress line of a ``%%hail`` cell: state and elapsed time from the first second, then
Livy's progress bar and the Spark job and stage, and a plain record of how the cell ended.

The statement's state and fraction come from the wait loop (``LivySession.wait``'s
``on_progress``). The job and stage come from the Spark REST API of the session's application
(``/api/v1/applications/<app>/jobs`` and ``/stages``; Livy runs each statement in the Spark job
group named after its id), read in the progress line's own thread so a slow Spark UI never
delays the cell. Where the Spark UI cannot be reached from the notebook the line simply has no
job detail.
"""

from __future__ import annotations

from typing import Any, Optional

import requests

from ..errors import HailEmrLabError
from .progress import Progress, format_elapsed


def spark_line(jobs: list[dict[str, Any]]) -> Optional[str]:
    """One line for a statement's Spark jobs (rows of ``overview.progress.jobs_for_statement``):
    ``Spark job 3 running: 6/8 tasks (2 active) · stage 5: 6/8 tasks`` plus ``· job 2 of 3``."""
    if not jobs:
        return None
    running = [j for j in jobs if str(j.get("status", "")).upper() == "RUNNING"]
    job = running[-1] if running else jobs[-1]
    text = (
        f"Spark job {job.get('jobId')} {str(job.get('status', '')).lower()}: "
        f"{job.get('numCompletedTasks', 0)}/{job.get('numTasks', 0)} tasks"
    )
    if job.get("numActiveTasks"):
        text += f" ({job['numActiveTasks']} active)"
    if job.get("numFailedTasks"):
        text += f", {job['numFailedTasks']} failed"
    stages = [s for s in job.get("stages", []) if str(s.get("status", "")).upper() == "ACTIVE"]
    for stage in stages[-1:]:
        text += f" · stage {stage.get('stageId')}: {stage.get('numCompleteTasks', 0)}/{stage.get('numTasks', 0)} tasks"
    if len(jobs) > 1:
        text += f" · job {jobs.index(job) + 1} of {len(jobs)}"
    return text


class StatementProgress:
    """Progress of one statement: pass :meth:`on_progress` to ``LivySession.run``, then call
    :meth:`finish` with how it ended."""

    def __init__(self, session: Any, description: str = "hail"):
        self.session = session
        self.statement_id: Optional[int] = None
        self.state = "waiting"
        self._ui: Optional[tuple[str, Optional[str]]] = None
        self._http: Optional[requests.Session] = None
        self.bar = Progress(description, detail_source=self._spark_detail)
        self.bar.update(None, "submitting")

    def on_progress(self, statement: Any) -> None:
        """Called by the wait loop with the statement as Livy reports it."""
        self.statement_id = statement.id
        self.state = statement.state.value
        if statement.state.is_final:
            return  # the record says how it ended; a bar appears only if one was shown running
        fraction = statement.progress if statement.progress and statement.progress > 0 else self.bar.fraction
        self.bar.update(fraction, f"statement {statement.id} {self.state}")

    def _spark_detail(self) -> Optional[str]:
        from ..dashboard.progress import SparkRestError, jobs_for_statement, spark_jobs_and_stages

        if self.statement_id is None:
            return None
        try:
            if self._ui is None:
                info = self.session.info()
                if not info.spark_ui_url:
                    return None  # not reported yet: asked again at the next detail tick
                self._ui = (info.spark_ui_url, info.app_id)
            if self._http is None:
                self._http = requests.Session()
            jobs, stages = spark_jobs_and_stages(self._ui[0], self._ui[1], self._http)
        except (SparkRestError, HailEmrLabError):
            return None  # the Spark UI is not reachable from here: no job line, the cell goes on
        return spark_line(jobs_for_statement(self.statement_id, jobs, stages))

    def finish(self, outcome: str, quiet: bool = False) -> None:
        """Leave the record: ``outcome`` is ``ok``, ``error``, ``cancelled`` or ``interrupted``;
        ``quiet`` (``%%hail -q``) clears the line of a statement that finished well instead."""
        what = f"statement {self.statement_id}" if self.statement_id is not None else "the statement"
        took = format_elapsed(self.bar.elapsed, tenths=True)
        words = {
            "ok": f"{what} finished in {took}",
            "error": f"{what} failed after {took}",
            "cancelled": f"{what} was cancelled after {took}",
            "interrupted": f"{what} was interrupted after {took}",
        }
        state = "ok" if outcome == "ok" else ("error" if outcome == "error" else "cancelled")
        self.bar.finish(words.get(outcome, f"{what}: {outcome} after {took}"), state, keep=not (quiet and outcome == "ok"))
        if self._http is not None:
            self._http.close()
