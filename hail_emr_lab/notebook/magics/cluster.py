"""Handlers that look at the cluster from the outside: ``%hail clusters``, ``%hail ssm``, ``%hail panel``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Optional

from .errors import HailMagicError
from .render import print_text, table, warn

if TYPE_CHECKING:
    from .core import HailMagics


def clusters(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail clusters [--region R] [--timeout S]``: active EMR clusters (does their Livy answer?)
    and EMR Serverless applications."""
    from ...emr.cli import format_serverless_table, serverless_rows
    from ...emr.discovery import list_clusters

    rows = list_clusters(region=args.region, probe_timeout=args.timeout)
    apps, note = serverless_rows(args.region)
    if not rows:
        print_text("No active EMR clusters in this region.")
    for r in rows:
        r["answers"] = "yes" if r.get("reachable") else f"no ({r.get('problem') or '?'})"
    if rows:
        table(rows, ["cluster_id", "name", "state", "livy_url", "answers"])
    print_text(format_serverless_table(apps, note))


def ssm(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail ssm --command CMD [--node ...]``: run CMD on a cluster node with SSM Run Command;
    fails the cell when it does not finish or exits non-zero."""
    from ...emr import ssm as run  # imported when asked: %load_ext stays fast

    cluster, nodes = run.cluster_nodes(args.cluster_id, args.cluster_name, region=args.region)
    region = args.region or run.cluster_region(cluster)
    node = run.pick_node(nodes, args.node, cluster["Id"])
    run.require_managed(node, cluster["Id"], region)
    result = run.run_command(run.ssm_client(region=region), node, args.command, timeout=args.timeout)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    if result.stderr:
        warn(result.stderr)
    note = run.truncated_note(result)
    if note:
        warn(note)
    if not result.finished:
        raise HailMagicError(run.still_running_message(result, region))
    print_text(f"[{node.instance_id} {node.group}: {result.status}, exit code {result.exit_code}]")
    if result.exit_code != 0:
        raise HailMagicError(f"the command exited with code {result.exit_code} on {node.instance_id} ({node.group})")


def panel(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail panel``: the sidebar's sections as widgets in the notebook."""
    from ..panel import show_panel  # imported when asked: %load_ext stays fast

    show_panel()
