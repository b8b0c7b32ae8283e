"""The Livy client: a thin REST layer (``LivyClient``), a high-level session
(``LivySession``), typed models and one error hierarchy."""

from .client import LivyClient, make_auth, normalize_url
from .errors import (
    LivyAuthError,
    LivyError,
    LivyHTTPError,
    LivyNotFound,
    LivyTimeout,
    LivyUnreachable,
    SessionDead,
    StatementCancelled,
    StatementError,
    StatementInDoubt,
    StatementInterrupted,
    transient_reason,
)
from .models import Batch, Output, Session, Statement
from .polling import poll_intervals
from .protocol import BatchState, SessionState, StatementState
from .session import Heartbeat, LivySession

__all__ = [
    "Batch",
    "BatchState",
    "Heartbeat",
    "LivyAuthError",
    "LivyClient",
    "LivyError",
    "LivyHTTPError",
    "LivyNotFound",
    "LivySession",
    "LivyTimeout",
    "LivyUnreachable",
    "Output",
    "Session",
    "SessionDead",
    "SessionState",
    "Statement",
    "StatementCancelled",
    "StatementError",
    "StatementInDoubt",
    "StatementInterrupted",
    "StatementState",
    "make_auth",
    "normalize_url",
    "poll_intervals",
    "transient_reason",
]
