"""A shell on an EMR cluster's nodes through AWS Systems Manager (no SSH keys, no open ports).

What the Quick Start's ``bin/ssm`` script did, with clear errors:

* :func:`cluster_nodes`: the cluster's instances by group (EMR ``ListInstances`` per
  instance-group type, or per instance-fleet type), each marked SSM-managed or not
  (``ssm:DescribeInstanceInformation``);
* :func:`pick_node`: ``master`` / ``core`` / ``task`` / an instance id -> one running node;
* :func:`start_session_argv`: the ``aws ssm start-session --target ID`` command line of an
  interactive shell (the AWS CLI and its Session Manager plugin do the websocket);
* :func:`run_command`: a command through SSM Run Command (document ``AWS-RunShellScript``),
  waited for, with its output and exit code.

Every function takes an optional ``boto3_session`` so tests point it at moto.
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from ..aws_errors import aws_error, error_code
from .discovery import EmrError, emr_client, emr_error, find_cluster

#: EMR node types, in the order they are listed.
GROUPS = ("MASTER", "CORE", "TASK")
#: ``--node`` words (the EMR console says "primary" for the master on newer releases).
NODE_WORDS = {"master": "MASTER", "primary": "MASTER", "core": "CORE", "task": "TASK"}
#: Run Command document for shell commands on Linux (AWS-owned).
RUN_SHELL_DOCUMENT = "AWS-RunShellScript"
#: Statuses after which a command invocation changes no more (SSM API reference, GetCommandInvocation).
FINAL_STATUSES = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
#: SSM keeps at most this many characters of stdout / stderr in GetCommandInvocation.
OUTPUT_LIMIT = 24000
PLUGIN = "session-manager-plugin"
PLUGIN_DOCS = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"


class SsmError(EmrError):
    """No such node, a node SSM does not manage, Run Command failed, or AWS denied access."""


@dataclass
class Node:
    """One EC2 instance of an EMR cluster, as EMR and SSM see it."""

    instance_id: str
    group: str  # MASTER, CORE or TASK
    state: str  # EMR instance state: PROVISIONING, BOOTSTRAPPING, RUNNING, TERMINATED, ...
    private_ip: Optional[str] = None
    private_dns: Optional[str] = None
    managed: Optional[bool] = None  # registered with SSM (None: could not ask)
    ping_status: Optional[str] = None  # SSM agent: Online, ConnectionLost, Inactive

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the AWS CLI command that opens a shell on this node."""
        out = asdict(self)
        out["aws_command"] = " ".join(shlex.quote(a) for a in ["aws", "ssm", "start-session", "--target", self.instance_id])
        return out


def _session(boto3_session: Any = None) -> Any:
    import boto3

    return boto3_session or boto3.session.Session()


def ssm_client(boto3_session: Any = None, region: Optional[str] = None) -> Any:
    """An SSM client (honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SSM``)."""
    session = _session(boto3_session)
    return session.client("ssm", region_name=region or session.region_name or "us-east-1")


#: What an AccessDenied from Systems Manager needs.
SSM_DENIED_HINT = (
    "The notebook's role needs the Systems Manager actions of `hail-emr-lab lifecycle iam-policy --ssm` "
    "(ssm:DescribeInstanceInformation, ssm:SendCommand, ssm:GetCommandInvocation, ssm:StartSession)."
)


def _ssm_error(exc: BaseException, what: str) -> SsmError:
    return aws_error(exc, what, SSM_DENIED_HINT, SsmError)  # type: ignore[return-value]


def list_instances(client: Any, cluster: dict[str, Any]) -> list[Node]:
    """Every instance of ``cluster`` (a DescribeCluster answer) with its group, master first."""
    fleets = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    nodes: dict[str, Node] = {}
    for group in GROUPS:
        selector = {"InstanceFleetType": group} if fleets else {"InstanceGroupTypes": [group]}
        try:
            pages = client.get_paginator("list_instances").paginate(ClusterId=cluster["Id"], **selector)
            instances = [i for page in pages for i in page.get("Instances") or []]
        except Exception as exc:
            raise emr_error(exc, f"listing the instances of {cluster['Id']}", SsmError) from None
        for inst in instances:
            iid = inst.get("Ec2InstanceId")
            if iid and iid not in nodes:
                nodes[iid] = Node(
                    instance_id=iid,
                    group=group,
                    state=(inst.get("Status") or {}).get("State", "UNKNOWN"),
                    private_ip=inst.get("PrivateIpAddress"),
                    private_dns=inst.get("PrivateDnsName"),
                )
    return sorted(nodes.values(), key=lambda n: (GROUPS.index(n.group), n.state != "RUNNING", n.instance_id))


