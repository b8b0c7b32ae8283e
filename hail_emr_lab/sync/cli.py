"""``hail-emr-lab sync backup|restore|status|watch|seed|install-cron|uninstall-cron``.

Exit codes: 0 done, 1 error, 2 configuration error, 3 partial (some files could not be
synced; the others were), 75 another sync is running.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import ConfigError

ACTIONS = ("backup", "restore", "status", "watch", "seed", "install-cron", "uninstall-cron")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab sync``."""
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    # default=[]: without a default argparse lists a nargs="*" positional as required in its errors.
    parser.add_argument("paths", nargs="*", default=[], help="backup/restore only these files or directories (the on-save hook backs up one file)")
    parser.add_argument("--home", help="directory to sync (default: /home/ec2-user/SageMaker on a notebook instance)")
    parser.add_argument("--bucket", help="S3 bucket (default: config 'bucket' or HAIL_EMR_LAB_BUCKET)")
    parser.add_argument("--prefix", help="per-user prefix in the bucket (default: the notebook instance name)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="extra gitignore-style pattern to skip (repeatable)")
    parser.add_argument("--include-environments", action="store_true", default=None,
                        help="also back up Python/conda environments, node_modules and .cache folders "
                             "(skipped by default; config backup_environments, HAIL_EMR_LAB_BACKUP_ENVIRONMENTS)")
    parser.add_argument("--delete", action="store_true",
                        help="backup: move objects of locally deleted files to the remote trash")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                        help="backup: list the prefix now and upload again files whose object is gone from "
                             "S3 (default: once a day for a whole-home backup; --no-verify: never)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only errors (for cron)")
    parser.add_argument("--concurrency", type=int, default=None, help="parallel transfers (default 32)")
    parser.add_argument("--wait", type=float, default=10.0,
                        help="seconds to wait for another running sync before giving up (default 10)")
    parser.add_argument("--state-dir", help="where the state and lock live (default <home>/.hail-emr-lab-sync)")
    parser.add_argument("--trash-days", type=int, default=None,
                        help="--delete: days the remote trash keeps deleted files (default 30)")
    parser.add_argument("--debounce", type=float, default=1.0, help="watch: seconds to gather changes")


def _target(args: argparse.Namespace) -> Any:
    from .target import target_from_config

    overrides = {"home": args.home, "bucket": args.bucket, "prefix": args.prefix,
                 "backup_environments": args.include_environments}
    kwargs: dict[str, Any] = {}
    if args.concurrency is not None:
        kwargs["concurrency"] = args.concurrency
    if args.state_dir:
        kwargs["state_dir"] = args.state_dir
    if args.trash_days is not None:
        kwargs["trash_retention_days"] = args.trash_days
    target = target_from_config(overrides=overrides, require_home=args.action != "restore", **kwargs)
    if args.exclude:
        from .excludes import DEFAULT_EXCLUDES, Excludes

        target.excludes = list(target.excludes) + list(args.exclude)
        target.matcher = Excludes(DEFAULT_EXCLUDES, target.excludes, environments=target.environments)
    return target


def _progress_factory(args: argparse.Namespace) -> Any:
    from .progress import Progress, want_progress

    if args.json or not want_progress(args.quiet):
        return None
    return lambda action, files, nbytes: Progress(action, files, nbytes, enabled=True)


def _print_report(args: argparse.Namespace, report: Any) -> int:
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    elif args.quiet:
        if report.errors or report.conflicts:
            print(report.summary(), file=sys.stderr)
    else:
        print(report.summary())
    return report.exit_code


