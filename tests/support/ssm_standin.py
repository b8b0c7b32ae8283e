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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class SsmStandIn:
    """The stand-in server; ``url`` is its endpoint. Use as a context manager."""

    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url
        self.managed: dict[str, str] = {}
        self.agent = False
        self.calls: list[str] = []
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self._runs: dict[tuple[str, str], dict[str, Any]] = {}
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                action = target.rpartition(".")[2]
                standin.calls.append(action)
                payload = json.loads(body or b"{}")
                standin.payloads.append((action, payload))
                answer = standin.handle(action, payload, dict(self.headers), body)
                status, data = answer
                out = json.dumps(data).encode() if not isinstance(data, bytes) else data
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SsmStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _relay(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.post(self.moto_url + "/", data=body, headers=keep, timeout=30)
        return answer.status_code, answer.content

    def handle(self, action: str, payload: dict[str, Any], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if action == "DescribeInstanceInformation":
            wanted = None
            for f in payload.get("Filters") or []:
                if f.get("Key") == "InstanceIds":
                    wanted = set(f.get("Values") or [])
            rows = [
                {"InstanceId": iid, "PingStatus": ping, "PlatformType": "Linux", "AgentVersion": "3.3.0.0"}
                for iid, ping in sorted(self.managed.items())
                if wanted is None or iid in wanted
            ]
            return 200, {"InstanceInformationList": rows}
        status, data = self._relay(headers, body)
        if not self.agent or status != 200:
            return status, data
        if action == "SendCommand" and payload.get("DocumentName") == "AWS-RunShellScript":
            command_id = json.loads(data)["Command"]["CommandId"]
            script = "\n".join(payload["Parameters"]["commands"])
            for iid in payload.get("InstanceIds") or []:
                if self.managed.get(iid) == "Online":
                    run: dict[str, Any] = {"done": False}
                    self._runs[(command_id, iid)] = run
                    threading.Thread(target=self._run, args=(run, script), daemon=True).start()
        elif action == "GetCommandInvocation":
            run = self._runs.get((payload["CommandId"], payload["InstanceId"]))
            if run is not None:
                answer = json.loads(data)
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
                return 200, answer
        return status, data

    @staticmethod
    def _run(run: dict[str, Any], script: str) -> None:
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False)
        run.update(stdout=done.stdout, stderr=done.stderr, code=done.returncode, done=True)
