"""Local side of moving data: pull remote frames (``-o``) and push local values.

Wire formats are decoded here with pyarrow's IPC reader, the codec's JSON + raw arrays, or
``json.loads``: nothing from the cluster is ever unpickled or evaluated. Spark columns
become exact pandas dtypes: integers with nulls -> nullable ``Int64`` (etc.), floats with
nulls -> ``Float64`` keeping NaN apart from null, booleans with nulls -> ``boolean``,
timestamps -> ``datetime64[ns]`` wall-clock in the Spark session time zone (as
``toPandas``), dates/decimals/binary/arrays/structs/maps -> Python objects.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from ..errors import HailEmrLabError
from ..remote import NAMESPACE
from ..remote.codec import (
    check_ns_range,
    decode_pandas,
    encode_pandas,
    frame_from_columns,
    pack,
    session_zone,
    unpack,
    wall_clock,
)
from ..remote.dataframe import MARKER

#: Base64 characters per statement output (Livy's RPC limit is 50 MB per output).
CHUNK_CHARS = 8_000_000
#: Base64 characters per pushed statement.
PUSH_CHUNK_CHARS = 8_000_000


class TransferError(HailEmrLabError):
    """Moving data between the notebook and the cluster failed."""


@dataclass
class Pulled:
    """One pulled variable: its value and what the cluster said about it."""

    name: str
    value: Any
    kind: str
    format: str
    rows: Optional[int]
    truncated: bool
    wire_chars: int
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- decoding


def decode(entry: dict[str, Any], text: str) -> Any:
    """Decode one pulled value (``entry`` is the cluster's description, ``text`` its data)."""
    raw = unpack(text)
    fmt = entry.get("format")
    if fmt == "arrow":
        try:
            return arrow_to_pandas(_read_ipc(raw), entry.get("session_tz") or "UTC")
        except ValueError as exc:
            raise TransferError(f"pulling {entry.get('name', 'the value')}: {exc}") from None
    if fmt == "arrow-pandas":
        frame = _read_ipc(raw).to_pandas()
        if entry.get("columns") is not None:  # names that repeat travelled as placeholders
            frame.columns = list(entry["columns"])
        return frame
    if fmt == "helc":
        try:
            return decode_pandas(raw)
        except ValueError as exc:
            raise TransferError(f"pulling {entry.get('name', 'the value')}: {exc}") from None
    if fmt == "json":
        return json.loads(raw.decode("utf-8"))
    raise TransferError(
        f"the cluster sent data in an unknown format {fmt!r}: the hail-emr-lab code in the session may be from "
        "another version; run %hail connect --new"
    )


def _read_ipc(raw: bytes):
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(raw)).read_all()


def arrow_to_pandas(table, session_tz: str = "UTC") -> pd.DataFrame:
    """A Spark Arrow table as pandas with exact dtypes (see the module docstring)."""
    arrays = [_arrow_column(name, col, session_tz) for name, col in zip(table.column_names, table.columns)]
    return frame_from_columns(list(table.column_names), arrays, table.num_rows)


def _arrow_column(name: str, col, session_tz: str):
    import pyarrow as pa
    import pyarrow.types as pt

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    utc = _utc_type(col.type)
    if utc != col.type:
        col = col.view(utc)  # same instants, same layout: only the zone label changes
    t = col.type
    nulls = col.null_count > 0
    if pt.is_integer(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False)
        values = col.fill_null(0).to_numpy(zero_copy_only=False)
        mask = col.is_null().to_numpy(zero_copy_only=False)
        dtype = str(values.dtype).replace("int", "Int").replace("uInt", "UInt")
        return pd.arrays.IntegerArray(values, mask).astype(dtype)
    if pt.is_floating(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False)
        values = col.fill_null(0).to_numpy(zero_copy_only=False)  # NaN stays NaN
        mask = col.is_null().to_numpy(zero_copy_only=False)
        return pd.arrays.FloatingArray(values.astype("float64" if values.dtype == np.float64 else values.dtype), mask)
    if pt.is_boolean(t):
        if not nulls:
            return col.to_numpy(zero_copy_only=False).astype(bool)
        values = col.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return pd.arrays.BooleanArray(values, col.is_null().to_numpy(zero_copy_only=False))
    if pt.is_timestamp(t):
        if t.unit == "us":  # Spark's unit; datetime64[ns] would not hold every value
            check_ns_range(name, col.view(pa.int64()).drop_null().to_numpy())
        series = pd.Series(col.to_pandas())
        if t.tz is not None:
            return series.dt.tz_convert(session_zone(session_tz)).dt.tz_localize(None).astype("datetime64[ns]")
        return series.astype("datetime64[ns]")
    values = col.to_pylist()
    if _needs_fix(t):
        values = [_fix_nested(v, t, session_tz) for v in values]
    return pd.Series(values, dtype=object)


