"""``hail-emr-lab clusters``: active EMR clusters, their Livy URL and whether it answers; Livy-enabled
EMR Serverless applications."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab clusters``."""
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's, e.g. AWS_REGION)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for each Livy port to answer (default 2)"
    )


def format_table(rows: list[dict]) -> str:
    """A plain-text table of :func:`hail_emr_lab.emr.discovery.list_clusters` rows."""
    if not rows:
        return "No active EMR clusters in this region."
    header = ("ID", "NAME", "STATE", "LIVY URL", "ANSWERS")
    lines = [
        (
            r.get("cluster_id") or "",
            r.get("name") or "",
            r.get("state") or "",
            r.get("livy_url") or "-",
            "yes" if r.get("reachable") else f"no ({r.get('problem') or 'unknown'})",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in [header, *lines])


def serverless_rows(region: str | None) -> tuple[list[dict], str | None]:
    """Livy-enabled EMR Serverless applications (``kind`` "emr-serverless"), and why none could be listed."""
    from .serverless import ServerlessError, list_livy_applications

    try:
        return [dict(row, kind="emr-serverless") for row in list_livy_applications(region=region)], None
    except ServerlessError as exc:  # e.g. no emr-serverless:ListApplications: the clusters still show
        return [], f"EMR Serverless applications not listed: {exc}"


def format_serverless_table(apps: list[dict], note: str | None) -> str:
    """A plain-text table of :func:`serverless_rows` rows (or the note saying why there are none)."""
    if note:
        return note
    if not apps:
        return "No EMR Serverless applications with a Livy endpoint in this region."
    header = ("APPLICATION", "NAME", "STATE", "RELEASE", "LIVY URL")
    lines = [(a["application_id"], a["name"], a["state"], a["release"], a["livy_url"]) for a in apps]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    body = "\n".join(fmt.format(*row).rstrip() for row in [header, *lines])
    return "EMR Serverless applications with a Livy endpoint (%hail connect --serverless-app ID):\n" + body


def run(args: argparse.Namespace) -> int:
    """List the clusters and Livy-enabled EMR Serverless applications; exit code 0 even when none answers."""
    from .discovery import list_clusters

    rows = list_clusters(region=args.region, probe_timeout=args.timeout)
    apps, note = serverless_rows(args.region)
    if args.json:
        print(json.dumps(rows + apps, indent=2, default=str))
    else:
        print(format_table(rows) + "\n\n" + format_serverless_table(apps, note))
    return 0
