"""EMR cluster discovery with boto3: cluster id or name -> the Livy URL on its master.

What the Quick Start's ``list-clusters`` script did, with clear errors: the master's private
address (the "Master"/"Primary" instance group, or instance fleet, else the cluster's
``MasterPublicDnsName``, which in a private subnet is the private DNS name), the Livy port
from the cluster's ``livy-conf`` classification (``livy.server.port``, default 8998), and a
TCP probe whose failure names the security group rule to add.

Every function takes an optional ``boto3_session`` so tests point it at moto.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from ..aws_errors import aws_error, error_code, kind
from ..errors import HailEmrLabError

DEFAULT_LIVY_PORT = 8998
ACTIVE_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
READY_STATES = ("RUNNING", "WAITING")


class EmrError(HailEmrLabError):
    """Cluster discovery failed (unknown cluster, not running, no Livy, port blocked, no AWS access)."""


@dataclass
class ClusterEndpoint:
    """Where a cluster's Livy listens, and what we know about the cluster."""

    cluster_id: str
    name: str
    state: str
    host: Optional[str]
    port: int
    private_ip: Optional[str] = None
    private_dns: Optional[str] = None
    security_groups: list[str] = field(default_factory=list)
    release_label: Optional[str] = None
    has_livy: bool = True

    @property
    def url(self) -> Optional[str]:
        """``http://HOST:PORT`` (None when the master's address is unknown)."""
        return f"http://{self.host}:{self.port}" if self.host else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON and tables)."""
        out = asdict(self)
        out["livy_url"] = self.url
        return out


def emr_client(boto3_session: Any = None, region: Optional[str] = None) -> Any:
    """An EMR client (honours ``AWS_ENDPOINT_URL`` like every boto3 client)."""
    try:
        import boto3
    except ImportError:  # pragma: no cover - a dependency
        raise EmrError("cluster discovery needs boto3: pip install boto3") from None
    session = boto3_session or boto3.session.Session()
    return session.client("emr", region_name=region or session.region_name or "us-east-1")


#: What an AccessDenied from EMR needs (the policy ``hail-emr-lab lifecycle iam-policy`` writes).
EMR_DENIED_HINT = (
    "The notebook's role needs elasticmapreduce:ListClusters, DescribeCluster and ListInstances "
    "(see the hail-emr-lab IAM policy)."
)


def emr_error(exc: BaseException, what: str, error: type[EmrError] = EmrError) -> EmrError:
    """An EMR API failure as one paragraph (:func:`hail_emr_lab.aws_errors.aws_error`); without
    credentials it also says that a Livy URL needs no AWS at all."""
    out = aws_error(exc, what, EMR_DENIED_HINT, error)
    if kind(exc) == "credentials":
        return error(f"{out} Or connect with --url http://MASTER:8998.")
    return out  # type: ignore[return-value]


def find_cluster(
    cluster_id: Optional[str] = None,
    cluster_name: Optional[str] = None,
    boto3_session: Any = None,
    region: Optional[str] = None,
    client: Any = None,
) -> dict[str, Any]:
    """The ``DescribeCluster`` answer for an id, or for the one active cluster with that name."""
    client = client or emr_client(boto3_session, region)
    if not cluster_id and not cluster_name:
        raise EmrError("give a cluster id (--cluster-id j-...) or a cluster name (--cluster-name NAME)")
    if not cluster_id:
        matches = [c for c in _active_clusters(client) if c.get("Name") == cluster_name]
        if not matches:
            names = sorted({c.get("Name", "?") for c in _active_clusters(client)})
            shown = ", ".join(repr(n) for n in names[:10]) or "none"
            raise EmrError(
                f"no active EMR cluster is named {cluster_name!r} (active clusters: {shown}); check the name, the "
                "region (AWS_REGION), or use --cluster-id j-..."
            )
        if len(matches) > 1:
            ids = ", ".join(c["Id"] for c in matches)
            raise EmrError(f"{len(matches)} active clusters are named {cluster_name!r} ({ids}): use --cluster-id")
        cluster_id = matches[0]["Id"]
    if not str(cluster_id).startswith("j-"):
        raise EmrError(f"{cluster_id!r} is not an EMR cluster id: ids look like j-1ABCDEFGHIJKL")
    try:
        return client.describe_cluster(ClusterId=cluster_id)["Cluster"]
    except Exception as exc:
        if error_code(exc) in ("InvalidRequestException", "ResourceNotFoundException", "ClusterNotFound"):
            raise EmrError(
                f"EMR has no cluster {cluster_id!r} in region {client.meta.region_name}: check the id "
                "('hail-emr-lab clusters' lists the active ones) and the region (AWS_REGION)."
            ) from None
        raise emr_error(exc, f"looking up cluster {cluster_id}") from None


def _active_clusters(client: Any) -> list[dict[str, Any]]:
    try:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator("list_clusters").paginate(ClusterStates=ACTIVE_STATES):
            out.extend(page.get("Clusters") or [])
        return out
    except Exception as exc:
        raise emr_error(exc, "listing EMR clusters") from None


def livy_port(cluster: dict[str, Any]) -> int:
    """``livy.server.port`` from the cluster's ``livy-conf`` classification, else 8998."""
    for conf in cluster.get("Configurations") or []:
        if conf.get("Classification") == "livy-conf":
            value = (conf.get("Properties") or {}).get("livy.server.port")
            if value:
                try:
                    return int(value)
                except ValueError:
                    raise EmrError(
                        f"cluster {cluster.get('Id')} sets livy.server.port to {value!r}, which is not a port"
                    ) from None
    return DEFAULT_LIVY_PORT


