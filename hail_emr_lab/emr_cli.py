"""``hail-emr-lab clusters``: active EMR clusters, their Livy URL and whether it answers."""

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
    """A plain-text table of :func:`hail_emr_lab.emr.list_clusters` rows."""
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


def run(args: argparse.Namespace) -> int:
    """List the clusters; exit code 0 even when none answers (the table says why)."""
    from .emr import list_clusters

    rows = list_clusters(region=args.region, probe_timeout=args.timeout)
    print(json.dumps(rows, indent=2, default=str) if args.json else format_table(rows))
    return 0
