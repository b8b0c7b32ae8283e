"""An HTTP proxy in front of the moto server: counts S3 requests, adds the conditional-write
check moto lacks, and lets a test act at an exact moment of a transfer.

A :class:`~support.proxy.RelayProxy`, so it has ``requests`` (every (method, path-with-query)
a client sent, in order), ``count``, ``reset``, ``delay`` (seconds added to every request,
which slows a run down so a test can stop it midway) and ``down`` (every connection closed
without an answer: S3 unreachable); its own rules are:

* conditional ``CompleteMultipartUpload``: S3 honours ``If-Match`` / ``If-None-Match`` on it (the
  write happens only if the object still has that ETag / does not exist yet); moto 5 ignores
  both and overwrites. The proxy checks the condition against moto with a HEAD first and answers
  as S3 does: 412 ``PreconditionFailed``, or 404 ``NoSuchKey`` for ``If-Match`` on a missing key.
  What this stand-in does not cover: S3 checks and writes atomically; here another writer could
  slip in between the HEAD and the write (the tests never race a writer against a completion);
* ``on_answer``: called as ``f(method, path, status)`` after moto answered a request and before
  the client gets the answer (a test can ``kill -9`` the client there: the request took
  effect, the client never learns it).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from support.proxy import Answer, RelayProxy, Request

_PRECONDITION_FAILED = ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
#: What the HEAD of the condition check carries over from the client's request (its signature).
_HEAD_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token", "host")


def _error(status: int, code: str, message: str) -> Answer:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    return Answer(status, "Refused", [("Content-Type", "application/xml")], body)


class S3Proxy(RelayProxy):
    """``S3Proxy(moto_url).start()`` -> ``.url`` for the clients under test."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.refused: list[tuple[str, str, int]] = []  # conditional completions refused here
        self.on_answer: Optional[Callable[[str, str, int], None]] = None
        self._refused_lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        with self._refused_lock:
            self.refused.clear()

    def relay(self, request: Request) -> Optional[Answer]:
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        refused = None
        if request.method == "POST" and "uploadId" in query:
            refused = self._precondition(request)
        if refused is not None:
            with self._refused_lock:
                self.refused.append((request.method, request.path, refused.status))
            answer = refused
        else:
            answer = self.forward(request)
        if self.on_answer is not None:
            self.on_answer(request.method, request.path, answer.status)
        return answer

    def _precondition(self, request: Request) -> Optional[Answer]:
        """S3's check of a conditional CompleteMultipartUpload; None if it may proceed."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        if_match = headers.get("if-match")
        if_none = headers.get("if-none-match")
        if not (if_match or if_none):
            return None
        auth = {k: v for k, v in request.headers.items() if k.lower() in _HEAD_HEADERS}
        head = self.forward(Request("HEAD", request.route, auth))
        exists = head.status == 200
        if if_none == "*" and exists:
            return _error(412, *_PRECONDITION_FAILED)
        if if_match and not exists:
            return _error(404, "NoSuchKey", "The specified key does not exist.")
        if if_match and if_match.strip('"') != (head.header("ETag") or "").strip('"'):
            return _error(412, *_PRECONDITION_FAILED)
        return None
