"""JSON text for statement outputs: exactly ``json.dumps``'s text, without its cost on long strings.

``json.dumps`` escapes a string character by character (about 50 MB/s): a plot chunk, megabytes
of base64 in a statement's text output, would spend most of its time there on each hop
(worker -> server -> every GET). :func:`dumps` writes a long string that needs no escaping
(printable ASCII without ``"`` or ``\\``, as base64 is) as it is, and embeds :class:`RawJson`
(bytes that are JSON already, e.g. an output the worker encoded) without parsing it again. The
result is the same text ``json.dumps(value)`` gives (default separators, ``ensure_ascii``), so
sizes measured on it (``livy.rsc.rpc.max.size``) mean what they meant.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

#: Strings at least this long (characters) are checked for the no-escaping fast path.
LONG = 4096
# Bytes json.dumps writes as they are (ensure_ascii): printable ASCII (space to '~'; DEL is
# escaped) except '"' and '\'.
_VERBATIM = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


class RawJson:
    """One JSON value as UTF-8 bytes already; :func:`dumps` and :func:`encode` embed it verbatim."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def verbatim(value: str) -> bool:
    """True when ``json.dumps`` would write the long string ``value`` between quotes unchanged."""
    return len(value) >= LONG and value.isascii() and not value.encode("ascii").translate(None, _VERBATIM)


def dumps(value: Any, max_depth: int = 4, default: Optional[Callable[[Any], Any]] = None) -> str:
    """``json.dumps(value, default=default)``'s text, fast for long strings and :class:`RawJson`.

    Dicts with str keys and lists are walked ``max_depth`` levels deep (a statement's answer and
    its output are shallow); anything deeper goes to ``json.dumps`` in one call, which parses a
    :class:`RawJson` it meets there (correct, only slower). Raises TypeError as ``json.dumps`` does.
    """
    parts: list[Any] = []
    _write(value, parts, max_depth, default)
    return "".join(part.decode("utf-8") if isinstance(part, bytes) else part for part in parts)


def encode(value: Any, max_depth: int = 4) -> bytes:
    """:func:`dumps` as UTF-8 bytes, with each :class:`RawJson` copied once, into the answer."""
    parts: list[Any] = []
    _write(value, parts, max_depth, None)
    return b"".join(part if isinstance(part, bytes) else part.encode("utf-8") for part in parts)


def _write(value: Any, out: list[Any], depth: int, default: Optional[Callable[[Any], Any]]) -> None:
    if isinstance(value, RawJson):
        out.append(value.data)
    elif isinstance(value, str):
        out.extend(('"', value, '"') if verbatim(value) else (json.dumps(value),))
    elif depth > 0 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(", " if i else "")
            out.append(json.dumps(key) + ": ")
            _write(item, out, depth - 1, default)
        out.append("}")
    elif depth > 0 and isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            out.append(", " if i else "")
            _write(item, out, depth - 1, default)
        out.append("]")
    else:
        out.append(json.dumps(value, default=_embedded(default)))


def _embedded(default: Optional[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, RawJson):
            return json.loads(value.data)
        if default is None:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        return default(value)

    return convert
