"""``hail-emr-lab jobs``: submit and follow batch jobs on Livy, EMR Serverless, EMR on EKS and
AWS Batch.

Commands::

    hail-emr-lab jobs submit --backend B FILE [ARGS...] [options]
    hail-emr-lab jobs list [--backend B] [--refresh]
    hail-emr-lab jobs status ID
    hail-emr-lab jobs logs ID [--follow] [--stderr]
    hail-emr-lab jobs cancel ID
    hail-emr-lab jobs config [options]     the settings in effect, with their sources

Every backend option can also come from the environment or the config file, in the order of
every hail-emr-lab setting (``hail_emr_lab.config``): flag, environment, ``"jobs"`` object of
``~/.hail-emr-lab/config.json``; ``url``, ``bucket``, ``prefix`` and ``region`` take the general
setting when that comes from a stronger source:

====================================  =========================================================
HAIL_EMR_LAB_JOBS_URL                 Livy URL (falls back to HAIL_EMR_LAB_LIVY_URL / livy_url)
HAIL_EMR_LAB_JOBS_BUCKET              S3 bucket for job files and logs (falls back to bucket)
HAIL_EMR_LAB_JOBS_PREFIX              per-user S3 prefix (falls back to prefix)
HAIL_EMR_LAB_JOBS_REGION              AWS region (falls back to region)
HAIL_EMR_LAB_JOBS_LOG_URI             S3 URI for EMR driver logs
HAIL_EMR_LAB_JOBS_DRIVER_MEMORY       e.g. 4g      (also _EXECUTOR_MEMORY)
HAIL_EMR_LAB_JOBS_DRIVER_CORES        e.g. 2       (also _EXECUTOR_CORES, _NUM_EXECUTORS)
HAIL_EMR_LAB_JOBS_APPLICATION_ID      EMR Serverless application id
HAIL_EMR_LAB_JOBS_EXECUTION_ROLE_ARN  job role (EMR Serverless, EMR on EKS)
HAIL_EMR_LAB_JOBS_HAIL_ARCHIVE        s3://.../pyspark_hail.tar.gz (--archives ...#environment)
HAIL_EMR_LAB_JOBS_HAIL_JAR            s3://.../hail-all-spark.jar (--jars)
HAIL_EMR_LAB_JOBS_VIRTUAL_CLUSTER_ID  EMR on EKS virtual cluster
HAIL_EMR_LAB_JOBS_RELEASE_LABEL       EMR on EKS release, default emr-6.15.0-latest
HAIL_EMR_LAB_JOBS_DRIVER_POD_TEMPLATE / _EXECUTOR_POD_TEMPLATE   EMR on EKS pod templates
HAIL_EMR_LAB_JOBS_JOB_QUEUE           AWS Batch job queue
HAIL_EMR_LAB_JOBS_JOB_DEFINITION      AWS Batch job definition
HAIL_EMR_LAB_JOBS_COMMAND             AWS Batch command template ({file}, {args})
HAIL_EMR_LAB_JOBS_VCPUS / _MEMORY     AWS Batch container overrides
HAIL_EMR_LAB_JOBS_LOG_GROUP           AWS Batch CloudWatch log group, default /aws/batch/job
HAIL_EMR_LAB_JOBS_STORE               file of the local job list (default ~/.hail-emr-lab/jobs/jobs.jsonl)
====================================  =========================================================
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, TextIO

from ..config import job_env_name, job_flag_name
from . import manager
from .base import Job
from .params import PARAMS, JobParamError, Settings

#: parameters that locate an existing job (accepted by status/logs/cancel/list)
LOCATION_PARAMS = ("url", "region", "application_id", "virtual_cluster_id", "job_queue", "log_uri", "log_group")
GROUPS = {
    "livy": "Livy batches (--backend livy)",
    "emr-serverless": "EMR Serverless (--backend emr-serverless)",
    "emr-eks": "EMR on EKS (--backend emr-eks)",
    "aws-batch": "AWS Batch (--backend aws-batch)",
}

EPILOG = (
    "Each option may also be set by the environment variable HAIL_EMR_LAB_JOBS_<OPTION> (e.g. "
    "HAIL_EMR_LAB_JOBS_EXECUTION_ROLE_ARN) or by the key <option> (e.g. execution_role_arn) in the \"jobs\" "
    "object of ~/.hail-emr-lab/config.json. Values are checked before anything is uploaded or submitted."
)


def _add_params(parser: argparse.ArgumentParser, names) -> None:
    groups: dict[str, Any] = {}
    for name in names:
        param = PARAMS[name]
        key = param.backends[0] if len(param.backends) == 1 else "common"
        if key not in groups:
            title = GROUPS.get(key, "where and how big (several backends)")
            groups[key] = parser.add_argument_group(title)
        groups[key].add_argument(
            job_flag_name(name),
            dest=name,
            metavar=param.metavar or name.upper(),
            default=None,
            help=f"{param.help} [env {job_env_name(name)}]",
        )


def add_submit_parser(sub: Any, action: str, with_file: bool, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``submit`` options; without FILE for ``%%hail submit`` (the cell is the script).
    ``prog``: the name shown in usage lines (default: the parent's name and ``action``)."""
    help_text = "submit FILE as a job" if with_file else "submit the cell as a job (%%hail submit)"
    extra = {"prog": prog} if prog else {}
    p = sub.add_parser(
        action, help=help_text, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, **extra
    )
    p.add_argument("--backend", "-b", required=True, choices=manager.BACKENDS, help="where the job runs")
    if with_file:
        p.add_argument(
            "file",
            metavar="FILE",
            help="entry point: a local file (uploaded when needed) or an s3:// URI; options go before FILE, "
            "everything after it is passed to the script",
        )
    p.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments passed to the entry point")
    p.add_argument("--name", help="job name (default: <file stem>-<time>-<random>)")
    p.add_argument("--py-files", action="append", default=[], metavar="FILE", help="extra Python files (repeatable)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="Spark conf (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait until the job ends; exit 1 if it did not succeed")
    p.add_argument("--follow", action="store_true", help="print the driver log until the job ends")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    _add_params(p, PARAMS)
    return p


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``jobs`` subcommands and their options (shared with ``%hail submit`` / ``%hail jobs``)."""
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    add_submit_parser(sub, "submit", with_file=True)

    p = sub.add_parser("list", help="jobs submitted from here (or, with --backend, on the service)", epilog=EPILOG)
    p.add_argument("--backend", "-b", choices=manager.BACKENDS, help="ask this service instead of the local list")
    p.add_argument("--refresh", action="store_true", help="ask the services for the state of unfinished jobs")
    p.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_params(p, LOCATION_PARAMS)

    p = sub.add_parser("config", help="the job settings in effect and where each came from", epilog=EPILOG)
    _add_params(p, PARAMS)

    for action, text in (("status", "show a job's state"), ("cancel", "cancel a job"), ("logs", "print a job's log")):
        p = sub.add_parser(action, help=text, epilog=EPILOG)
        p.add_argument("id", metavar="ID", help="job id (or a unique prefix of it, or its name)")
        p.add_argument("--backend", "-b", choices=manager.BACKENDS, help="for jobs not submitted from here")
        if action == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
            p.add_argument("--stderr", action="store_true", help="the driver's stderr instead of stdout (EMR)")
        else:
            p.add_argument("--json", action="store_true", help="print JSON")
        _add_params(p, LOCATION_PARAMS)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """The backend parameters given on the command line."""
    return {name: getattr(args, name) for name in PARAMS if getattr(args, name, None) is not None}


def format_table(jobs: list[Job]) -> str:
    """Jobs as an aligned text table."""
    rows = [("ID", "BACKEND", "STATE", "NAME", "SUBMITTED")]
    rows += [(j.id, j.backend, j.state.value, j.name, j.submitted) for j in jobs]
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_job(job: Job) -> str:
    """One job as ``key: value`` lines."""
    lines = [
        f"id:        {job.id}",
        f"backend:   {job.backend}",
        f"name:      {job.name}",
        f"state:     {job.state.value}" + (f" ({job.native_state})" if job.native_state else ""),
        f"submitted: {job.submitted}",
        f"updated:   {job.updated}",
    ]
    if job.message:
        lines.append(f"message:   {job.message}")
    lines += [f"{k + ':':<10} {v}" for k, v in sorted(job.details.items()) if v]
    return "\n".join(lines)


def format_settings(flags: Optional[dict[str, Any]] = None) -> str:
    """The resolved job settings as ``key  value  source`` lines: the ``jobs.*`` rows of
    ``%hail config`` (:meth:`hail_emr_lab.config.Config.as_dict`), then a warning for the
    ``"jobs"`` object of the config file or each value that ``submit`` would refuse."""
    from ..config import load_config

    config = load_config(job_overrides=flags)
    rows = [("KEY", "VALUE", "SOURCE")]
    rows += [(k, str(v["value"]), v["source"]) for k, v in config.as_dict().items() if k.startswith("jobs.")]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}".rstrip() for r in rows]
    if config.jobs.problem:
        lines.append(f"Warning: {config.jobs.problem}")
    else:
        lines += [f"Warning: {problem}" for problem in invalid_settings(Settings(flags, config=config))]
    return "\n".join(lines)


def invalid_settings(settings: Settings) -> list[str]:
    """What is wrong with each job setting that has a value (the message ``submit`` would give)."""
    problems = []
    for name in settings.section.values:
        try:
            settings.get(name)
        except JobParamError as exc:
            problems.append(str(exc))
    return problems


def _emit(args: argparse.Namespace, job: Job, out: TextIO) -> None:
    print(json.dumps(job.to_dict(), indent=2) if getattr(args, "json", False) else format_job(job), file=out)


def _submit(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Optional[Callable[[Job], None]]) -> int:
    job = manager.submit(args.backend, args.file, args.args, flags, name=args.name, py_files=args.py_files, conf=args.conf)
    if not args.json:
        print(f"submitted {job.backend} job {job.id} ({job.name}): {job.state.value}", file=out)
    if args.follow:
        for line in manager.logs(job.id, job.backend, flags, follow=True):
            print(line, file=out, flush=True)
    waited = args.wait or args.follow
    if waited:
        be, _ = manager.locate(job.id, job.backend, flags)
        job = be.wait(job, on_change=on_change or (lambda j: print(f"{j.id}: {j.state.value}", file=out, flush=True)))
        manager.store.save(job)
    if args.json:
        _emit(args, job, out)
    elif waited:
        print(f"job {job.id} ended {job.state.value}" + (f": {job.message}" if job.message else ""), file=out)
    return 0 if not waited or job.state.value == "SUCCEEDED" else 1


def _list(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Any) -> int:
    jobs = manager.list_jobs(args.backend, flags, limit=args.limit, refresh=args.refresh)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2), file=out)
    elif jobs:
        print(format_table(jobs), file=out)
    else:
        print("no jobs" + ("" if args.backend else " submitted from here yet"), file=out)
    return 0


def _status(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Any) -> int:
    _emit(args, manager.status(args.id, args.backend, flags), out)
    return 0


def _cancel(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Any) -> int:
    _emit(args, manager.cancel(args.id, args.backend, flags), out)
    return 0


def _logs(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Any) -> int:
    stream = "stderr" if args.stderr else "stdout"
    for line in manager.logs(args.id, args.backend, flags, follow=args.follow, stream=stream):
        print(line, file=out, flush=True)
    return 0


def _config(args: argparse.Namespace, flags: dict[str, Any], out: TextIO, on_change: Any) -> int:
    print(format_settings(flags), file=out)
    return 0


#: action -> ``(args, flags, out, on_change) -> exit code``; argparse allows only these actions.
ACTIONS: dict[str, Callable[[argparse.Namespace, dict[str, Any], TextIO, Any], int]] = {
    "submit": _submit,
    "list": _list,
    "status": _status,
    "cancel": _cancel,
    "logs": _logs,
    "config": _config,
}


def run(args: argparse.Namespace, out: Optional[TextIO] = None, on_change: Optional[Callable[[Job], None]] = None) -> int:
    """Run one ``jobs`` action; returns the exit code."""
    return ACTIONS[args.action](args, flags_of(args), out or sys.stdout, on_change)
