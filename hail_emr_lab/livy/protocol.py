"""Facts of the Livy REST protocol shared by our client and our embedded server.

Both ends take the request fields from here, so what the client may send and what the
server accepts cannot drift apart, and the state names (Apache Livy REST API docs: Session
State, Statement State; batches share the sessions' states).
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

#: Spark resources and placement, the same in ``POST /sessions`` and ``POST /batches``.
_RESOURCE_FIELDS = (
    "jars",
    "pyFiles",
    "files",
    "driverMemory",
    "driverCores",
    "executorMemory",
    "executorCores",
    "numExecutors",
    "archives",
    "queue",
    "name",
    "conf",
)

#: Fields of ``POST /sessions``. ``ttl`` and ``idleTimeout`` are Livy 0.8's; old EMR Livy
#: rejects unknown fields, so clients send only the ones that are set.
SESSION_FIELDS = ("kind", "proxyUser", *_RESOURCE_FIELDS, "heartbeatTimeoutInSecond", "ttl", "idleTimeout")

#: Fields of ``POST /batches`` (``file`` is required).
BATCH_FIELDS = ("file", "proxyUser", "className", "args", *_RESOURCE_FIELDS)

#: Fields of ``POST /sessions/{id}/statements`` and ``.../completion``.
STATEMENT_FIELDS = ("code", "kind")
COMPLETION_FIELDS = ("code", "kind", "cursor")

#: Livy's CSRF header (``livy.server.csrf-protection.enabled``): any value; required on every
#: request other than GET, HEAD and OPTIONS when protection is on.
CSRF_HEADER = "X-Requested-By"

#: Fields of Livy's session object (``SessionInfo`` in Livy's ``HttpMessages``), in every view of
#: a session. Unset sizing fields are 0 (integers), null (strings) or empty (lists, ``conf``).
SESSION_INFO_FIELDS = (
    "id",
    "name",
    "appId",
    "owner",
    "proxyUser",
    "state",
    "kind",
    "appInfo",
    "log",
    "ttl",
    "driverMemory",
    "driverCores",
    "executorMemory",
    "executorCores",
    "conf",
    "archives",
    "files",
    "heartbeatTimeoutInSecond",
    "jars",
    "numExecutors",
    "pyFiles",
    "queue",
)

#: Spark conf keys with this prefix carry Livy's own session settings to the driver (Livy's
#: ``RSCConf.LIVY_SPARK_PREFIX``): ``spark.__livy__.livy.rsc.retained-statements`` sets
#: ``livy.rsc.retained-statements``. They are Livy settings, not Spark settings.
LIVY_CONF_PREFIX = "spark.__livy__."

#: Livy session settings (``RSCConf``) a session honours, with Livy's defaults: statements
#: kept per session, rows a SQL statement returns, bytes of one statement's output.
RSC_DEFAULTS = {
    "livy.rsc.retained-statements": 100,
    "livy.rsc.sql.num-rows": 1000,
    "livy.rsc.rpc.max.size": 50 * 1024 * 1024,
}

#: Livy's answer to a statement without ``kind`` in a session of kind ``shared`` (its REPL's
#: ``Session.execute``).
SHARED_SESSION_NEEDS_KIND = "Code type should be specified if session kind is shared"


_S = TypeVar("_S", bound="_State")


class _State(str, enum.Enum):
    """A Livy state name: equal to, printed and sent as JSON as its plain string."""

    def __str__(self) -> str:
        return str(self.value)

    __format__ = str.__format__

    @classmethod
    def parse(cls: type[_S], value: Any) -> _S:
        """The state named ``value``; ``UNKNOWN`` for anything else (a state a later Livy may add)."""
        try:
            return cls(str(value))
        except ValueError:
            return cls["UNKNOWN"]


class SessionState(_State):
    """States of a Livy session or batch (one state machine for both; Livy's ``SessionState``).

    ``UNKNOWN`` is never sent: our client keeps it for a state a later Livy may add.
    """

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RECOVERING = "recovering"
    IDLE = "idle"
    RUNNING = "running"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"
    UNKNOWN = "unknown"

    @property
    def is_ready(self) -> bool:
        """Accepts statements right now."""
        return self is SessionState.IDLE

    @property
    def takes_statements(self) -> bool:
        """Accepts a statement into its queue (idle, or busy with another one)."""
        return self.is_ready or self.is_busy

    @property
    def is_busy(self) -> bool:
        """Alive but working (a statement or a batch is running)."""
        return self in (SessionState.BUSY, SessionState.RUNNING)

    @property
    def is_starting(self) -> bool:
        """Not yet able to take statements, but on its way."""
        return self in (SessionState.NOT_STARTED, SessionState.STARTING, SessionState.RECOVERING)

    @property
    def is_final(self) -> bool:
        """Will never change again (the session or batch is over)."""
        return self in (SessionState.ERROR, SessionState.DEAD, SessionState.KILLED, SessionState.SUCCESS)

    @property
    def is_alive(self) -> bool:
        """Neither over nor shutting down."""
        return not self.is_final and self is not SessionState.SHUTTING_DOWN


BatchState = SessionState


class StatementState(_State):
    """States of a Livy statement (Livy's ``StatementState``); ``UNKNOWN`` as for sessions."""

    WAITING = "waiting"
    RUNNING = "running"
    AVAILABLE = "available"
    ERROR = "error"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """The statement is over (its output, if any, is final)."""
        return self in (StatementState.AVAILABLE, StatementState.ERROR, StatementState.CANCELLED)

    @property
    def is_running(self) -> bool:
        """Queued or executing."""
        return self in (StatementState.WAITING, StatementState.RUNNING, StatementState.CANCELLING)
