"""``%hail submit``, ``%%hail submit`` and ``%hail jobs`` (routed here by the magics).

Arguments are parsed with the command line's own parser (``hail_emr_lab.jobs.cli``), so
flags, environment variables and config keys are the same everywhere. A submitted job is
shown as a small table whose state is updated in place (an IPython display handle) by a
background thread until the job ends; the notebook stays free meanwhile.
"""

from __future__ import annotations

import argparse
import html
import secrets
import shlex
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from . import cli, manager, store
from .base import Job, JobState
from .params import JobParamError, safe_name

STATE_COLORS = {
    JobState.PENDING: "#6c757d",
    JobState.RUNNING: "#0d6efd",
    JobState.CANCELLING: "#fd7e14",
    JobState.SUCCEEDED: "#198754",
    JobState.FAILED: "#dc3545",
    JobState.CANCELLED: "#6c757d",
    JobState.UNKNOWN: "#6c757d",
}


class _Done(Exception):
    """--help was shown: nothing else to do."""


class MagicArgumentParser(argparse.ArgumentParser):
    """An argparse parser that raises instead of exiting the kernel."""

    def exit(self, status: int = 0, message: Optional[str] = None):  # type: ignore[override]
        if status == 0:
            raise _Done()
        raise JobParamError((message or "").strip() or "invalid arguments")

    def error(self, message: str):  # type: ignore[override]
        raise JobParamError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """``%hail jobs ...`` actions plus ``submit-cell`` (``%%hail submit``: no FILE)."""
    parser = MagicArgumentParser(prog="%hail jobs", description="batch jobs from the notebook")
    cli.add_arguments(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cli.add_submit_parser(sub, "submit-cell", with_file=False, prog="%%hail submit")
    return parser


def cell_script_path(name: Optional[str]) -> Path:
    """Where a ``%%hail submit`` cell is saved (kept, so one can see what ran)."""
    base = store.store_path().parent / "scripts"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    path = base / stamp / f"{safe_name(name) if name else 'cell'}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def render_html(jobs: list[Job]) -> str:
    """Jobs as an HTML table (everything escaped: names and messages come from services)."""
    rows = []
    for job in jobs:
        color = STATE_COLORS.get(job.state, "#6c757d")
        native = f" <small>({html.escape(job.native_state)})</small>" if job.native_state else ""
        message = f"<br><small>{html.escape(job.message)}</small>" if job.message else ""
        rows.append(
            "<tr>"
            f"<td><code>{html.escape(job.id)}</code></td><td>{html.escape(job.backend)}</td>"
            f"<td>{html.escape(job.name)}</td>"
            f'<td><span style="color:{color};font-weight:bold">{job.state.value}</span>{native}{message}</td>'
            f"<td>{html.escape(job.submitted)}</td><td>{html.escape(job.updated)}</td>"
            "</tr>"
        )
    head = "<tr><th>id</th><th>backend</th><th>name</th><th>state</th><th>submitted</th><th>updated</th></tr>"
    return f'<table class="hail-emr-lab-jobs">{head}{"".join(rows)}</table>'


class JobTable:
    """A list of jobs for display (HTML in the notebook, text elsewhere)."""

    def __init__(self, jobs: list[Job]):
        self.jobs = jobs

    def _repr_html_(self) -> str:
        return render_html(self.jobs) if self.jobs else "<i>no jobs</i>"

    def __repr__(self) -> str:
        return cli.format_table(self.jobs) if self.jobs else "no jobs"


class JobView:
    """One job, displayed with a handle and kept up to date by a watcher thread."""

    def __init__(self, job: Job, watch: bool = True, livy_client: Any = None):
        self.job = job
        self.livy_client = livy_client
        self.watch = watch and not job.state.is_final
        self.handle: Any = None
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[str] = None

    def _repr_html_(self) -> str:
        return render_html([self.job])

    def __repr__(self) -> str:
        return cli.format_job(self.job)

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        self.handle = display(HTML(self._repr_html_()), display_id=True)
        if self.watch:
            self.start()

    def _update(self, job: Job) -> None:
        self.job = job
        if self.handle is not None:
            from IPython.display import HTML

            self.handle.update(HTML(self._repr_html_()))

    def start(self) -> threading.Thread:
        """Poll the job in the background until it ends, updating the display."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._watch, name=f"job-watch-{self.job.id}", daemon=True)
            self.thread.start()
        return self.thread

    def _watch(self) -> None:
        try:
            backend, job = manager.locate(self.job.id, self.job.backend, livy_client=self.livy_client)
            final = backend.wait(job, on_change=self._save_and_update)
            self._save_and_update(final)
        except Exception as exc:  # a thread has nobody to raise to: show the failure in the table
            self.error = str(exc)
            stale = Job.from_dict(self.job.to_dict())
            stale.message = f"stopped following: {exc}"
            self._update(stale)

    def _save_and_update(self, job: Job) -> None:
        store.save(job)
        self._update(job)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return cli.flags_of(args)


def run_magic(subcommand: str, line: str, cell: Optional[str] = None, livy_client: Any = None) -> object:
    """Entry point for the magics: ``subcommand`` is ``"submit"`` or ``"jobs"``; ``line`` the
    rest of the magic line; ``cell`` the body for ``%%hail submit`` (it becomes the script);
    ``livy_client``: the notebook's connected Livy client, used by ``--backend livy`` when no
    other endpoint is named.

    Returns what the notebook should display: a :class:`JobView` (updated in place), a
    :class:`JobTable`, or None after printing logs.
    """
    try:
        tokens = shlex.split(line or "", posix=True)
    except ValueError as exc:
        raise JobParamError(f"cannot parse the magic line ({exc}); check the quotes") from None
    if subcommand == "submit":
        tokens = ["submit-cell" if cell is not None else "submit", *tokens]
    elif subcommand == "jobs":
        tokens = tokens or ["list"]
        if tokens[0] == "submit" and cell is not None:
            tokens[0] = "submit-cell"
    else:
        raise JobParamError(f"unknown jobs subcommand {subcommand!r}: use submit or jobs")
    parser = build_parser()
    try:
        args = parser.parse_args(tokens)
    except _Done:
        return None
    if args.action == "submit-cell":
        if not (cell or "").strip():
            raise JobParamError("%%hail submit: the cell is empty; write the job's Python code in it")
        path = cell_script_path(args.name)
        path.write_text(cell if cell.endswith("\n") else cell + "\n", encoding="utf-8")
        args.file, args.action = str(path), "submit"
    return _dispatch(args, livy_client)


def _submit(args: argparse.Namespace, flags: dict[str, Any], client: Any) -> object:
    job = manager.submit(
        args.backend, args.file, args.args, flags, name=args.name, py_files=args.py_files, conf=args.conf,
        livy_client=client,
    )
    view = JobView(job, watch=not (args.wait or args.follow), livy_client=client)
    if args.follow:
        for line in manager.logs(job.id, job.backend, flags, follow=True, livy_client=client):
            print(line, flush=True)
    if args.wait or args.follow:
        backend, _ = manager.locate(job.id, job.backend, flags, client)
        view.job = backend.wait(job)
        store.save(view.job)
    return view


def _logs(args: argparse.Namespace, flags: dict[str, Any], client: Any) -> None:
    stream = "stderr" if args.stderr else "stdout"
    for line in manager.logs(args.id, args.backend, flags, follow=args.follow, stream=stream, livy_client=client):
        print(line, file=sys.stdout, flush=True)


#: action -> what it shows: ``(args, flags, the notebook's Livy client) -> display object``.
ACTIONS: dict[str, Callable[[argparse.Namespace, dict[str, Any], Any], object]] = {
    "submit": _submit,
    "list": lambda args, flags, client: JobTable(
        manager.list_jobs(args.backend, flags, limit=args.limit, refresh=args.refresh, livy_client=client)
    ),
    "status": lambda args, flags, client: JobView(
        manager.status(args.id, args.backend, flags, client), livy_client=client
    ),
    "cancel": lambda args, flags, client: JobView(
        manager.cancel(args.id, args.backend, flags, client), watch=True, livy_client=client
    ),
    "logs": _logs,
    "config": lambda args, flags, client: print(cli.format_settings(flags)),
}


def _dispatch(args: argparse.Namespace, client: Any = None) -> object:
    action = ACTIONS.get(args.action)
    if action is None:
        raise JobParamError(f"unknown jobs action {args.action!r}")
    return action(args, _flags(args), client)