def master_address(client: Any, cluster: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """``(private_ip, private_dns)`` of the master node (either may be None)."""
    cid = cluster["Id"]
    instances: list[dict[str, Any]] = []
    try:
        if cluster.get("InstanceCollectionType") == "INSTANCE_FLEET":
            instances = client.list_instances(ClusterId=cid, InstanceFleetType="MASTER").get("Instances") or []
        else:
            instances = client.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"]).get("Instances") or []
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
        if "AccessDenied" in code:
            raise emr_error(exc, f"listing the instances of {cid}") from None
        instances = []  # fall back to the cluster's master DNS name below
    running = [i for i in instances if (i.get("Status") or {}).get("State") in (None, "RUNNING", "BOOTSTRAPPING")]
    for inst in running or instances:
        ip, dns = inst.get("PrivateIpAddress"), inst.get("PrivateDnsName")
        if ip or dns:
            return ip, dns
    # In a private subnet MasterPublicDnsName is the private DNS name (ip-10-0-0-5.ec2.internal).
    return None, cluster.get("MasterPublicDnsName") or None


def master_security_groups(cluster: dict[str, Any]) -> list[str]:
    """The master's security groups (EMR-managed first)."""
    attrs = cluster.get("Ec2InstanceAttributes") or {}
    groups = [attrs.get("EmrManagedMasterSecurityGroup")] + list(attrs.get("AdditionalMasterSecurityGroups") or [])
    return [g for g in groups if g]


def probe(host: str, port: int, timeout: float = 3.0) -> Optional[str]:
    """None if ``host:port`` accepts a TCP connection, else why not (``refused``, ``timeout``, ...)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except socket.gaierror:
        return "unresolvable"
    except OSError as exc:
        return f"error: {exc.strerror or exc}"


def describe_endpoint(cluster: dict[str, Any], client: Any) -> ClusterEndpoint:
    """The Livy endpoint of a ``DescribeCluster`` answer (no network probe)."""
    ip, dns = master_address(client, cluster)
    apps = {str(a.get("Name", "")).lower() for a in cluster.get("Applications") or []}
    return ClusterEndpoint(
        cluster_id=cluster["Id"],
        name=cluster.get("Name", ""),
        state=(cluster.get("Status") or {}).get("State", "UNKNOWN"),
        host=ip or dns,
        port=livy_port(cluster),
        private_ip=ip,
        private_dns=dns,
        security_groups=master_security_groups(cluster),
        release_label=cluster.get("ReleaseLabel"),
        has_livy="livy" in apps,
    )


def blocked_message(ep: ClusterEndpoint, why: str, timeout: float) -> str:
    """The one-paragraph explanation for a failed probe."""
    where = f"port {ep.port} on {ep.host} (the master of {ep.cluster_id} {ep.name!r})"
    if why == "refused":
        return (
            f"nothing listens on {where}: Livy is not running there. Check that the cluster has the Livy "
            f"application and that livy.server.port is {ep.port}; restart Livy on the master with "
            "'sudo systemctl restart livy-server'."
        )
    if why == "unresolvable":
        return f"cannot resolve {ep.host!r} ({where}) from this notebook: check the VPC's DNS settings."
    groups = ", ".join(ep.security_groups) or "the master's security group"
    return (
        f"{where} did not answer within {timeout:g} s ({why}): the security group is blocking it. Add an inbound "
        f"rule to {groups} allowing TCP {ep.port} from this notebook instance's security group (EC2 console > "
        f"Security Groups > {ep.security_groups[0] if ep.security_groups else 'the master group'} > Edit inbound "
        "rules), and make sure the notebook runs in the cluster's VPC."
    )


def endpoint_for(
    cluster_id: Optional[str] = None,
    cluster_name: Optional[str] = None,
    boto3_session: Any = None,
    region: Optional[str] = None,
    probe_timeout: Optional[float] = 3.0,
) -> ClusterEndpoint:
    """Find a usable Livy endpoint for a cluster, or raise :class:`EmrError` saying what is wrong."""
    client = emr_client(boto3_session, region)
    cluster = find_cluster(cluster_id, cluster_name, client=client)
    ep = describe_endpoint(cluster, client)
    label = f"cluster {ep.cluster_id} ({ep.name!r})"
    if ep.state not in READY_STATES:
        reason = ((cluster.get("Status") or {}).get("StateChangeReason") or {}).get("Message")
        if ep.state in ("STARTING", "BOOTSTRAPPING"):
            raise EmrError(f"{label} is still {ep.state}: wait until it is WAITING (a few minutes), then connect.")
        raise EmrError(
            f"{label} is {ep.state}{f' ({reason})' if reason else ''}: it cannot run sessions. Start a new cluster "
            "and connect to it; 'hail-emr-lab clusters' lists the active ones."
        )
    if not ep.has_livy:
        raise EmrError(
            f"{label} was created without the Livy application: create clusters with Applications Hadoop, Spark "
            "and Livy (the hail-emr-lab CloudFormation template does)."
        )
    if not ep.host:
        raise EmrError(f"{label}: EMR reports no address for the master node yet; retry in a minute.")
    if probe_timeout:
        why = probe(ep.host, ep.port, probe_timeout)
        if why is not None:
            raise EmrError(blocked_message(ep, why, probe_timeout))
    return ep


def list_clusters(
    boto3_session: Any = None, region: Optional[str] = None, probe_timeout: float = 2.0
) -> list[dict[str, Any]]:
    """Active clusters: id, name, state, livy_url, reachable (probed in parallel), and more."""
    client = emr_client(boto3_session, region)
    summaries = _active_clusters(client)

    def one(summary: dict[str, Any]) -> dict[str, Any]:
        try:
            ep = describe_endpoint(client.describe_cluster(ClusterId=summary["Id"])["Cluster"], client)
        except Exception as exc:  # one bad cluster must not hide the others
            return {"cluster_id": summary["Id"], "name": summary.get("Name", ""), "state": "?", "livy_url": None,
                    "reachable": False, "problem": str(emr_error(exc, "describing"))}
        row = ep.to_dict()
        if not ep.has_livy:
            row.update(reachable=False, problem="no Livy application")
        elif not ep.host or ep.state not in READY_STATES:
            row.update(reachable=False, problem=f"cluster is {ep.state}")
        else:
            why = probe(ep.host, ep.port, probe_timeout)
            row.update(reachable=why is None, problem=None if why is None else f"port {ep.port}: {why}")
        return row

    if not summaries:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(summaries))) as pool:
        return list(pool.map(one, summaries))
