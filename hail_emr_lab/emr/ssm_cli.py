"""``hail-emr-lab ssm``: a shell (or one command) on an EMR cluster's node through Systems Manager.

::

    hail-emr-lab ssm [--cluster-id ID | --cluster-name NAME] [--node master|core|task|i-...]
                     [--command CMD [--timeout S]] [--list] [--json] [--region R]

Without ``--command`` it replaces itself with ``aws ssm start-session --target ID`` (an
interactive shell; needs the Session Manager plugin). With ``--command`` it prints the
command's output and exits with its exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import ssm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``ssm`` options."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cluster-id", help="EMR cluster id, j-... (default: the configured cluster)")
    which.add_argument("--cluster-name", help="name of an active EMR cluster")
    parser.add_argument("--region", help="AWS region (default: the configuration, else boto3's)")
    parser.add_argument("--node", default="master", help="master (default), core, task, or an instance id i-...")
    parser.add_argument("--command", help="run this shell command (as root, through SSM Run Command) instead of a shell")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for --command (default 600)")
    parser.add_argument("--list", action="store_true", help="list the cluster's nodes and whether SSM manages them")
    parser.add_argument("--json", action="store_true", help="with --list or --command: print JSON")


def run(args: argparse.Namespace) -> int:
    """List nodes, run a command, or exec the interactive session; returns the exit code."""
    cluster, nodes = ssm.cluster_nodes(args.cluster_id, args.cluster_name, region=args.region)
    cid = cluster["Id"]
    region = args.region or ssm.cluster_region(cluster)
    if args.list:
        rows = [n.to_dict() for n in nodes]
        if args.json:
            print(json.dumps({"cluster_id": cid, "region": region, "nodes": rows}, indent=2))
        else:
            for n in nodes:
                managed = "ssm" if n.managed else "not managed"
                print(f"{n.instance_id}  {n.group:<6}  {n.state:<13}  {managed:<11}  {n.private_ip or '-'}")
        return 0
    node = ssm.pick_node(nodes, args.node, cid)
    ssm.require_managed(node, cid, region)
    if args.command is None:
        aws = ssm.check_session_tools()
        argv = ssm.start_session_argv(node, region, aws)
        print(f"opening a shell on {node.instance_id} ({node.group} of {cid}); exit it with 'exit'", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os.execv(aws, argv)  # the session owns the terminal from here
    result = ssm.run_command(ssm.ssm_client(region=region), node, args.command, timeout=args.timeout)
    if args.json:
        print(json.dumps({"cluster_id": cid, "region": region, **result.to_dict()}, indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        note = ssm.truncated_note(result)
        if note:
            print(note, file=sys.stderr)
        print(f"[{node.instance_id} {node.group}: {result.status}, exit code {result.exit_code}]", file=sys.stderr)
    if not result.finished:
        print(ssm.still_running_message(result, region), file=sys.stderr)
        return 124
    return result.exit_code if 0 <= result.exit_code < 256 else 1

