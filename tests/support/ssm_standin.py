"""A stand-in for the parts of AWS Systems Manager that moto lacks, in front of moto.

Tests point boto3's SSM client at it (``AWS_ENDPOINT_URL_SSM``). It relays every SSM call
to the moto server, except:

* ``DescribeInstanceInformation`` (moto does not implement it): answered from ``managed``,
  a dict instance id -> PingStatus, as SSM would for instances whose agent registered;
* with ``agent=True``, ``SendCommand`` of ``AWS-RunShellScript`` to a managed, Online
  instance is relayed to moto (which records it and gives the CommandId) and the commands
  are then run here with bash, like the node's agent would; ``GetCommandInvocation`` of such
  a command answers ``InProgress`` until bash exits, then ``Success``/``Failed`` with bash's
  stdout, stderr and exit code. (moto alone answers every invocation at once with
  ``Success``, exit code 0 and empty output.)

What it does not cover: real IAM checks, the agent's user (root) and working directory,
SSM's 24,000-character output cut, delivery timeouts, and ``StartSession`` (websocket).
"""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any, Optional

from support.proxy import Answer, RelayProxy, Request

_JSON_11 = "application/x-amz-json-1.1"


class SsmStandIn(RelayProxy):
    """The stand-in server, a :class:`~support.proxy.RelayProxy` to moto; ``url`` is its
    endpoint. Use as a context manager."""

    def __init__(self, moto_url: str) -> None:
        super().__init__(moto_url)
        self.managed: dict[str, str] = {}
        self.agent = False
        self.calls: list[str] = []
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self._runs: dict[tuple[str, str], dict[str, Any]] = {}

    def relay(self, request: Request) -> Optional[Answer]:
        action = (request.header("X-Amz-Target") or "").rpartition(".")[2]
        payload = json.loads(request.body or b"{}")
        self.calls.append(action)
        self.payloads.append((action, payload))
        if action == "DescribeInstanceInformation":
            return Answer.json(200, {"InstanceInformationList": self._registered(payload)}, _JSON_11)
        answer = self.forward(request)
        if not self.agent or answer.status != 200:
            return answer
        if action == "SendCommand" and payload.get("DocumentName") == "AWS-RunShellScript":
            self._start(json.loads(answer.body)["Command"]["CommandId"], payload)
        elif action == "GetCommandInvocation":
            run = self._runs.get((payload["CommandId"], payload["InstanceId"]))
            if run is not None:
                return Answer.json(200, _invocation(json.loads(answer.body), run), _JSON_11)
        return answer

    def _registered(self, payload: dict[str, Any]) -> list[dict[str, str]]:
        """``DescribeInstanceInformation`` rows for the managed instances the filters ask for."""
        wanted = None
        for f in payload.get("Filters") or []:
            if f.get("Key") == "InstanceIds":
                wanted = set(f.get("Values") or [])
        return [
            {"InstanceId": iid, "PingStatus": ping, "PlatformType": "Linux", "AgentVersion": "3.3.0.0"}
            for iid, ping in sorted(self.managed.items())
            if wanted is None or iid in wanted
        ]

    def _start(self, command_id: str, payload: dict[str, Any]) -> None:
        """Run the script with bash for each managed, Online instance, as its agent would."""
        script = "\n".join(payload["Parameters"]["commands"])
        for iid in payload.get("InstanceIds") or []:
            if self.managed.get(iid) == "Online":
                run: dict[str, Any] = {"done": False}
                self._runs[(command_id, iid)] = run
                threading.Thread(target=_run, args=(run, script), daemon=True).start()


def _invocation(answer: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """moto's ``GetCommandInvocation`` answer with the run's state, output and exit code."""
    if not run["done"]:
        answer.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
    else:
        ok = run["code"] == 0
        answer.update(
            Status="Success" if ok else "Failed",
            StatusDetails="Success" if ok else "Failed",
            ResponseCode=run["code"],
            StandardOutputContent=run["stdout"],
            StandardErrorContent=run["stderr"],
        )
    return answer


def _run(run: dict[str, Any], script: str) -> None:
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False)
    run.update(stdout=done.stdout, stderr=done.stderr, code=done.returncode, done=True)
