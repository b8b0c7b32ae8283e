"""Small pieces shared by the embedded server's modules: API errors, log buffers, parsing."""

from __future__ import annotations

import collections
import re
import threading
import time
from typing import Any, Iterable

LOG_LINES_KEPT = 5000
LOG_LINES_IN_VIEW = 10  # the "log" field of a session or batch object, as in Livy


class ApiError(Exception):
    """An HTTP error answer: ``status``, Livy's ``{"msg": ...}`` body and extra ``headers``."""

    def __init__(self, status: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.headers = dict(headers or {})


def bad_request(msg: str) -> ApiError:
    return ApiError(400, msg)


def now_ms() -> int:
    """Epoch milliseconds (Livy's timestamps)."""
    return int(time.time() * 1000)


class LogBuffer:
    """A bounded, thread-safe list of log lines with Livy's from/size paging."""

    def __init__(self, maxlen: int = LOG_LINES_KEPT) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line.rstrip("\r\n"))

    def extend(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.append(line)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def tail(self, n: int = LOG_LINES_IN_VIEW) -> list[str]:
        lines = self.lines()
        return lines[-n:] if n > 0 else []

    def page(self, from_: int | None, size: int | None) -> tuple[int, int, list[str]]:
        """Livy's paging: default the last 100 lines; returns (from, total, lines)."""
        lines = self.lines()
        size = 100 if size is None else size
        if size < 0:
            size = len(lines)
        if from_ is None or from_ < 0:
            from_ = max(0, len(lines) - size)
        return from_, len(lines), lines[from_ : from_ + size]


def int_param(params: dict[str, list[str]], name: str) -> int | None:
    """An integer query parameter, or None when absent (400 when not an integer)."""
    values = params.get(name)
    if not values or values[0] == "":
        return None
    try:
        return int(values[0])
    except ValueError:
        raise bad_request(f"query parameter '{name}' must be an integer, got {values[0]!r}") from None


def page(items: list, from_: int | None, size: int | None) -> list:
    """``items[from:from+size]`` with Livy's defaults (from 0, size 100 for lists)."""
    start = max(0, from_ or 0)
    count = 100 if size is None else size
    if count < 0:
        count = len(items)
    return items[start : start + count]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, None: 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a Livy duration ("10m", "1h", "30s", "500ms"; a bare number is ms)."""
    if isinstance(value, bool):
        raise bad_request(f"'{field}' must be a duration such as \"30m\", got {value!r}")
    if isinstance(value, (int, float)):
        return float(value) / 1000.0
    match = _DURATION.match(str(value))
    if not match:
        raise bad_request(f'\'{field}\' must be a duration such as "30m", "2h" or "45s", got {value!r}')
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def check_fields(body: dict, allowed: Iterable[str], what: str) -> None:
    """Reject fields Livy does not know, naming them (old Livy answers 400 to these too)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise bad_request(
            f"Unrecognized field{'s' if len(unknown) > 1 else ''} {names} in the {what} request; "
            f"known fields: {', '.join(sorted(allowed))}"
        )


def check_types(
    body: dict,
    strings: Iterable[str] = (),
    ints: Iterable[str] = (),
    string_lists: Iterable[str] = (),
    maps: Iterable[str] = (),
) -> None:
    """400 when a field has the wrong JSON type (null is allowed everywhere: 'not set')."""
    for name in strings:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise bad_request(f"'{name}' must be a string, got {body[name]!r}")
    for name in ints:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise bad_request(f"'{name}' must be a non-negative integer, got {value!r}")
    for name in string_lists:
        value = body.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise bad_request(f"'{name}' must be a list of strings, got {value!r}")
    for name in maps:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"'{name}' must be an object (a map of Spark settings), got {value!r}")
