"""The sidebar's node rows: whether a node offers a shell is decided by the rule the
``hail-emr-lab ssm`` command applies (``emr.ssm.require_managed``), sent as ``shell``."""

from __future__ import annotations

import pytest

from hail_emr_lab.dashboard.nodes import node_row
from hail_emr_lab.dashboard.payloads import NodeRow, field_errors
from hail_emr_lab.emr import ssm


@pytest.mark.parametrize(
    "managed, ping, shell",
    [
        (True, "Online", True),
        (True, None, True),  # registered, PingStatus not reported
        (True, "ConnectionLost", False),
        (True, "Inactive", False),
        (False, None, False),
        (None, None, False),  # SSM could not be asked
    ],
)
def test_shell_flag_follows_the_ssm_commands_rule(managed, ping, shell):
    node = ssm.Node(instance_id="i-0abc", group="CORE", state="RUNNING", managed=managed, ping_status=ping)
    row = node_row(node, "j-CLUSTER", "eu-west-1")
    assert field_errors(row, NodeRow) == []
    assert row["shell"] is shell
    try:
        ssm.require_managed(node, "j-CLUSTER", "eu-west-1")
        refused = None
    except ssm.SsmError as exc:
        refused = str(exc)
    assert row["no_shell_reason"] == refused
    assert (refused is None) is shell
    assert row["terminal_command"] == "hail-emr-lab ssm --cluster-id j-CLUSTER --node i-0abc"


def test_the_reason_says_what_to_do():
    node = ssm.Node(instance_id="i-0abc", group="CORE", state="RUNNING", managed=True, ping_status="ConnectionLost")
    reason = node_row(node, "j-CLUSTER", "eu-west-1")["no_shell_reason"]
    assert "ConnectionLost" in reason and "AmazonSSMManagedInstanceCore" in reason
    assert "com.amazonaws.eu-west-1.ssm" in reason
