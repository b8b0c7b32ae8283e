"""Thin REST layer over Apache Livy: one method per endpoint, typed results.

Rules that keep users' work safe:

* one pooled ``requests.Session``; ``X-Requested-By`` on every request (Livy's CSRF
  protection wants it on non-GET requests; it is harmless elsewhere); a timeout on every
  request; TLS verification on unless told otherwise;
* only requests that are harmless to repeat are retried (GET and DELETE, on connection
  errors and 502/503/504), with exponential backoff;
* a POST that creates something (statement, session, batch) is never re-sent blindly. If it
  failed in a way that may have reached the server, we look at the server's list to learn
  whether it was accepted (see ``submit_statement``). A statement never runs twice because of
  a retry.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ..redact import redact_url, split_userinfo
from .errors import (
    GATEWAY_STATUSES,
    LivyAuthError,
    LivyError,
    LivyHTTPError,
    LivyNotFound,
    LivyUnreachable,
)
from .models import Batch, Session, Statement
from .polling import Outage, give_up_after, ride_out
from .protocol import BATCH_FIELDS, SESSION_FIELDS, SessionState

RETRY_STATUSES = GATEWAY_STATUSES
#: Bytes per read of an answer's body. A statement's output can be megabytes (a plot chunk is
#: 2.8 MB): in requests' own 10 KiB pieces such an answer took ~13 ms longer (median of 40
#: paired GETs on loopback, loaded 2-core machine).
BODY_READ_SIZE = 1 << 20
#: Backoff while asking whether a submit whose answer was lost reached Livy: first, factor, cap (seconds).
RECONCILE_BACKOFF = (0.2, 2.0, 2.0)
AuthSpec = Union[None, str, tuple, AuthBase]


def make_auth(
    kind: Optional[str],
    username: Optional[str] = None,
    password: Optional[str] = None,
    sigv4_service: Optional[str] = None,
    region: Optional[str] = None,
):
    """A requests auth object for ``kind`` none / basic / kerberos / sigv4.

    ``sigv4`` signs every request with AWS Signature Version 4 for ``sigv4_service`` (default
    ``emr-serverless``) in ``region`` (default: the boto3 session's), see :mod:`.sigv4`.
    """
    kind = (kind or "none").lower()
    if kind == "none":
        return None
    if kind == "basic":
        if not username:
            raise LivyError("basic auth needs a user name: pass --user (and --password) or set them in the config")
        return HTTPBasicAuth(username, password or "")
    if kind == "kerberos":
        try:
            from requests_kerberos import OPTIONAL, HTTPKerberosAuth
        except ImportError:
            raise LivyError(
                "Kerberos auth needs the optional extra: pip install 'hail-emr-lab[kerberos]' (and a ticket from kinit)"
            ) from None
        return HTTPKerberosAuth(mutual_authentication=OPTIONAL)
    if kind == "sigv4":
        from .sigv4 import EMR_SERVERLESS_SERVICE, SigV4Auth

        return SigV4Auth(sigv4_service or EMR_SERVERLESS_SERVICE, region)
    raise LivyError(f"unknown auth {kind!r}: use none, basic, kerberos or sigv4")


def normalize_url(url: str) -> str:
    """Check a Livy URL and strip the trailing slash; a clear error if it is malformed.

    Credentials in the URL are kept (see ``LivyClient``), but never shown in the errors.
    """
    raw = (url or "").strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LivyError(
            f"{redact_url(url)!r} is not a Livy URL: expected http(s)://HOST:PORT, e.g. http://10.0.0.5:8998 "
            "(or use --cluster-id to find the cluster's endpoint)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise LivyError(f"{redact_url(url)!r} has an invalid port: expected a number such as 8998") from None
    return raw.rstrip("/")


def _server_message(content: bytes) -> Optional[str]:
    """The ``msg`` (or ``message``, ``error``) of a JSON error answer's body, else None."""
    try:
        body = json.loads(content.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        return None
    if isinstance(body, dict):
        msg = body.get("msg") or body.get("message") or body.get("error")
        return str(msg) if msg is not None else None
    return None


class LivyClient:
    """One method per Livy REST endpoint (Apache Livy REST API docs).

    ``url`` may carry ``user:password@``: the credentials are then sent as HTTP basic auth
    (unless ``auth`` is given) and ``self.url`` is the URL without them, so no message, log
    line or ``repr`` built from it holds the password.
    """

    def __init__(
        self,
        url: str,
        auth: AuthSpec = None,
        headers: Optional[dict[str, str]] = None,
        verify: Union[bool, str] = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.2,
        proxy_user: Optional[str] = None,
    ):
        self.url, url_credentials = split_userinfo(normalize_url(url))
        if url_credentials is not None and auth is None:
            auth = HTTPBasicAuth(*url_credentials)
        parts = urlsplit(self.url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.backoff = backoff
        self.proxy_user = proxy_user
        self.http = requests.Session()
        self.http.headers.update(
            {"X-Requested-By": "hail-emr-lab", "Content-Type": "application/json", "Accept": "application/json"}
        )
        self.http.headers.update(headers or {})
        if isinstance(auth, tuple):
            auth = make_auth(*auth)
        elif isinstance(auth, str):
            auth = make_auth(auth)
        self.http.auth = auth
        self.http.verify = verify
        #: Seconds to keep asking whether Livy accepted a statement whose answer was lost.
        self.reconcile_timeout = 30.0
        # Counted for tests and benchmarks: every HTTP request this client made.
        self.request_count = 0

    # ------------------------------------------------------------------ transport

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()

    def __enter__(self) -> LivyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: Exception) -> LivyUnreachable:
        text = str(exc)
        where = f"port {self.port} on {self.host}"
        if isinstance(exc, requests.exceptions.SSLError):
            return LivyUnreachable(
                f"TLS with {self.host}:{self.port} failed ({exc.__class__.__name__}): if the cluster uses a "
                "private CA, pass its bundle with --ca-bundle (config key 'verify')"
            )
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return LivyUnreachable(
                f"cannot resolve {self.host!r}: check the Livy URL, or use --cluster-id to look the master up"
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout) or "timed out" in text:
            return LivyUnreachable(
                f"{where} did not answer in {self.connect_timeout:g} s: allow TCP {self.port} from this "
                "notebook's security group on the EMR master (and check the cluster is running)"
            )
        if "Connection refused" in text or "Errno 111" in text:
            return LivyUnreachable(
                f"nothing listens on {where} (connection refused): Livy is not running there; check the "
                "cluster has the Livy application and is in state WAITING or RUNNING"
            )
        return LivyUnreachable(f"could not talk to Livy at {self.url}: {exc.__class__.__name__}: {exc}")

    def _raise_for_status(self, response: requests.Response, content: bytes, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        msg = _server_message(content)
        detail = f": {msg}" if msg else ""
        if status in (401, 403):
            hint = getattr(self.http.auth, "refusal_hint", None) or (
                "Check the auth settings (--auth basic --user U, or --auth kerberos after kinit) and that your "
                "user may use Livy."
            )
            raise LivyAuthError(
                f"Livy refused {what} with HTTP {status}{detail}. {hint}",
                status,
                msg,
            )
        if status == 404:
            raise LivyNotFound(f"{what}: not found (HTTP 404){detail}", status, msg)
        if status in GATEWAY_STATUSES and msg is None:
            raise LivyHTTPError(
                f"{what} failed with HTTP {status} ({response.reason}) from the proxy or gateway in front of "
                f"Livy at {self.url}: Livy may be restarting or overloaded (or the URL points at a proxy "
                "whose Livy is down)",
                status,
            )
        if msg is None and "json" not in response.headers.get("Content-Type", ""):
            raise LivyHTTPError(
                f"{what} failed with HTTP {status} and a non-JSON answer ({response.reason}): the URL may "
                f"point at a proxy or another service, not at Livy ({self.url})",
                status,
            )
        raise LivyHTTPError(f"{what} failed with HTTP {status}{detail}", status, msg)

    def _json(self, response: requests.Response, content: bytes, what: str) -> Any:
        """The answer's JSON (UTF-8, as RFC 8259 wants it); LivyHTTPError if it is not JSON."""
        try:
            return json.loads(content.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
            snippet = content[:80].decode("utf-8", "replace").replace("\n", " ")
            raise LivyHTTPError(
                f"{what}: the server answered HTTP {response.status_code} with something that is not JSON "
                f"({snippet!r}...): is {self.url} a Livy endpoint? A proxy or login page may be in the way.",
                response.status_code,
            ) from None

    def _send(self, method: str, url: str, body: Optional[dict[str, Any]], params: Optional[dict[str, Any]]):
        """(response, body bytes): one exchange, the body read in :data:`BODY_READ_SIZE` pieces.

        Raises what requests raises; a body cut short raises ``requests.ConnectionError`` like a
        connection that broke before the answer (both: the request may have reached Livy).
        """
        response = self.http.request(
            method, url, json=body, params=params, timeout=(self.connect_timeout, self.read_timeout), stream=True
        )
        try:
            content = b"".join(response.iter_content(BODY_READ_SIZE))
        except requests.exceptions.ChunkedEncodingError as exc:  # e.g. fewer bytes than Content-Length
            raise requests.exceptions.ConnectionError(f"the answer was cut short: {exc}") from exc
        finally:
            response.close()  # returns a fully read connection to the pool, drops a broken one
        return response, content

    def request(
        self,
        method: str,
        path: str,
        what: str,
        body: Optional[dict[str, Any]] = None,
        params: Optional[dict[str, Any]] = None,
        retry: Optional[bool] = None,
    ) -> Any:
        """Send one request and return the decoded JSON.

        ``retry`` defaults to True for GET/DELETE (idempotent) and False otherwise. A POST is
        only ever re-sent when the connection could not even be opened (nothing reached the
        server).
        """
        if retry is None:
            retry = method in ("GET", "DELETE", "HEAD")
        if self.proxy_user:
            params = dict(params or {}, doAs=self.proxy_user)
        url = self.url + path
        attempt = 0
        while True:
            attempt += 1
            self.request_count += 1
            try:
                response, content = self._send(method, url, body, params)
            except requests.exceptions.ConnectionError as exc:
                never_sent = _never_sent(exc)
                if attempt <= self.retries and (retry or never_sent):
                    time.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                if not never_sent and not retry:
                    raise _MaybeSent(self._unreachable(exc)) from exc
                raise self._unreachable(exc) from None
            except requests.exceptions.Timeout as exc:  # read timeout: the request was sent
                if retry and attempt <= self.retries:
                    time.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                err = LivyUnreachable(f"{what}: Livy at {self.url} did not answer within {self.read_timeout:g} s")
                if not retry:
                    raise _MaybeSent(err) from exc
                raise err from None
            if response.status_code in RETRY_STATUSES:
                if retry and attempt <= self.retries:
                    time.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                if not retry:
                    # A gateway error on a POST: the server behind it may have acted.
                    try:
                        self._raise_for_status(response, content, what)
                    except LivyHTTPError as err:
                        raise _MaybeSent(err) from None
            self._raise_for_status(response, content, what)
            if response.status_code == 204 or not content:
                return {}
            return self._json(response, content, what)

    # ------------------------------------------------------------------ sessions

    def list_sessions(self, from_: int = 0, size: int = 1000) -> list[Session]:
        """All sessions on the endpoint (``GET /sessions``)."""
        data = self.request("GET", "/sessions", "listing sessions", params={"from": from_, "size": size})
        return [Session.from_json(s) for s in data.get("sessions") or []]

    def create_session(self, **fields: Any) -> Session:
        """``POST /sessions`` with the fields that are set (see ``SESSION_FIELDS``).

        If the answer is lost after the request may have reached Livy, a session with the same
        ``name`` (names are unique in Livy) is looked up instead of creating a second one.
        """
        body = _only_set(fields, SESSION_FIELDS, "session")
        try:
            data = self.request("POST", "/sessions", "creating a session", body=body)
        except _MaybeSent as maybe:
            found = self._reconcile_by_name(self.list_sessions, body.get("name"))
            if found is None:
                raise maybe.error from None
            return found
        return Session.from_json(data)

    def get_session(self, session_id: int) -> Session:
        """``GET /sessions/{id}`` (this also counts as a heartbeat for Livy)."""
        return Session.from_json(self.request("GET", f"/sessions/{session_id}", f"getting session {session_id}"))

    def session_state(self, session_id: int) -> SessionState:
        """``GET /sessions/{id}/state``."""
        data = self.request("GET", f"/sessions/{session_id}/state", f"getting the state of session {session_id}")
        return SessionState.parse(data.get("state"))

    def delete_session(self, session_id: int) -> None:
        """``DELETE /sessions/{id}``; an already deleted session is not an error."""
        try:
            self.request("DELETE", f"/sessions/{session_id}", f"deleting session {session_id}")
        except LivyNotFound:
            pass  # gone already: what the caller wanted

    def session_log(self, session_id: int, from_: Optional[int] = None, size: int = 100) -> list[str]:
        """Lines of the session log; by default the last ``size`` lines."""
        params: dict[str, Any] = {"size": size}
        if from_ is not None:
            params["from"] = from_
        else:
            params["from"] = -1  # Livy: negative from = the last `size` lines
        data = self.request(
            "GET", f"/sessions/{session_id}/log", f"reading the log of session {session_id}", params=params
        )
        return [str(line) for line in data.get("log") or []]

    # ------------------------------------------------------------------ statements

    def submit_statement(
        self, session_id: int, code: str, kind: Optional[str] = None, known_last_id: Optional[int] = None
    ) -> Statement:
        """``POST /sessions/{id}/statements``, never sent twice.

        If the connection breaks after the request may have reached Livy (or a gateway answers
        502/503/504), the statement list is read to learn whether the statement was accepted:
        a statement with exactly this code and an id above ``known_last_id`` (the newest id the
        caller knew before submitting; None = any) is ours. Only if none is found is the error
        raised; the code is never re-sent automatically.
        """
        body: dict[str, Any] = {"code": code}
        if kind:
            body["kind"] = kind
        what = f"submitting a statement to session {session_id}"
        try:
            data = self.request("POST", f"/sessions/{session_id}/statements", what, body=body)
        except _MaybeSent as maybe:
            found = self._reconcile_statement(session_id, code, known_last_id)
            if found is None:
                raise LivyError(
                    f"{maybe.error} — Livy did not record the statement, so it did not run; "
                    "nothing was re-sent. Run the cell again."
                ) from None
            return found
        return Statement.from_json(data, session_id)

    def _reconcile_statement(self, session_id: int, code: str, known_last_id: Optional[int]) -> Optional[Statement]:
        """Our statement if Livy recorded it, None if it did not; raises LivyError if Livy will not say.

        While Livy does not answer (see ``transient_reason``) we keep asking for up to
        ``reconcile_timeout`` seconds: concluding "it did not run" without an answer could make
        the user run it twice.
        """

        def unknown(outage: Outage, exc: LivyError) -> LivyError:
            return LivyError(
                f"submitting a statement to session {session_id}: the answer was lost, and Livy {outage.reason} "
                f"for {self.reconcile_timeout:g} s when asked whether it accepted the statement, so it may "
                "be running on the cluster. Nothing was re-sent: %hail cancel stops it if it runs; only "
                "then run the cell again."
            )

        recent = ride_out(
            lambda: self.list_statements(session_id, size=50, order="desc"),
            give_up_after(self.reconcile_timeout, unknown),
            backoff=RECONCILE_BACKOFF,
        )
        for st in recent:
            if st.code == code and (known_last_id is None or st.id > known_last_id):
                return st
        return None

    def _reconcile_by_name(self, lister: Callable[[], list], name: Optional[str]):
        if not name:
            return None
        try:
            items = lister()
        except LivyError:
            return None
        matches = [item for item in items if item.name == name and item.state.is_alive]
        return max(matches, key=lambda item: item.id) if matches else None

    def get_statement(self, session_id: int, statement_id: int) -> Statement:
        """``GET /sessions/{id}/statements/{sid}``."""
        data = self.request(
            "GET",
            f"/sessions/{session_id}/statements/{statement_id}",
            f"getting statement {statement_id} of session {session_id}",
        )
        return Statement.from_json(data, session_id)

    def list_statements(
        self, session_id: int, from_: int = 0, size: int = 100, order: Optional[str] = None
    ) -> list[Statement]:
        """``GET /sessions/{id}/statements`` (``order="desc"`` for the newest first)."""
        params: dict[str, Any] = {"from": from_, "size": size}
        if order:
            params["order"] = order
        data = self.request(
            "GET", f"/sessions/{session_id}/statements", f"listing statements of session {session_id}", params=params
        )
        return [Statement.from_json(s, session_id) for s in data.get("statements") or []]

    def cancel_statement(self, session_id: int, statement_id: int) -> None:
        """``POST /sessions/{id}/statements/{sid}/cancel`` (repeating a cancel is harmless)."""
        self.request(
            "POST",
            f"/sessions/{session_id}/statements/{statement_id}/cancel",
            f"cancelling statement {statement_id} of session {session_id}",
            retry=True,
        )

    def complete(self, session_id: int, code: str, cursor: int, kind: str = "pyspark") -> list[str]:
        """``POST /sessions/{id}/completion``: completion candidates at ``cursor``."""
        data = self.request(
            "POST",
            f"/sessions/{session_id}/completion",
            "asking for completions",
            body={"code": code, "kind": kind, "cursor": cursor},
            retry=True,  # read-only on the server
        )
        return [str(c) for c in data.get("candidates") or []]

    # ------------------------------------------------------------------ batches

    def list_batches(self, from_: int = 0, size: int = 1000) -> list[Batch]:
        """``GET /batches``."""
        data = self.request("GET", "/batches", "listing batches", params={"from": from_, "size": size})
        return [Batch.from_json(b) for b in data.get("sessions") or []]

    def submit_batch(self, file: str, **fields: Any) -> Batch:
        """``POST /batches``; like sessions, a lost answer is reconciled by ``name``."""
        body = _only_set(fields, tuple(f for f in BATCH_FIELDS if f != "file"), "batch")
        body["file"] = file
        try:
            data = self.request("POST", "/batches", "submitting a batch", body=body)
        except _MaybeSent as maybe:
            found = self._reconcile_by_name(self.list_batches, body.get("name"))
            if found is None:
                raise maybe.error from None
            return found
        return Batch.from_json(data)

    def get_batch(self, batch_id: int) -> Batch:
        """``GET /batches/{id}``."""
        return Batch.from_json(self.request("GET", f"/batches/{batch_id}", f"getting batch {batch_id}"))

    def batch_state(self, batch_id: int) -> SessionState:
        """``GET /batches/{id}/state``."""
        data = self.request("GET", f"/batches/{batch_id}/state", f"getting the state of batch {batch_id}")
        return SessionState.parse(data.get("state"))

    def batch_log(self, batch_id: int, from_: Optional[int] = None, size: int = 100) -> list[str]:
        """Lines of a batch's log; by default the last ``size`` lines."""
        params = {"from": -1 if from_ is None else from_, "size": size}
        data = self.request("GET", f"/batches/{batch_id}/log", f"reading the log of batch {batch_id}", params=params)
        return [str(line) for line in data.get("log") or []]

    def delete_batch(self, batch_id: int) -> None:
        """``DELETE /batches/{id}`` (kills it if running); already gone is not an error."""
        try:
            self.request("DELETE", f"/batches/{batch_id}", f"deleting batch {batch_id}")
        except LivyNotFound:
            pass  # gone already: what the caller wanted

    # ------------------------------------------------------------------ helpers

    def ping(self) -> bool:
        """True when the endpoint answers as Livy does: ``GET /sessions`` lists sessions (one
        request, no retries; any failure, or another server's answer, is False)."""
        saved = self.retries
        self.retries = 0
        try:
            answer = self.request("GET", "/sessions", "checking the endpoint", params={"size": 1})
            return isinstance(answer, dict) and "sessions" in answer
        except LivyError:
            return False
        finally:
            self.retries = saved


class _MaybeSent(Exception):
    """Internal: a non-idempotent request failed after it may have reached the server."""

    def __init__(self, error: LivyError):
        super().__init__(str(error))
        self.error = error


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True if the connection failed before any byte of the request left (safe to resend)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        cause = todo.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if type(cause).__name__ in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError"):
            return True
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            return True
        if isinstance(cause, BaseException):
            todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None)]
            todo += [arg for arg in cause.args if isinstance(arg, BaseException)]
    return False


def _only_set(fields: dict[str, Any], allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise LivyError(f"unknown {what} field(s) {unknown}; Livy accepts {list(allowed)}")
    return {k: v for k, v in fields.items() if v is not None and v != [] and v != {}}
