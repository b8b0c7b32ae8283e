"""The Cluster section's node list: the configured cluster's EC2 instances and their SSM state.

Each row carries the terminal command that opens a shell on the node (``hail-emr-lab ssm``),
for the sidebar to show and copy; the sidebar never starts a session itself.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..config import Config
from ..errors import HailEmrLabError
from .jsonable import jsonable
from .listings import aws_configured


def nodes(config: Config) -> dict[str, Any]:
    """``{"available", "cluster_id", "region", "nodes": [{instance_id, group, state, managed, ...,
    terminal_command}], "error"}`` for the configured cluster (available False without one or
    without AWS credentials; ``error`` says why)."""
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
    rows = []
    for node in found:
        row = node.to_dict()
        row["terminal_command"] = " ".join(
            shlex.quote(a) for a in ["hail-emr-lab", "ssm", "--cluster-id", cid, "--node", node.instance_id]
        )
        rows.append(row)
    out["nodes"] = jsonable(rows)
    return out
