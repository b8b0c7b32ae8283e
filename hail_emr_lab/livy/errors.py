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
