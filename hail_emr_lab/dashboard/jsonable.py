"""Turn the project's dataclasses, enums, paths and datetimes into JSON-able values."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from pathlib import PurePath
from typing import Any

#: Keys never passed on to a browser or a notebook, whatever module produced the data.
SECRET_WORDS = ("password", "secret", "token", "credential", "access_key", "session_key")


def is_secret_key(key: str) -> bool:
    """True for keys that look like they hold credentials."""
    low = key.lower()
    return any(word in low for word in SECRET_WORDS)


def jsonable(value: Any) -> Any:
    """A JSON-able copy of ``value``; dict keys that look secret are dropped."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    elif hasattr(value, "as_dict") and callable(value.as_dict):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
