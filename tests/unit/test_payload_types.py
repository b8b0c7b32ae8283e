"""The sidebar's answer types: TypeScript generated from the Python TypedDicts, and the checker
that the integration test applies to the real server's answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hail_emr_lab.dashboard import payloads

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("payload_types", ROOT / "labextension" / "scripts" / "payload_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_typescript_is_current():
    gen = _generator()
    assert gen.TARGET.read_text() == gen.render(), "run: python labextension/scripts/payload_types.py"


def test_every_route_and_field_is_in_the_typescript():
    text = _generator().render()
    for route, td in payloads.ROUTES.items():
        assert f"  {route}: I{td.__name__};" in text
    assert "  serverless?: IServerlessApp | IServerlessAppError;" in text
    assert "  shell: boolean;\n" in text and "  no_shell_reason: string | null;\n" in text
    assert "  time: string | number | null;\n" in text
    assert "  config: Record<string, IConfigItem>;\n" in text and "  stages: ISparkStage[];\n" in text


def test_an_annotation_it_cannot_map_is_refused():
    import pytest

    with pytest.raises(ValueError, match="no TypeScript type"):
        _generator().ts_type(set[str])


def _node(**changes):
    row = {
        "instance_id": "i-1", "group": "MASTER", "state": "RUNNING", "private_ip": None, "private_dns": None,
        "managed": True, "ping_status": "Online", "aws_command": "aws ssm start-session --target i-1",
        "terminal_command": "hail-emr-lab ssm --node i-1", "shell": True, "no_shell_reason": None,
    }
    return {**row, **changes}


def test_field_errors_accepts_a_fitting_answer():
    answer = {"available": True, "cluster_id": "j-1", "region": "us-east-1", "nodes": [_node()], "error": None,
              "elapsed_ms": 3}
    assert payloads.field_errors(answer, payloads.Nodes) == []


def test_field_errors_names_missing_unknown_and_mistyped_fields():
    answer = {"available": "yes", "cluster_id": "j-1", "nodes": [_node(shell=None, extra=1)], "error": None,
              "elapsed_ms": 3.5}
    assert payloads.field_errors(answer, payloads.Nodes) == [
        "$.region: missing",
        "$.available: 'yes' is not bool",
        "$.nodes[0].extra: not declared",
        "$.nodes[0].shell: None is not bool",
    ]


def test_field_errors_optional_keys_and_unions():
    status = {"elapsed_ms": 1, "livy_url": None, "livy_url_source": "default", "session_name": None, "auth": None,
              "cluster_id": None, "reachable": False, "error": "no endpoint", "latency_ms": None, "hint": "h",
              "config": {"auth": {"value": "none", "source": "default"}}}
    assert payloads.field_errors(status, payloads.ClusterStatus) == []  # serverless may be absent
    status["serverless"] = {"application_id": "00f", "error": "not found"}
    assert payloads.field_errors(status, payloads.ClusterStatus) == []
    status["serverless"] = {"application_id": "00f"}
    assert payloads.field_errors(status, payloads.ClusterStatus) == ["$.serverless.error: missing"]
