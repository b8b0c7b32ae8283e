"""Livy's state names have one home (``livy.protocol``), used by our client's models and by the
embedded server alike; their groups follow the Apache Livy REST API docs."""

from __future__ import annotations

import json

from hail_emr_lab.embedded import batches, sessions
from hail_emr_lab.livy import models, protocol
from hail_emr_lab.livy.protocol import SessionState, StatementState


def test_the_names_are_livys():
    assert [s.value for s in SessionState if s is not SessionState.UNKNOWN] == [
        "not_started", "starting", "recovering", "idle", "running", "busy", "shutting_down", "error", "dead",
        "killed", "success",
    ]
    assert [s.value for s in StatementState if s is not StatementState.UNKNOWN] == [
        "waiting", "running", "available", "error", "cancelling", "cancelled",
    ]
    assert protocol.BatchState is SessionState


def test_the_groups():
    final = {s.value for s in SessionState if s.is_final}
    assert final == {"error", "dead", "killed", "success"}
    assert {s.value for s in SessionState if s.takes_statements} == {"idle", "busy", "running"}
    assert {s.value for s in SessionState if s.is_starting} == {"not_started", "starting", "recovering"}
    assert {s.value for s in StatementState if s.is_final} == {"available", "error", "cancelled"}
    assert {s.value for s in StatementState if s.is_running} == {"waiting", "running", "cancelling"}


def test_a_state_reads_as_its_plain_name_on_the_wire_and_in_messages():
    assert json.dumps({"state": SessionState.SHUTTING_DOWN}) == '{"state": "shutting_down"}'
    assert f"Session is in state {SessionState.DEAD}" == "Session is in state dead"
    assert str(StatementState.CANCELLING) == "cancelling" and f"{SessionState.IDLE:>5}" == " idle"
    assert SessionState.parse("idle") is SessionState.IDLE and SessionState.IDLE == "idle"
    assert SessionState.parse("hibernating") is SessionState.UNKNOWN


def test_client_and_server_use_the_same_states():
    assert models.Session.from_json({"id": 1, "state": "busy"}).state is SessionState.BUSY
    assert sessions.Statement(0, "1", "pyspark").state is StatementState.WAITING
    assert sessions.Statement(0, "1", "pyspark").to_json()["state"] == "waiting"
    assert sessions.SessionState is SessionState and batches.BatchState is SessionState