def mark_managed(ssm: Any, nodes: list[Node]) -> None:
    """Set ``managed`` and ``ping_status`` of ``nodes`` from ``ssm:DescribeInstanceInformation``."""
    ids = [n.instance_id for n in nodes]
    seen: dict[str, str] = {}
    for start in range(0, len(ids), 50):  # the InstanceIds filter takes at most 50 values
        try:
            pages = ssm.get_paginator("describe_instance_information").paginate(
                Filters=[{"Key": "InstanceIds", "Values": ids[start : start + 50]}]
            )
            for page in pages:
                for info in page.get("InstanceInformationList") or []:
                    seen[info["InstanceId"]] = info.get("PingStatus", "Unknown")
        except Exception as exc:
            raise _ssm_error(exc, "asking Systems Manager which nodes it manages") from None
    for node in nodes:
        node.ping_status = seen.get(node.instance_id)
        node.managed = node.instance_id in seen


def cluster_nodes(
    cluster_id: Optional[str] = None,
    cluster_name: Optional[str] = None,
    boto3_session: Any = None,
    region: Optional[str] = None,
    check_ssm: bool = True,
) -> tuple[dict[str, Any], list[Node]]:
    """``(DescribeCluster answer, nodes)`` of a cluster; the configured cluster when none is given.

    Raises :class:`SsmError` (no cluster configured or found, AWS denied access).
    """
    if not cluster_id and not cluster_name:
        from ..config import load_config

        config = load_config()
        cluster_id, cluster_name = config.get("cluster_id"), config.get("cluster_name")
        region = region or config.get("region")
        if not cluster_id and not cluster_name:
            raise SsmError(
                "which cluster? Give --cluster-id j-... or --cluster-name NAME, or set cluster_id in "
                "~/.hail-emr-lab/config.json (HAIL_EMR_LAB_CLUSTER_ID); 'hail-emr-lab clusters' lists the active ones."
            )
    session = _session(boto3_session)
    client = emr_client(session, region)
    cluster = find_cluster(cluster_id, cluster_name, client=client)
    nodes = list_instances(client, cluster)
    if check_ssm and nodes:
        mark_managed(ssm_client(session, client.meta.region_name), nodes)
    return cluster, nodes


def cluster_region(cluster: dict[str, Any]) -> str:
    """The cluster's region, from its ARN (``arn:aws:elasticmapreduce:REGION:ACCOUNT:cluster/ID``)."""
    parts = (cluster.get("ClusterArn") or "").split(":")
    if len(parts) > 3 and parts[3]:
        return parts[3]
    return _session().region_name or "us-east-1"


def pick_node(nodes: list[Node], node: str, cluster_id: str) -> Node:
    """The node ``node`` names (master/primary, core, task: the first running one; or an instance id)."""
    word = node.strip().lower()
    if word.startswith("i-"):
        match = [n for n in nodes if n.instance_id.lower() == word]
        if not match:
            shown = ", ".join(f"{n.instance_id} ({n.group})" for n in nodes) or "none"
            raise SsmError(f"{node} is not an instance of cluster {cluster_id} (its instances: {shown})")
        chosen = match[0]
    elif word in NODE_WORDS:
        group = [n for n in nodes if n.group == NODE_WORDS[word]]
        if not group:
            raise SsmError(f"cluster {cluster_id} has no {word} nodes")
        chosen = group[0]  # running ones sort first
    else:
        raise SsmError(f"--node {node!r}: give master, core, task or an instance id (i-...)")
    if chosen.state != "RUNNING":
        raise SsmError(
            f"{chosen.instance_id} ({chosen.group} of {cluster_id}) is {chosen.state}, not RUNNING: no shell can "
            "reach it; pick another node with --node (the sidebar's Cluster section lists them)."
        )
    return chosen


def not_managed_message(node: Node, cluster_id: str, region: str) -> str:
    """Why SSM cannot reach ``node``, and what to do about each cause."""
    where = f"{node.instance_id} ({node.group} of {cluster_id})"
    if node.managed and node.ping_status not in (None, "Online"):
        head = f"the SSM agent on {where} is registered but {node.ping_status}: it has stopped answering."
    else:
        head = f"{where} is not managed by AWS Systems Manager, so no session or command can reach it."
    return (
        f"{head} Usual causes:\n"
        "  1. the SSM agent is not running on the node (EMR AMIs ship it: "
        "`sudo systemctl status amazon-ssm-agent`, start it from a bootstrap action if needed);\n"
        "  2. the cluster's EC2 instance profile (e.g. EMR_EC2_DefaultRole) lacks the managed policy "
        "AmazonSSMManagedInstanceCore: attach it, then wait a few minutes for the agent to register;\n"
        "  3. the cluster is in a private subnet without internet access and the VPC has no interface "
        f"endpoints for SSM: create com.amazonaws.{region}.ssm, com.amazonaws.{region}.ssmmessages and "
        f"com.amazonaws.{region}.ec2messages."
    )


