"""``hail-emr-lab ssm``: node lookup through EMR, the SSM-managed check, Run Command, start-session.

EMR and EC2 are the moto server (``aws_env``). SSM is moto behind ``tests/support/ssm_standin.py``,
which adds what moto lacks: ``DescribeInstanceInformation`` (which instances registered) and,
when asked, an "agent" that really runs ``AWS-RunShellScript`` commands with bash here, so
output, exit codes and the InProgress -> final status polling are exercised (moto alone answers
every invocation at once with Success, exit code 0 and no output; that path is tested too).
Not covered: real IAM, the node's root shell and working directory, SSM's websocket session
(the interactive path is tested up to the exact ``aws ssm start-session`` command line, which a
stand-in ``aws`` on PATH records), and instance fleets (moto's ListInstances ignores
InstanceFleetType).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from support.emr_cluster import moto_emr_cluster
from support.ssm_standin import SsmStandIn

from hail_emr_lab.emr import ssm
from hail_emr_lab.server.handlers import API

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"hail_emr_lab": True}}}


@pytest.fixture
def standin(aws_env, monkeypatch):
    with SsmStandIn(aws_env) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", server.url)
        yield server


@pytest.fixture
def cluster(aws_env):
    """A moto EMR cluster with one master and two core nodes; returns (cluster id, {group: [ids]})."""
    made = moto_emr_cluster("hail-ssm")
    return made.id, made.groups


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "ssm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or dict(os.environ),
        check=False,
    )


def test_nodes_by_group_with_their_ssm_state(standin, cluster):
    cid, groups = cluster
    master = groups["MASTER"][0]
    standin.managed = {master: "Online", groups["CORE"][0]: "ConnectionLost"}
    found, nodes = ssm.cluster_nodes(cid)
    assert found["Id"] == cid
    assert [n.group for n in nodes] == ["MASTER", "CORE", "CORE"]
    by_id = {n.instance_id: n for n in nodes}
    assert by_id[master].managed is True and by_id[master].ping_status == "Online"
    assert by_id[groups["CORE"][0]].managed is True and by_id[groups["CORE"][0]].ping_status == "ConnectionLost"
    assert by_id[groups["CORE"][1]].managed is False
    assert all(n.state == "RUNNING" and n.private_ip for n in nodes)
    assert by_id[master].to_dict()["aws_command"] == f"aws ssm start-session --target {master}"
    assert "DescribeInstanceInformation" in standin.calls

    done = cli("--cluster-id", cid, "--list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [n["group"] for n in listed["nodes"]] == ["MASTER", "CORE", "CORE"]
    assert {n["instance_id"]: n["managed"] for n in listed["nodes"]} == {
        master: True, groups["CORE"][0]: True, groups["CORE"][1]: False
    }


def test_the_configured_cluster_is_the_default(standin, cluster, monkeypatch):
    cid, groups = cluster
    monkeypatch.setenv("HAIL_EMR_LAB_CLUSTER_ID", cid)
    assert ssm.cluster_nodes()[0]["Id"] == cid
    monkeypatch.delenv("HAIL_EMR_LAB_CLUSTER_ID")
    with pytest.raises(ssm.SsmError, match="which cluster"):
        ssm.cluster_nodes()


def test_a_node_ssm_does_not_manage_gets_the_three_causes(standin, cluster):
    cid, groups = cluster
    standin.managed = {}  # the agent never registered
    done = cli("--cluster-id", cid, "--command", "df -h /mnt")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    err = done.stderr
    assert f"{groups['MASTER'][0]} (MASTER of {cid}) is not managed by AWS Systems Manager" in err
    assert "amazon-ssm-agent" in err and "AmazonSSMManagedInstanceCore" in err
    assert "com.amazonaws.us-east-1.ssmmessages" in err and "com.amazonaws.us-east-1.ec2messages" in err
    assert "SendCommand" not in standin.calls, "nothing may be sent to a node SSM cannot reach"

    standin.managed = {groups["MASTER"][0]: "ConnectionLost"}
    done = cli("--cluster-id", cid, "--command", "true")
    assert done.returncode != 0 and "registered but ConnectionLost" in done.stderr


def test_bad_node_names_say_what_is_allowed(standin, cluster):
    cid, groups = cluster
    _, nodes = ssm.cluster_nodes(cid)
    assert ssm.pick_node(nodes, "core", cid).instance_id in groups["CORE"]
    assert ssm.pick_node(nodes, "Primary", cid).instance_id == groups["MASTER"][0]
    with pytest.raises(ssm.SsmError, match="has no task nodes"):
        ssm.pick_node(nodes, "task", cid)
    with pytest.raises(ssm.SsmError, match="is not an instance of cluster"):
        ssm.pick_node(nodes, "i-0123456789abcdef0", cid)
    with pytest.raises(ssm.SsmError, match="give master, core, task"):
        ssm.pick_node(nodes, "worker", cid)


def test_run_command_through_moto(standin, cluster):
    """moto's Run Command: the command is recorded with the right document and answered Success, 0."""
    cid, groups = cluster
    master = groups["MASTER"][0]
    standin.managed = {master: "Online"}
    done = cli("--cluster-id", cid, "--command", "yarn application -list", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["instance_id"] == master and result["status"] == "Success" and result["exit_code"] == 0
    sent = [p for action, p in standin.payloads if action == "SendCommand"]
    assert len(sent) == 1
    assert sent[0]["DocumentName"] == "AWS-RunShellScript" and sent[0]["InstanceIds"] == [master]
    assert sent[0]["Parameters"] == {"commands": ["yarn application -list"]}
    # moto recorded it (its InstanceIds also gain every EC2 instance: moto reads no Targets as "all").
    recorded = boto3.client("ssm", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).list_commands(
        CommandId=result["command_id"]
    )["Commands"][0]
    assert recorded["DocumentName"] == "AWS-RunShellScript" and master in recorded["InstanceIds"]


def test_run_command_output_and_exit_code(standin, cluster):
    cid, groups = cluster
    core = groups["CORE"][1]
    standin.managed = {core: "Online"}
    standin.agent = True
    done = cli("--cluster-id", cid, "--node", core, "--command", "sleep 1.5; echo mounted on /mnt; echo oops >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "mounted on /mnt\n"
    assert "oops\n" in done.stderr
    assert f"[{core} CORE: Failed, exit code 3]" in done.stderr
    assert standin.calls.count("GetCommandInvocation") >= 2, "it polled while the command ran"

    # Stopping early says the command may still run, and how to read its result later.
    done = cli("--cluster-id", cid, "--node", core, "--command", "sleep 20", "--timeout", "1")
    assert done.returncode == 124
    assert "may still be running on the node" in done.stderr and "aws ssm get-command-invocation" in done.stderr


def _stand_ins(tmp_path: Path, plugin: bool) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "aws-argv.json"
    (bin_dir / "aws").write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
    )
    (bin_dir / "aws").chmod(0o755)
    if plugin:
        (bin_dir / "session-manager-plugin").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "session-manager-plugin").chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    return env


