"""The Cluster section's node list: the configured cluster's EC2 instances and their SSM state.

Each row carries the terminal command that opens a shell on the node (``hail-emr-lab ssm``),
for the sidebar to show and copy, and whether that command can open one (``shell``, decided by
:func:`hail_emr_lab.emr.ssm.require_managed`, the rule the command itself applies, with its reason
when not); the sidebar never starts a session itself and never decides this on its own.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..config import Config
from ..errors import HailEmrLabError
from .jsonable import jsonable
from .listings import aws_configured


def nodes(config: Config) -> dict[str, Any]:
    """The ``Nodes`` payload (``hail_emr_lab.dashboard.payloads``) of the configured cluster:
    ``{"available", "cluster_id", "region", "nodes": [NodeRow], "error"}`` (available False
    without a cluster or without AWS credentials; ``error`` says why)."""
    out: dict[str, Any] = {"available": False, "cluster_id": None, "region": None, "nodes": [], "error": None}
    if not (config.get("cluster_id") or config.get("cluster_name")):
        out["error"] = "no EMR cluster configured (cluster_id or cluster_name): nodes are listed for it"
        return out
    ok, why = aws_configured()
    if not ok:
        out["error"] = why
        return out
    from ..emr import ssm

    try:
        cluster, found = ssm.cluster_nodes(config.get("cluster_id"), config.get("cluster_name"), region=config.get("region"))
    except HailEmrLabError as exc:
        out["error"] = str(exc)
        return out
    cid = cluster["Id"]
    out.update(available=True, cluster_id=cid, region=ssm.cluster_region(cluster))
    out["nodes"] = jsonable([node_row(node, cid, out["region"]) for node in found])
    return out


def node_row(node: Any, cluster_id: str, region: str) -> dict[str, Any]:
    """One ``NodeRow``: ``node`` (an ``emr.ssm.Node``) as plain data, the ``hail-emr-lab ssm``
    command for it, ``shell`` (whether that command can open a shell there) and
    ``no_shell_reason`` (why not, with what to do; None when it can)."""
    from ..emr import ssm

    row = node.to_dict()
    row["terminal_command"] = " ".join(
        shlex.quote(a) for a in ["hail-emr-lab", "ssm", "--cluster-id", cluster_id, "--node", node.instance_id]
    )
    try:
        ssm.require_managed(node, cluster_id, region)
    except ssm.SsmError as exc:
        row.update(shell=False, no_shell_reason=str(exc))
    else:
        row.update(shell=True, no_shell_reason=None)
    return row
