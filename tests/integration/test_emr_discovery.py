"""EMR cluster discovery against moto's EMR over HTTP (boto3 follows AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import boto3
import pytest

from hail_emr_lab.cli import main as cli_main
from hail_emr_lab.emr import discovery as emr

INSTANCES = {
    "InstanceGroups": [
        {"Name": "Master Instance Group", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
        {"Name": "Core", "InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
    ],
    "KeepJobFlowAliveWhenNoSteps": True,
    "EmrManagedMasterSecurityGroup": "sg-0master",
    "AdditionalMasterSecurityGroups": ["sg-0extra"],
}


def _cluster(name, apps=("Hadoop", "Spark", "Livy"), configurations=None, instances=None):
    client = boto3.client("emr", region_name="us-east-1")
    return client.run_job_flow(
        Name=name,
        ReleaseLabel="emr-6.15.0",
        Instances=instances or INSTANCES,
        Applications=[{"Name": a} for a in apps],
        Configurations=configurations or [],
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]


@pytest.fixture
def blackhole_port():
    """A local port where TCP connects time out, as behind a security group that drops them.

    A listening socket with a full backlog: Linux drops further SYNs, so connect() times out
    (addresses outside this machine cannot be used: this sandbox's network accepts any connect).
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass  # in progress: it fills the backlog
        fillers.append(s)
    time.sleep(0.1)
    assert emr.probe("127.0.0.1", port, 0.3) == "timeout"
    yield port
    for s in fillers:
        s.close()
    srv.close()


@pytest.fixture
def clusters(aws_env, blackhole_port):
    """A plain cluster, one with a custom Livy port, one terminated, one without Livy."""
    plain = _cluster("hail-plain")
    custom = _cluster(
        "hail-custom-port",
        configurations=[{"Classification": "livy-conf", "Properties": {"livy.server.port": str(blackhole_port)}}],
    )
    gone = _cluster("hail-gone")
    boto3.client("emr", region_name="us-east-1").terminate_job_flows(JobFlowIds=[gone])
    nolivy = _cluster("no-livy", apps=("Hadoop", "Spark"))
    return {"plain": plain, "custom": custom, "gone": gone, "nolivy": nolivy}


def test_master_private_address_and_default_port(clusters):
    client = emr.emr_client()
    cluster = emr.find_cluster(clusters["plain"], client=client)
    ep = emr.describe_endpoint(cluster, client)
    master = client.list_instances(ClusterId=clusters["plain"], InstanceGroupTypes=["MASTER"])["Instances"][0]
    assert ep.private_ip == master["PrivateIpAddress"] and ep.private_dns == master["PrivateDnsName"]
    assert ep.private_dns  # moto gives the master a private DNS name, e.g. ip-10-...ec2.internal
    assert ep.host == ep.private_ip and ep.port == 8998 and ep.url == f"http://{ep.private_ip}:8998"
    assert ep.security_groups == ["sg-0master", "sg-0extra"]


def test_custom_livy_port_from_classification(clusters, blackhole_port):
    client = emr.emr_client()
    ep = emr.describe_endpoint(emr.find_cluster(cluster_name="hail-custom-port", client=client), client)
    assert ep.cluster_id == clusters["custom"] and ep.port == blackhole_port


def test_terminated_cluster_is_explained(clusters):
    with pytest.raises(emr.EmrError, match="is TERMINATED.*cannot run sessions"):
        emr.endpoint_for(cluster_id=clusters["gone"], probe_timeout=0.2)
    # and it is not found by name among the active ones
    with pytest.raises(emr.EmrError, match="no active EMR cluster is named 'hail-gone'.*hail-plain"):
        emr.endpoint_for(cluster_name="hail-gone", probe_timeout=0.2)


def test_cluster_without_livy(clusters):
    with pytest.raises(emr.EmrError, match="without the Livy application"):
        emr.endpoint_for(cluster_id=clusters["nolivy"], probe_timeout=0.2)


def test_unknown_and_malformed_cluster_id(clusters):
    with pytest.raises(emr.EmrError, match="EMR has no cluster 'j-NOSUCHCLUSTER1'"):
        emr.endpoint_for(cluster_id="j-NOSUCHCLUSTER1")
    with pytest.raises(emr.EmrError, match="not an EMR cluster id"):
        emr.endpoint_for(cluster_id="cluster-1")


def _local_master(monkeypatch):
    # Only the address resolution is replaced: moto's masters have 10.x addresses that this
    # sandbox cannot reach meaningfully, so the "master" is this machine. Everything else
    # (cluster lookup, state, applications, livy-conf port, security groups) is moto's answer.
    monkeypatch.setattr(emr, "master_address", lambda client, cluster: ("127.0.0.1", "localhost"))


def test_blocked_port_names_the_security_group(clusters, blackhole_port, monkeypatch):
    _local_master(monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(emr.EmrError) as info:
        emr.endpoint_for(cluster_id=clusters["custom"], probe_timeout=0.5)
    msg = str(info.value)
    assert time.monotonic() - t0 < 10
    assert "sg-0master" in msg and f"TCP {blackhole_port}" in msg and "inbound" in msg, msg
    assert "did not answer within 0.5 s" in msg


def test_refused_port_says_livy_is_not_running(clusters, monkeypatch):
    port = _closed_port()
    _local_master(monkeypatch)
    cid = _cluster("hail-closed", configurations=[
        {"Classification": "livy-conf", "Properties": {"livy.server.port": str(port)}}])
    with pytest.raises(emr.EmrError, match="nothing listens on port .*Livy is not running"):
        emr.endpoint_for(cluster_id=cid, probe_timeout=1)


def test_reachable_master_happy_path(clusters, monkeypatch):
    # The port comes from the cluster's livy-conf classification in moto; a real socket listens on it.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        cid = _cluster("hail-local", configurations=[
            {"Classification": "livy-conf", "Properties": {"livy.server.port": str(port)}}])
        _local_master(monkeypatch)
        ep = emr.endpoint_for(cluster_id=cid, probe_timeout=2)
        assert ep.url == f"http://127.0.0.1:{port}"
        rows = {r["cluster_id"]: r for r in emr.list_clusters(probe_timeout=1)}
    assert rows[cid]["reachable"] is True and rows[cid]["livy_url"] == ep.url
    assert clusters["gone"] not in rows
    assert rows[clusters["nolivy"]]["problem"] == "no Livy application"