def require_managed(node: Node, cluster_id: str, region: str) -> None:
    """Raise :class:`SsmError` with :func:`not_managed_message` unless ``node`` answers SSM."""
    if not node.managed or node.ping_status not in (None, "Online"):
        raise SsmError(not_managed_message(node, cluster_id, region))


def start_session_argv(node: Node, region: str, aws: str = "aws") -> list[str]:
    """The interactive shell's command line: ``aws ssm start-session --target ID --region R``."""
    return [aws, "ssm", "start-session", "--target", node.instance_id, "--region", region]


def check_session_tools() -> str:
    """The ``aws`` CLI's path; raises :class:`SsmError` if it or the Session Manager plugin is missing."""
    aws = shutil.which("aws")
    if not aws:
        raise SsmError("the AWS CLI (aws) is not on PATH: an interactive session needs it (pip install awscli)")
    if not shutil.which(PLUGIN):
        raise SsmError(
            f"the Session Manager plugin ({PLUGIN}) is not installed, and `aws ssm start-session` needs it. "
            "On a SageMaker notebook, render the lifecycle scripts with `hail-emr-lab lifecycle render --ssm`; "
            f"elsewhere see {PLUGIN_DOCS}. Non-interactive commands work without it: --command CMD."
        )
    return aws


@dataclass
class CommandResult:
    """What SSM Run Command reported for one command on one node."""

    command_id: str
    instance_id: str
    status: str  # Success, Failed, Cancelled, TimedOut (or the last status seen when we stopped waiting)
    exit_code: int  # the shell's exit code; -1 when the command did not run to the end
    stdout: str
    stderr: str

    @property
    def finished(self) -> bool:
        """Whether SSM reported a final status (False: still running when we stopped waiting)."""
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON)."""
        return {**asdict(self), "finished": self.finished}


def run_command(
    ssm: Any,
    node: Node,
    command: str,
    timeout: float = 600.0,
    poll: float = 1.0,
    on_wait: Optional[Callable[[str], None]] = None,
) -> CommandResult:
    """Run ``command`` with bash on ``node`` through SSM Run Command; wait up to ``timeout`` seconds.

    The node runs it as root in ``/`` (``AWS-RunShellScript``). SSM keeps only the first
    24,000 characters of each stream. When ``timeout`` passes first, the result has the last
    status seen (``finished`` False): the command may still be running on the node.
    Raises :class:`SsmError` when SSM refuses the command.
    """
    try:
        sent = ssm.send_command(
            InstanceIds=[node.instance_id],
            DocumentName=RUN_SHELL_DOCUMENT,
            Parameters={"commands": [command]},
            Comment="hail-emr-lab ssm",
            TimeoutSeconds=max(30, int(timeout)),
        )
    except Exception as exc:
        raise _ssm_error(exc, f"sending the command to {node.instance_id}") from None
    command_id = sent["Command"]["CommandId"]
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while True:
        try:
            answer = ssm.get_command_invocation(CommandId=command_id, InstanceId=node.instance_id)
        except Exception as exc:
            # Right after SendCommand the invocation may not exist yet (SSM API reference).
            if error_code(exc) != "InvocationDoesNotExist":
                raise _ssm_error(exc, f"reading the result of command {command_id}") from None
        status = answer.get("Status", "Pending")
        if status in FINAL_STATUSES or time.monotonic() >= deadline:
            break
        if on_wait:
            on_wait(status)
        time.sleep(poll)
    code = answer.get("ResponseCode", -1)
    return CommandResult(
        command_id=command_id,
        instance_id=node.instance_id,
        status=status,
        exit_code=int(code) if code is not None else -1,
        stdout=answer.get("StandardOutputContent") or "",
        stderr=answer.get("StandardErrorContent") or "",
    )


def still_running_message(result: CommandResult, region: str) -> str:
    """What to tell the user when we stopped waiting for a command that may still run."""
    return (
        f"stopped waiting for command {result.command_id} on {result.instance_id} (status {result.status}): "
        "it may still be running on the node. Its result: aws ssm get-command-invocation "
        f"--command-id {result.command_id} --instance-id {result.instance_id} --region {region}"
    )


def truncated_note(result: CommandResult) -> Optional[str]:
    """A note when SSM cut the output at its 24,000-character limit (else None)."""
    if max(len(result.stdout), len(result.stderr)) >= OUTPUT_LIMIT:
        return (
            f"(SSM returns only the first {OUTPUT_LIMIT} characters of each stream: redirect long output to a "
            "file on the node, e.g. > /tmp/out.txt, and read it in pieces)"
        )
    return None