def run(args: argparse.Namespace) -> int:
    """Run one sync action; returns the exit code."""
    if args.paths and args.action not in ("backup", "restore"):
        raise ConfigError(f"file arguments are only accepted by 'backup' and 'restore', not {args.action!r}")
    if args.action == "uninstall-cron":
        from . import cron

        changed = cron.uninstall()
        if not args.quiet:
            print("removed the hail-emr-lab backup line from the crontab" if changed else "no hail-emr-lab line in the crontab")
        return 0
    target = _target(args)
    if args.action == "install-cron":
        return _install_cron(args, target)
    if args.action == "status":
        from .engine import status

        info = status(target)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            from .report import shown_all

            print(_status_text(shown_all(info)))  # names come from S3 and the disk: no raw control characters
        return 0
    if args.action == "backup":
        from .engine import backup

        return _print_report(args, backup(target, delete=args.delete, paths=args.paths or None,
                                          wait=args.wait, progress=_progress_factory(args), verify=args.verify))
    if args.action == "restore":
        from .engine import restore

        return _print_report(args, restore(target, wait=args.wait, progress=_progress_factory(args),
                                           paths=args.paths or None))
    if args.action == "seed":
        from .seed import seed

        return _print_report(args, seed(target, wait=args.wait))
    if args.action == "watch":
        from .watch import watch

        if not args.quiet:
            from .report import shown

            print(f"watching {shown(target.home)} -> {shown(target.url)} (Ctrl-C to stop)", flush=True)

        def show(report: Any) -> None:
            if report.uploaded or report.errors or report.conflicts:
                _print_report(args, report)
                sys.stdout.flush()

        try:
            watch(target, debounce=args.debounce, on_report=show)
        except KeyboardInterrupt:
            pass
        return 0
    raise ConfigError(f"unknown action {args.action!r}")  # argparse's choices make this unreachable


def _install_cron(args: argparse.Namespace, target: Any) -> int:
    """Install the 5-minute backup; flags given now (or env values) are written into the line."""
    from ..config import load_config
    from . import cron

    cfg = load_config({"home": args.home, "bucket": args.bucket, "prefix": args.prefix})
    extra: list[str] = []
    for key in ("home", "bucket", "prefix"):
        if cfg.source(key) in ("argument", "environment"):
            extra += [f"--{key}", str(getattr(target, key))]
    for pattern in args.exclude:
        extra += ["--exclude", pattern]
    if args.include_environments:
        extra += ["--include-environments"]
    if args.state_dir:
        extra += ["--state-dir", str(target.state_dir)]
    log_path = target.state_dir / "cron.log"
    target.state_dir.mkdir(parents=True, exist_ok=True)
    changed, line = cron.install(extra, log_path)
    if not args.quiet:
        print(("installed" if changed else "already installed") + f": {line}")
    return 0


def _status_text(info: dict[str, Any]) -> str:
    lines = [
        f"home:        {info['home']}",
        f"remote:      {info['url']}",
        f"last backup: {info['last_backup'] or 'never'}",
        f"last restore:{' ' + (info['last_restore'] or 'never')}",
        f"pending:     {info['pending_count']} file(s) changed since the last backup",
    ]
    lines += [f"  {p}" for p in info["pending"][:20]]
    if info["pending_count"] > 20:
        lines.append(f"  ... and {info['pending_count'] - 20} more")
    if info.get("empty_dirs_count") and info.get("folder_markers", True):
        lines.append(f"empty dirs:  {info['empty_dirs_count']} (kept as folder markers): "
                     + ", ".join(d + "/" for d in info["empty_dirs"][:5])
                     + (" ..." if info["empty_dirs_count"] > 5 else ""))
    if info.get("skipped_text"):
        lines.append(f"skipped:     {info['skipped_text']} (not work: rebuilt, not written; "
                     "--include-environments or config backup_environments backs them up)")
    for limit in info.get("server_limits", []):
        lines.append(f"limitation:  {limit}")
    for c in info["conflicts"][:20]:
        lines.append(f"conflict:    {c['path']} (other version: {c['conflict_copy']}, {c['time']})")
    for e in info["errors"][:20]:
        lines.append(f"error:       {e['path']}: {e['error']}")
    if info["running"]:
        lines.append("a sync is running now")
    return "\n".join(lines)
