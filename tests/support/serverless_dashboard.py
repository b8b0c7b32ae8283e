"""A stand-in for EMR Serverless's GetDashboardForJobRun, in front of moto (moto 5.2 lacks it).

Tests point boto3's EMR Serverless client at it (``AWS_ENDPOINT_URL_EMR_SERVERLESS``). Every
call is relayed to the moto server, except
``GET /applications/<app>/jobruns/<run>/dashboard``: for a job run moto knows it answers
``{"url": ...}`` in the API reference's form (a Spark UI URL on ``emrappui-prod``); for one it
does not know, ``ResourceNotFoundException``; with ``deny`` set, ``AccessDeniedException`` (as
for a role without ``emr-serverless:GetDashboardForJobRun``). ``calls`` records the dashboard
requests as (application id, job run id).

What it does not cover: real IAM, the real URL's token and one-hour validity, the live UI
versus the Spark History Server, and ``attempt``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

_DASHBOARD = re.compile(r"^/applications/(?P<app>[0-9a-z]+)/jobruns/(?P<run>[0-9a-z]+)/dashboard(?:\?.*)?$")


class DashboardStandIn:
    """``DashboardStandIn(moto_url, region)`` as a context manager; ``url`` is its endpoint."""

    def __init__(self, moto_url: str, region: str = "us-east-1") -> None:
        self.moto_url = moto_url.rstrip("/")
        self.region = region
        self.deny = False
        self.calls: list[tuple[str, str]] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, out = standin.handle(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DashboardStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        match = _DASHBOARD.match(path) if method == "GET" else None
        if match is None:
            return self._relay(method, path, headers, body)
        app, run = match["app"], match["run"]
        self.calls.append((app, run))
        if self.deny:
            return self._error(403, "AccessDeniedException",
                               "User is not authorized to perform: emr-serverless:GetDashboardForJobRun")
        known = requests.get(f"{self.moto_url}/applications/{app}/jobruns/{run}", headers=_signed(headers), timeout=30)
        if known.status_code != 200:
            return self._error(404, "ResourceNotFoundException", f"Job run {run} does not exist")
        url = f"https://p-{run}-{app}.emrappui-prod.{self.region}.amazonaws.com/shs/history/{run}/jobs/"
        return 200, {"Content-Type": "application/json"}, json.dumps({"url": url}).encode()

    def _relay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        r = requests.request(method, self.moto_url + path, data=body or None, headers=_signed(headers), timeout=60)
        return r.status_code, {"Content-Type": r.headers.get("Content-Type", "application/json")}, r.content

    @staticmethod
    def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", "x-amzn-ErrorType": kind}, json.dumps(
            {"message": message}).encode()


def _signed(headers: dict[str, str]) -> dict[str, str]:
    """The headers moto reads (it takes the region and account from the signature)."""
    keep = ("authorization", "x-amz-date", "x-amz-security-token", "content-type")
    return {k: v for k, v in headers.items() if k.lower() in keep}