def _utc_type(t):
    """``t`` with every zoned timestamp labelled UTC.

    Spark labels them with the session time zone id, which pyarrow cannot always read
    ("GMT+8"); the instants are UTC either way, and we apply the zone ourselves.
    """
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, tz="UTC")
    if pt.is_map(t):
        return pa.map_(t.key_field.with_type(_utc_type(t.key_type)), t.item_field.with_type(_utc_type(t.item_type)),
                       t.keys_sorted)
    if pt.is_list(t):
        return pa.list_(t.value_field.with_type(_utc_type(t.value_type)))
    if pt.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_utc_type(t.value_type)))
    if pt.is_struct(t):
        return pa.struct([t.field(i).with_type(_utc_type(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _needs_fix(t) -> bool:
    import pyarrow.types as pt

    if pt.is_map(t) or (pt.is_timestamp(t) and t.tz is not None):
        return True
    if pt.is_list(t) or pt.is_large_list(t):
        return _needs_fix(t.value_type)
    if pt.is_struct(t):
        return any(_needs_fix(t.field(i).type) for i in range(t.num_fields))
    return False


def _fix_nested(v, t, tz: str):
    """Maps as dicts (like the codec), nested timestamps as wall-clock time in the session zone."""
    import pyarrow.types as pt

    if v is None:
        return None
    if pt.is_map(t):
        return {_fix_nested(k, t.key_type, tz): _fix_nested(x, t.item_type, tz) for k, x in v}
    if pt.is_list(t) or pt.is_large_list(t):
        return [_fix_nested(x, t.value_type, tz) for x in v]
    if pt.is_struct(t):
        return {t.field(i).name: _fix_nested(v[t.field(i).name], t.field(i).type, tz) for i in range(t.num_fields)}
    if pt.is_timestamp(t) and isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return wall_clock(v, tz)
    return v


# ---------------------------------------------------------------------- statements


def _marker_payload(text: str, what: str) -> str:
    pos = text.rfind(MARKER)
    if pos < 0:
        raise TransferError(
            f"{what}: the cluster's answer had no hail-emr-lab data in it (got {text[:120]!r}); the session's "
            "helper code may be missing: run %hail connect again"
        )
    return text[pos + len(MARKER) :].rstrip("\n")


def _run(session, code: str, what: str, timeout: Optional[float] = None) -> str:
    """Run helper code; a remote error is raised as ``StatementError`` (shown by the magics)."""
    from ..livy import StatementError

    output = session.run(code, timeout=timeout)
    if not output.ok:
        raise StatementError(output)
    return _marker_payload(output.text, what)


def pull(
    session,
    names: list[str],
    limit: Optional[int] = None,
    timeout: Optional[float] = None,
    use_arrow: Optional[bool] = None,
    on_chunk: Optional[Callable[[str, int, int], None]] = None,
) -> list[Pulled]:
    """Pull the remote variables ``names`` (validated identifiers) in one statement plus chunks."""
    for name in names:
        if not name.isidentifier():
            raise TransferError(f"{name!r} is not a Python variable name")
    args = f"globals(), {json.dumps(names)}, {int(limit) if limit is not None else None}, {CHUNK_CHARS}"
    if use_arrow is not None:
        args += f", use_arrow={bool(use_arrow)}"
    payload = _run(session, f"{NAMESPACE}.pull({args})", "pulling " + ", ".join(names), timeout)
    results = []
    for entry in json.loads(payload):
        text = entry.get("data")
        if text is None:
            text = _fetch_chunks(session, entry, timeout, on_chunk)
        value = decode(entry, text)
        meta = {k: v for k, v in entry.items() if k != "data"}
        results.append(
            Pulled(
                name=entry["name"],
                value=value,
                kind=entry.get("kind", "?"),
                format=entry.get("format", "?"),
                rows=entry.get("rows"),
                truncated=bool(entry.get("truncated")),
                wire_chars=int(entry.get("length") or len(text)),
                meta=meta,
            )
        )
    return results


def _fetch_chunks(session, entry: dict[str, Any], timeout, on_chunk) -> str:
    token, total = entry["token"], int(entry["length"])
    if not all(c in "0123456789abcdef" for c in token):
        raise TransferError("the cluster sent a malformed transfer token")
    parts, start = [], 0
    while start < total:
        code = f"{NAMESPACE}.chunk({token!r}, {start}, {CHUNK_CHARS})"
        part = _run(session, code, f"pulling {entry['name']}", timeout)
        if not part:
            raise TransferError(f"pulling {entry['name']}: the cluster sent an empty chunk at {start} of {total}")
        parts.append(part)
        start += len(part)
        if on_chunk:
            on_chunk(entry["name"], start, total)
    return "".join(parts)


# ---------------------------------------------------------------------- push


def encode_for_push(value: Any) -> tuple[str, str]:
    """``(kind, packed text)`` for a pandas DataFrame (codec) or JSON-able data."""
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        return "frame", pack(encode_pandas(value))
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        raise TransferError(
            f"cannot push a {type(value).__module__}.{type(value).__name__}: %hail push takes a pandas DataFrame, "
            "a string, a number, or JSON-able data (lists, dicts)"
        ) from None
    return "json", pack(text.encode("utf-8"))


def push(
    session,
    value: Any,
    name: str,
    as_pandas: bool = False,
    timeout: Optional[float] = None,
    on_chunk: Optional[Callable[[str, int, int], None]] = None,
) -> dict[str, Any]:
    """Send ``value`` to the session as variable ``name``; returns the cluster's summary."""
    if not name.isidentifier():
        raise TransferError(f"{name!r} is not a Python variable name: use --as NAME")
    kind, text = encode_for_push(value)
    token = uuid.uuid4().hex
    for start in range(0, len(text), PUSH_CHUNK_CHARS):
        part = text[start : start + PUSH_CHUNK_CHARS]
        _run(session, f"{NAMESPACE}.push_part({token!r}, {part!r})", f"pushing {name}", timeout)
        if on_chunk:
            on_chunk(name, min(start + PUSH_CHUNK_CHARS, len(text)), len(text))
    if not text:
        _run(session, f"{NAMESPACE}.push_part({token!r}, '')", f"pushing {name}", timeout)
    code = f"{NAMESPACE}.push_finish(globals(), {token!r}, {name!r}, {kind!r}, as_pandas={bool(as_pandas)})"
    return json.loads(_run(session, code, f"pushing {name}", timeout))
