"""A stand-in for EMR Serverless's GetDashboardForJobRun, in front of moto (moto 5.2 lacks it).

Tests point boto3's EMR Serverless client at it (``AWS_ENDPOINT_URL_EMR_SERVERLESS``). Every
call is relayed to the moto server, except
``GET /applications/<app>/jobruns/<run>/dashboard``: for a job run moto knows it answers
``{"url": ...}`` in the API reference's form (a Spark UI URL on ``emrappui-prod``); for one it
does not know, ``ResourceNotFoundException``; with ``deny`` set, ``AccessDeniedException`` (as
for a role without ``emr-serverless:GetDashboardForJobRun``). ``calls`` records the dashboard
requests as (application id, job run id). With ``token`` set, the URL carries it as an
``authToken`` query parameter, as a link that grants access for an hour does.

What it does not cover: real IAM, the real token's form and its one-hour validity, the live UI
versus the Spark History Server, and ``attempt``.
"""

from __future__ import annotations

import re
from typing import Optional

from support.proxy import Answer, RelayProxy, Request

_DASHBOARD = re.compile(r"^/applications/(?P<app>[0-9a-z]+)/jobruns/(?P<run>[0-9a-z]+)/dashboard$")
#: What the stand-in's own look-up of a job run carries over (moto takes region and account from the signature).
_SIGNED = ("authorization", "x-amz-date", "x-amz-security-token", "content-type")


class DashboardStandIn(RelayProxy):
    """``DashboardStandIn(moto_url, region)`` as a context manager; ``url`` is its endpoint
    (a :class:`~support.proxy.RelayProxy` to moto)."""

    def __init__(self, moto_url: str, region: str = "us-east-1") -> None:
        super().__init__(moto_url)
        self.region = region
        self.deny = False
        self.token: Optional[str] = None
        self.calls: list[tuple[str, str]] = []

    def relay(self, request: Request) -> Optional[Answer]:
        match = _DASHBOARD.match(request.route) if request.method == "GET" else None
        if match is None:
            return self.forward(request)
        app, run = match["app"], match["run"]
        self.calls.append((app, run))
        if self.deny:
            return _error(403, "AccessDeniedException",
                          "User is not authorized to perform: emr-serverless:GetDashboardForJobRun")
        signed = {k: v for k, v in request.headers.items() if k.lower() in _SIGNED}
        known = self.forward(Request("GET", f"/applications/{app}/jobruns/{run}", signed))
        if known.status != 200:
            return _error(404, "ResourceNotFoundException", f"Job run {run} does not exist")
        url = f"https://p-{run}-{app}.emrappui-prod.{self.region}.amazonaws.com/shs/history/{run}/jobs/"
        if self.token:
            url += f"?authToken={self.token}"
        return Answer.json(200, {"url": url})


def _error(status: int, kind: str, message: str) -> Answer:
    return Answer.json(status, {"message": message}, x_amzn_ErrorType=kind)