def test_list_clusters_and_cli(clusters, blackhole_port, capsys, monkeypatch):
    rows = emr.list_clusters(probe_timeout=0.3)
    by_id = {r["cluster_id"]: r for r in rows}
    assert set(by_id) == {clusters["plain"], clusters["custom"], clusters["nolivy"]}
    assert by_id[clusters["custom"]]["livy_url"].endswith(f":{blackhole_port}")
    assert by_id[clusters["plain"]]["livy_url"].startswith("http://10.")
    _local_master(monkeypatch)
    by_id = {r["cluster_id"]: r for r in emr.list_clusters(probe_timeout=0.3)}
    custom = by_id[clusters["custom"]]
    assert custom["reachable"] is False and custom["problem"] == f"port {blackhole_port}: timeout"
    assert cli_main(["clusters", "--timeout", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "hail-custom-port" in out and f":{blackhole_port}" in out and "LIVY URL" in out and "no (port" in out
    assert cli_main(["clusters", "--json", "--timeout", "0.3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in data} == {"hail-plain", "hail-custom-port", "no-livy"}


def test_cli_in_subprocess_without_credentials(aws_env, tmp_path):
    """No credentials at all: a one-paragraph message, no traceback."""
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": aws_env, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "hail_emr_lab", "clusters"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "no AWS credentials" in proc.stderr and "Traceback" not in proc.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
