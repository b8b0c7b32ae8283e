"""A SigV4-verifying HTTP gateway in front of a Livy server, for tests (no tests here).

It stands where AWS's front end stands before the EMR Serverless Livy endpoint: every request
must carry a valid AWS Signature Version 4 for the gateway's ``service`` and ``region``, made
with one of the ``credentials`` it knows (access key id -> (secret, session token or None)).
The signature is recomputed with botocore (``SigV4Auth.canonical_request`` /
``string_to_sign`` / ``signature``) from what arrived: method, path, query, the headers the
request says it signed, and the body. Any mismatch gets 403 with an AWS-style JSON error body
(``{"message": ...}`` and an ``x-amzn-ErrorType`` header), as AWS answers:

* no ``Authorization`` -> ``MissingAuthenticationTokenException``;
* unknown key id or wrong session token -> ``UnrecognizedClientException``;
* wrong service or region in the credential scope, a signature that does not match (body hash,
  a signed header changed or missing), ``host``/``x-amz-date`` not signed ->
  ``InvalidSignatureException``;
* ``X-Amz-Date`` more than 5 minutes away from now -> ``InvalidSignatureException`` ("Signature expired").

Accepted requests are relayed to the upstream Livy without the AWS headers (with the upstream's
bearer token when it needs one). ``log`` records (method, path, access key id or None, verdict).
With ``session_app_id`` set, session answers carry it as ``appId`` and no ``appInfo`` links, as
the EMR Serverless endpoint's answer for a session of that job run would without its links.

What it does not cover: AWS's IAM decision (AccessLivyEndpoints, PassRole on the execution role,
session isolation per caller), the real endpoint's TLS, and EMR Serverless's own Livy behaviour.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import threading
from typing import Optional

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support.proxy import Answer, RelayProxy, Request

MAX_SKEW = dt.timedelta(minutes=5)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)
#: Headers relayed upstream (everything AWS-specific stays here).
_RELAYED = ("Content-Type", "Accept", "X-Requested-By")


class Refused(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class SigV4Gateway(RelayProxy):
    """``SigV4Gateway(upstream_url, credentials, region=..., service=...).start()``; ``.url`` for
    clients (a :class:`~support.proxy.RelayProxy` whose rule is AWS's signature check)."""

    upstream_timeout = 120.0

    def __init__(
        self,
        upstream: str,
        credentials: dict[str, tuple[str, Optional[str]]],
        region: str = "us-east-1",
        service: str = "emr-serverless",
        upstream_token: Optional[str] = None,
    ):
        super().__init__(upstream)
        self.credentials = dict(credentials)
        self.region = region
        self.service = service
        self.upstream_token = upstream_token
        self.log: list[tuple[str, str, Optional[str], str]] = []
        #: JSON bodies of the accepted POST /sessions requests (what a session was created with).
        self.created: list[dict] = []
        self.session_app_id: Optional[str] = None
        self._credentials_lock = threading.Lock()

    def rotate(self, old_key: str, new_key: str, secret: str, token: Optional[str] = None) -> None:
        """Accept ``new_key`` from now on and revoke ``old_key`` (as an expired role session is)."""
        self.allow(new_key, secret, token)
        self.revoke(old_key)

    def allow(self, key: str, secret: str, token: Optional[str] = None) -> None:
        with self._credentials_lock:
            self.credentials[key] = (secret, token)

    def revoke(self, key: str) -> None:
        with self._credentials_lock:
            self.credentials.pop(key, None)

    # ------------------------------------------------------------------ verification

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
        """The access key id of a correctly signed request, else :class:`Refused`."""
        lower = {k.lower(): v for k, v in headers.items()}
        auth = lower.get("authorization")
        if not auth:
            raise Refused("MissingAuthenticationTokenException", "Missing Authentication Token")
        m = _AUTH_RE.match(auth.strip())
        if not m:
            raise Refused("IncompleteSignatureException", f"Authorization header requires a valid SigV4 value: {auth[:40]!r}")
        if m["service"] != self.service:
            raise Refused("InvalidSignatureException", f"Credential should be scoped to correct service: '{self.service}'. ")
        if m["region"] != self.region:
            raise Refused(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{m['region']}'. ",
            )
        with self._credentials_lock:
            known = self.credentials.get(m["key"])
        if known is None:
            raise Refused("UnrecognizedClientException", "The security token included in the request is invalid.")
        secret, token = known
        if token is not None and lower.get("x-amz-security-token") != token:
            raise Refused("UnrecognizedClientException", "The security token included in the request is invalid.")
        signed = m["signed"].split(";")
        for needed in ("host", "x-amz-date"):
            if needed not in signed:
                raise Refused("InvalidSignatureException", f"'{needed}' must be a 'SignedHeader' in the AWS Authorization.")
        stamp = lower.get("x-amz-date", "")
        try:
            when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise Refused("IncompleteSignatureException", f"X-Amz-Date {stamp!r} is not a SigV4 timestamp") from None
        now = dt.datetime.now(dt.timezone.utc)
        if abs(now - when) > MAX_SKEW:
            raise Refused(
                "InvalidSignatureException",
                f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
                f"({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)",
            )
        if stamp[:8] != m["date"]:
            raise Refused("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from X-Amz-Date.")
        missing = [h for h in signed if h not in lower]
        if missing:
            raise Refused("InvalidSignatureException", f"Signed header(s) missing from the request: {', '.join(missing)}")
        signer = SigV4Auth(Credentials(m["key"], secret, token), self.service, self.region)
        url = f"http://{lower['host']}{path}"
        request = AWSRequest(method=method, url=url, data=body, headers={h: lower[h] for h in signed})
        request.context["timestamp"] = stamp
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != m["sig"]:
            raise Refused(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.",
            )
        return m["key"]

    # ------------------------------------------------------------------ relay

    def relay(self, request: Request) -> Optional[Answer]:
        try:
            key = self.verify(request.method, request.path, request.headers, request.body)
        except Refused as exc:
            self.log.append((request.method, request.path, None, exc.kind))
            kind = f"{exc.kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"
            return Answer.json(403, {"message": exc.message}, x_amzn_ErrorType=kind)
        self.log.append((request.method, request.path, key, "ok"))
        if request.method == "POST" and request.route.rstrip("/") == "/sessions":
            self.created.append(json.loads(request.body or b"{}"))
        relayed = {k: v for k in _RELAYED if (v := request.header(k)) is not None}
        if self.upstream_token:
            relayed["Authorization"] = f"Bearer {self.upstream_token}"
        try:
            upstream = self.forward(Request(request.method, request.path, relayed, request.body))
        except (OSError, http.client.HTTPException) as exc:
            return Answer.json(502, {"message": f"upstream: {exc}"})
        body = upstream.body
        is_session = re.fullmatch(r"/sessions(/\d+)?/?", request.route)
        if self.session_app_id and upstream.status == 200 and request.method == "GET" and is_session:
            body = self._as_job_run(json.loads(body))
        headers = [("Content-Type", upstream.header("Content-Type") or "application/json")]
        headers += [("Location", v) for v in [upstream.header("Location")] if v is not None]
        return Answer(upstream.status, upstream.reason, headers, body)

    def _as_job_run(self, answer: dict) -> bytes:
        for session in answer.get("sessions", [answer]):
            session["appId"], session["appInfo"] = self.session_app_id, {"driverLogUrl": None, "sparkUiUrl": None}
        return json.dumps(answer).encode()