def test_interactive_session_execs_aws_ssm_start_session(standin, cluster, tmp_path):
    cid, groups = cluster
    master = groups["MASTER"][0]
    standin.managed = {master: "Online"}
    done = cli("--cluster-id", cid, env=_stand_ins(tmp_path, plugin=False))
    assert done.returncode != 0
    assert "Session Manager plugin (session-manager-plugin) is not installed" in done.stderr
    assert "lifecycle render --ssm" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "aws-argv.json").exists()

    done = cli("--cluster-id", cid, env=_stand_ins(tmp_path, plugin=True))
    assert done.returncode == 0, done.stderr
    argv = json.loads((tmp_path / "aws-argv.json").read_text())
    assert argv == ["ssm", "start-session", "--target", master, "--region", "us-east-1"]


def test_hail_ssm_magic_in_a_kernel(standin, cluster, aws_env, tmp_path):
    """%hail ssm --command in a real kernel: output, exit code, and one-paragraph errors."""
    from support.kernel import Kernel, kernel_env

    cid, groups = cluster
    master = groups["MASTER"][0]
    standin.managed = {master: "Online"}
    standin.agent = True
    env = kernel_env(
        str(tmp_path), AWS_ENDPOINT_URL=aws_env, AWS_ENDPOINT_URL_SSM=standin.url, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", HAIL_EMR_LAB_CLUSTER_ID=cid,
    )
    kernel = Kernel(env, cwd=str(tmp_path))
    try:
        kernel.load()
        res = kernel.run("%hail ssm --command 'echo free space; echo warn >&2'  # on the master")
        assert res.status == "ok", res.text
        assert "free space\n" in res.stdout and "warn" in res.text
        assert f"[{master} MASTER: Success, exit code 0]" in res.stdout

        res = kernel.run("%hail ssm --command 'exit 7'")
        assert res.status == "error" and res.ename == "HailMagicError", res.text
        assert "exited with code 7" in "\n".join(res.traceback) and "Traceback" not in "\n".join(res.traceback)

        res = kernel.run("%hail ssm --node core --command true")
        tb = "\n".join(res.traceback)
        assert res.ename == "HailMagicError" and "is not managed by AWS Systems Manager" in tb, res.text

        res = kernel.run("%hail ssm")
        assert res.status == "error" and "--command" in res.text
    finally:
        kernel.shutdown()


async def test_sidebar_lists_the_configured_clusters_nodes(standin, cluster, monkeypatch, jp_fetch):
    cid, groups = cluster
    master = groups["MASTER"][0]
    standin.managed = {master: "Online"}
    data = json.loads((await jp_fetch(*API.split("/"), "nodes")).body)
    assert data["available"] is False and "no EMR cluster configured" in data["error"]

    monkeypatch.setenv("HAIL_EMR_LAB_CLUSTER_ID", cid)
    data = json.loads((await jp_fetch(*API.split("/"), "nodes")).body)
    assert data["available"] is True and data["error"] is None, data
    assert data["cluster_id"] == cid and data["region"] == "us-east-1"
    rows = {n["instance_id"]: n for n in data["nodes"]}
    assert [n["group"] for n in data["nodes"]] == ["MASTER", "CORE", "CORE"]
    assert rows[master]["managed"] is True and rows[master]["state"] == "RUNNING"
    assert rows[groups["CORE"][0]]["managed"] is False
    assert rows[master]["terminal_command"] == f"hail-emr-lab ssm --cluster-id {cid} --node {master}"

    monkeypatch.setenv("HAIL_EMR_LAB_CLUSTER_ID", "j-NOSUCHCLUSTER")
    data = json.loads((await jp_fetch(*API.split("/"), "nodes")).body)
    assert data["available"] is False and "j-NOSUCHCLUSTER" in data["error"]


async def test_nodes_route_needs_authentication(http_server_client, jp_base_url):
    response = await http_server_client.fetch(f"{jp_base_url}{API}/nodes", raise_error=False)
    assert response.code == 403
