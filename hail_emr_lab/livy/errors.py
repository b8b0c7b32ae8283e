"""Errors of the Livy client: one hierarchy, messages that say what to do."""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import HailEmrLabError
from .models import Output


class LivyError(HailEmrLabError):
    """Anything that went wrong talking to Livy."""


class LivyUnreachable(LivyError):
    """Nothing answered at the endpoint (refused, timed out, DNS, TLS)."""


class LivyTimeout(LivyError):
    """We waited longer than allowed (for a session to start, or a statement to finish)."""


class LivyHTTPError(LivyError):
    """Livy (or a proxy in front of it) answered with an HTTP error."""

    def __init__(self, message: str, status: int, server_message: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class LivyAuthError(LivyHTTPError):
    """401/403: the credentials were refused."""


class LivyNotFound(LivyHTTPError):
    """404: the session, statement or batch does not exist (any more)."""


class SessionDead(LivyError):
    """The session ended (error, dead, killed): its remote variables are gone."""

    def __init__(self, message: str, session_id: Optional[int] = None, log_tail: Sequence[str] = ()):
        super().__init__(message)
        self.session_id = session_id
        self.log_tail = list(log_tail)


class StatementError(LivyError):
    """The code raised on the cluster. ``output`` holds ename, evalue and the traceback."""

    def __init__(self, output: Output, statement_id: Optional[int] = None):
        super().__init__(output.error_text or "the statement failed")
        self.output = output
        self.statement_id = statement_id


class StatementCancelled(LivyError):
    """The statement was cancelled (by us or by someone else)."""


class StatementInDoubt(LivyError):
    """We stopped waiting, but the statement may still be running on the cluster.

    Raised when Livy (or the gateway in front of it) did not answer for longer than the
    session's ``retry_timeout``, or when cancelling a statement that ran past its timeout
    failed. ``session_id`` and ``statement_id`` say where to find it again.
    """

    def __init__(self, message: str, session_id: int, statement_id: int):
        super().__init__(message)
        self.session_id = session_id
        self.statement_id = statement_id


class StatementInterrupted(KeyboardInterrupt):
    """Ctrl-C while waiting for a statement (still a KeyboardInterrupt, so nothing swallows it).

    ``cancelled`` is True when Livy accepted the cancel request; otherwise the statement
    continues on the cluster and ``problem`` says why the cancel request failed.
    """

    def __init__(self, session_id: int, statement_id: int, cancelled: bool, problem: Optional[str] = None):
        where = f"statement {statement_id} of session {session_id}"
        super().__init__(
            f"{where} was cancelled on the cluster" if cancelled
            else f"{where} continues on the cluster: the cancel request failed ({problem})"
        )
        self.session_id = session_id
        self.statement_id = statement_id
        self.cancelled = cancelled
        self.problem = problem


#: HTTP statuses a gateway (load balancer, Knox, nginx) answers while Livy restarts or is busy.
GATEWAY_STATUSES = frozenset({502, 503, 504})


def transient_reason(exc: BaseException) -> Optional[str]:
    """How Livy failed, if it is worth waiting out: ``"answered 502"``, ``"did not answer"``; else None.

    Transient: no answer at all (refused, reset, timed out) and gateway errors 502/503/504.
    Everything else (401/403, 404, 400, 500) is an answer that waiting will not change.
    """
    if isinstance(exc, LivyUnreachable):
        return "did not answer"
    if isinstance(exc, LivyHTTPError) and exc.status in GATEWAY_STATUSES:
        return f"answered {exc.status}"
    return None
