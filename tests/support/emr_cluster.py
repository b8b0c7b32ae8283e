"""A moto EMR cluster with instance groups, for the tests that list a cluster's nodes.

Call it with ``aws_env`` active (boto3 on the moto server). What moto does not cover: nothing
runs on the cluster (no Livy, no SSM agent: its instances are RUNNING at once with made-up
addresses), and moto's ``ListInstances`` ignores instance fleets, so only instance groups are made.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3

#: The default release of the clusters made here (any emr-6/7 release with Livy would do).
RELEASE = "emr-6.15.0"


@dataclass
class MotoCluster:
    """``id`` (``j-...``) and the EC2 instance ids of each instance group (``MASTER``, ``CORE``)."""

    id: str
    groups: dict[str, list[str]]

    @property
    def master(self) -> str:
        return self.groups["MASTER"][0]

    @property
    def core(self) -> list[str]:
        return self.groups["CORE"]


def moto_emr_cluster(
    name: str,
    core_nodes: int = 2,
    instance_type: str = "m5.xlarge",
    release: str = RELEASE,
    applications: tuple[str, ...] = (),
) -> MotoCluster:
    """Run a job flow on moto with one master and ``core_nodes`` core nodes (and ``applications``,
    e.g. ``("Spark", "Livy")``, which moto only records); wait for nothing."""
    emr = boto3.client("emr")
    groups = [{"Name": "Primary", "InstanceRole": "MASTER", "InstanceType": instance_type, "InstanceCount": 1}]
    if core_nodes:
        groups.append({"Name": "Core", "InstanceRole": "CORE", "InstanceType": instance_type, "InstanceCount": core_nodes})
    cid = emr.run_job_flow(
        Name=name,
        ReleaseLabel=release,
        Instances={"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": True},
        Applications=[{"Name": app} for app in applications],
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]
    found = {
        role: [i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid, InstanceGroupTypes=[role])["Instances"]]
        for role in ("MASTER", "CORE")
    }
    assert len(found["MASTER"]) == 1 and len(found["CORE"]) == core_nodes, found
    return MotoCluster(cid, found)
