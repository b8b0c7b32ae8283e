"""Typed views of Livy's JSON: Session / Statement / Batch / Output (states: ``protocol``).

Parsing is lenient about extra or missing fields (Livy versions differ) but never
guesses values: an unknown state string is kept as ``UNKNOWN`` with the raw text.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Optional

from .protocol import SessionState, StatementState

TABLE_MIME = "application/vnd.livy.table.v1+json"


@dataclass
class Output:
    """The output of a statement: ``ok`` with data, or an error with ename/evalue/traceback."""

    status: str
    execution_count: Optional[int] = None
    data: dict[str, Any] = field(default_factory=dict)
    ename: Optional[str] = None
    evalue: Optional[str] = None
    traceback: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: Optional[dict[str, Any]]) -> Optional[Output]:
        """Parse Livy's output object (None stays None)."""
        if obj is None:
            return None
        tb = obj.get("traceback") or []
        if isinstance(tb, str):
            tb = tb.splitlines(keepends=True)
        return cls(
            status=str(obj.get("status", "ok")),
            execution_count=obj.get("execution_count"),
            data=dict(obj.get("data") or {}),
            ename=obj.get("ename"),
            evalue=obj.get("evalue"),
            traceback=[str(line) for line in tb],
        )

    @property
    def ok(self) -> bool:
        """True unless the statement raised."""
        return self.status == "ok"

    @property
    def text(self) -> str:
        """``text/plain`` output ('' if none)."""
        return str(self.data.get("text/plain", ""))

    @property
    def json(self) -> Any:
        """``application/json`` output (None if none), from ``%json VAR``."""
        return self.data.get("application/json")

    @property
    def table(self) -> Optional[dict[str, Any]]:
        """Livy table ``{"headers": [{"name", "type"}], "data": [[...]]}`` from ``%table`` or SQL."""
        return self.data.get(TABLE_MIME)

    @property
    def image_png(self) -> Optional[bytes]:
        """Decoded ``image/png`` bytes (from ``%matplot plt``), or None."""
        raw = self.data.get("image/png")
        return base64.b64decode(raw) if raw else None

    @property
    def error_text(self) -> str:
        """``"Ename: evalue"`` for an error output ('' when ok)."""
        if self.ok:
            return ""
        return f"{self.ename or 'Error'}: {self.evalue or ''}".rstrip(": ")

    def to_json(self) -> dict[str, Any]:
        """Back to Livy's JSON shape."""
        if self.ok:
            return {"status": "ok", "execution_count": self.execution_count, "data": self.data}
        return {
            "status": self.status,
            "execution_count": self.execution_count,
            "ename": self.ename,
            "evalue": self.evalue,
            "traceback": list(self.traceback),
        }


@dataclass
class Statement:
    """A statement of a session."""

    id: int
    session_id: int
    code: str = ""
    state: StatementState = StatementState.WAITING
    output: Optional[Output] = None
    progress: float = 0.0
    started: int = 0
    completed: int = 0

    @classmethod
    def from_json(cls, obj: dict[str, Any], session_id: int) -> Statement:
        """Parse a statement object."""
        return cls(
            id=int(obj["id"]),
            session_id=session_id,
            code=str(obj.get("code") or ""),
            state=StatementState.parse(obj.get("state")),
            output=Output.from_json(obj.get("output")),
            progress=float(obj.get("progress") or 0.0),
            started=int(obj.get("started") or 0),
            completed=int(obj.get("completed") or 0),
        )


@dataclass
class Session:
    """A Livy interactive session."""

    id: int
    state: SessionState
    name: Optional[str] = None
    kind: Optional[str] = None
    app_id: Optional[str] = None
    app_info: dict[str, Any] = field(default_factory=dict)
    owner: Optional[str] = None
    proxy_user: Optional[str] = None
    log: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Session:
        """Parse a session object."""
        return cls(
            id=int(obj["id"]),
            state=SessionState.parse(obj.get("state")),
            name=obj.get("name"),
            kind=obj.get("kind"),
            app_id=obj.get("appId"),
            app_info=dict(obj.get("appInfo") or {}),
            owner=obj.get("owner"),
            proxy_user=obj.get("proxyUser"),
            log=[str(line) for line in (obj.get("log") or [])],
        )

    @property
    def spark_ui_url(self) -> Optional[str]:
        """The Spark UI of the session's application, when Livy knows it."""
        return self.app_info.get("sparkUiUrl")

    @property
    def driver_log_url(self) -> Optional[str]:
        """The driver log URL (YARN), when Livy knows it."""
        return self.app_info.get("driverLogUrl")


@dataclass
class Batch:
    """A Livy batch (a spark-submit run by the server)."""

    id: int
    state: SessionState
    name: Optional[str] = None
    app_id: Optional[str] = None
    app_info: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Batch:
        """Parse a batch object."""
        return cls(
            id=int(obj["id"]),
            state=SessionState.parse(obj.get("state")),
            name=obj.get("name"),
            app_id=obj.get("appId"),
            app_info=dict(obj.get("appInfo") or {}),
            log=[str(line) for line in (obj.get("log") or [])],
        )
