"""The sidebar's node list in a real JupyterLab, driven by headless Chromium.

JupyterLab runs as a subprocess whose boto3 talks to the moto server (EMR, EC2) and, for SSM,
to ``tests/support/ssm_standin.py`` in front of moto (moto has no ``DescribeInstanceInformation``).
A moto EMR cluster with a master and two core nodes is the user's configured cluster
(``HAIL_EMR_LAB_CLUSTER_ID``): the master's SSM agent is Online, the first core node's agent
registered but lost its connection, the second core node never registered. The test opens the
Hail sidebar and reads the Cluster section's node rows: ids, groups, states, what SSM says, the
``hail-emr-lab ssm`` command offered (and copied) for the master only, and for the other two no
command but the reason. Screenshot: test-artifacts/nodes-sidebar.png.

Not covered: real EMR/SSM/IAM (moto and the stand-in answer whatever is asked of them), task
nodes and instance fleets, and the shell itself (tests/integration/test_ssm.py runs the command's path).
"""

from __future__ import annotations

import time
from typing import Callable

import pytest
from support.emr_cluster import moto_emr_cluster
from support.lab import chromium, failure_artifacts, running_lab
from support.ssm_standin import SsmStandIn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POLL_SECONDS = 1  # the sidebar's poll interval setting (default 3)


@pytest.fixture
def cluster(aws_env):
    """A moto EMR cluster: one master, two core nodes; returns (cluster id, master id, [core ids])."""
    made = moto_emr_cluster("hail-nodes-ui")
    return made.id, made.master, made.core


@pytest.fixture
def lab(aws_env, cluster, tmp_path, isolated_config, artifacts_dir):
    """JupyterLab with the extension, boto3 on moto + the SSM stand-in; yields (lab, standin)."""
    cid, master, cores = cluster
    with SsmStandIn(aws_env) as standin:
        standin.managed = {master: "Online", cores[0]: "ConnectionLost"}  # cores[1] never registered
        # AWS_* from aws_env are in this process's environment: every boto3 client of the lab on moto.
        env = {"AWS_ENDPOINT_URL_SSM": standin.url, "HAIL_EMR_LAB_CLUSTER_ID": cid}
        with running_lab(tmp_path, artifacts_dir, "nodes", env=env, settings={"pollInterval": POLL_SECONDS}) as running:
            yield running, standin


def test_sidebar_lists_nodes_with_a_shell_command_for_reachable_ones(lab, cluster, artifacts_dir):
    from playwright.sync_api import expect

    running, standin = lab
    cid, master, (lost, unmanaged) = cluster
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=running.url)
        page = context.new_page()
        with failure_artifacts(page, artifacts_dir, "nodes", running):
            page.goto(running.page("lab"))
            page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
            page.click(".jp-SideBar.jp-mod-left [data-id='hail-emr-lab-panel']", timeout=60_000)
            cluster_section = page.locator("#hail-emr-lab-panel [data-section='cluster']")
            rows = cluster_section.locator(".jp-HailNode")
            expect(rows).to_have_count(3, timeout=60_000)
            expect(cluster_section).to_contain_text(f"Nodes of {cid} (3)")
            # The master first, then the core nodes (in whichever order EMR lists them).
            listed = rows.evaluate_all("rs => rs.map(r => r.dataset.instance)")
            assert listed[0] == master and sorted(listed[1:]) == sorted([lost, unmanaged]), listed
            assert "DescribeInstanceInformation" in standin.calls

            # The master: its agent is Online, so the shell command is offered and copied as shown.
            row = cluster_section.locator(f".jp-HailNode[data-instance='{master}']")
            expect(row).to_contain_text(f"{master} MASTER")
            expect(row).to_contain_text("RUNNING · SSM Online")
            command = f"hail-emr-lab ssm --cluster-id {cid} --node {master}"
            expect(row.locator(".jp-HailNodeCommand")).to_have_text(command)
            row.locator("button[data-action='copy-ssm']").click()
            _wait_for(
                lambda: page.evaluate("() => navigator.clipboard.readText()") == command, 10, "the copied command"
            )

            # A registered agent that lost its connection: the CLI refuses it, so no command here either.
            row = cluster_section.locator(f".jp-HailNode[data-instance='{lost}']")
            expect(row).to_contain_text(f"{lost} CORE")
            expect(row).to_contain_text("RUNNING · SSM agent ConnectionLost: no shell")
            expect(row.locator(".jp-HailNodeCommand")).to_have_count(0)
            expect(row.locator("button")).to_have_count(0)

            # Never registered: not managed, no command, and where to look.
            row = cluster_section.locator(f".jp-HailNode[data-instance='{unmanaged}']")
            expect(row).to_contain_text(f"{unmanaged} CORE")
            expect(row).to_contain_text("RUNNING · not managed by SSM: no shell")
            expect(row.locator(".jp-HailNodeCommand")).to_have_count(0)
            expect(row.locator("button")).to_have_count(0)
            expect(cluster_section.locator("[data-field='no-shell']")).to_contain_text("AmazonSSMManagedInstanceCore")
            shells = rows.evaluate_all("rs => Object.fromEntries(rs.map(r => [r.dataset.instance, r.dataset.shell]))")
            assert shells == {master: "true", lost: "false", unmanaged: "false"}
            cluster_section.screenshot(path=str(artifacts_dir / "nodes-sidebar.png"))


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not there after {seconds} s"
        time.sleep(0.1)
