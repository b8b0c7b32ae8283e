"""Local side of moving data: pull remote frames (``-o``) and push local values.

Two transports for ``-o``: inline through Livy's text channel (Arrow IPC, the codec or JSON,
decoded here with pyarrow's IPC reader, the codec's JSON + raw arrays, or ``json.loads``), and
staged (the executors write Parquet, read here by :mod:`.staging`). Nothing from the cluster is
ever unpickled or evaluated. Both build frames with the dtype rules of :mod:`.arrow_frames`.
"""

from __future__ import annotations

import binascii
import io
import json
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import pandas as pd

from ..config import load_config
from ..errors import HailEmrLabError
from ..remote import NAMESPACE
from ..remote.codec import decode_pandas, encode_pandas, pack
from ..remote.dataframe import MARKER
from .arrow_frames import arrow_batches_to_pandas, arrow_to_pandas, pandas_from_arrow
from .staging import STAGED_FORMATS, StagingArea

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
    wire_chars: int  # characters through Livy, or bytes of staged Parquet
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- decoding

#: How a payload's bytes were made (the entry's ``packing``; drivers that name none used zlib):
#: "zlib" over the whole encoded value, or "ipc", an Arrow IPC stream whose buffers Arrow
#: compressed itself (Arrow columnar format, BodyCompression).
PACKINGS = ("zlib", "ipc")


class _Payload(io.RawIOBase):
    """The payload bytes of one pulled value, read as a file while its base64 texts arrive.

    ``texts`` yields the base64 text in order (the inline ``data``, or the chunks as they are
    fetched); each is decoded (and inflated, for "zlib") when the reader needs more, so only
    the current chunk is held here. Raises :class:`TransferError` for text that is not base64
    or a zlib stream that ends early or has bytes after its end.
    """

    def __init__(self, texts: Iterator[str], packing: str, what: str):
        super().__init__()
        self._texts = texts
        self._inflate = zlib.decompressobj() if packing == "zlib" else None
        self._what = what
        self._cur = memoryview(b"")
        self._carry = ""
        self.ended = False
        self.fetch_error: Optional[BaseException] = None

    def readable(self) -> bool:
        return True

    def _more(self) -> bool:
        """Decode the next text into ``_cur``; False when all texts are used."""
        while True:
            try:
                text = next(self._texts)
            except StopIteration:
                break
            except BaseException as exc:  # the fetch's own error (Livy, Ctrl-C): not the data's
                self.fetch_error = exc
                raise
            if self._carry or len(text) % 4:  # chunks are cut at whole groups of 4; keep any rest
                text = self._carry + text
                cut = len(text) - len(text) % 4
                text, self._carry = text[:cut], text[cut:]
            try:
                data = binascii.a2b_base64(text, strict_mode=True)
            except binascii.Error as exc:
                raise TransferError(f"{self._what}: the cluster sent data that is not base64 ({exc})") from None
            del text  # the chunk's text is not kept while the next one is fetched
            if self._inflate is not None:
                data = self._inflate.decompress(data)
            if data:
                self._cur = memoryview(data)
                return True
        self._end()
        return False

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self._carry:
            raise TransferError(f"{self._what}: the cluster's data ended inside a base64 group")
        if self._inflate is not None and (not self._inflate.eof or self._inflate.unused_data):
            raise TransferError(f"{self._what}: the cluster's compressed data is cut short or has bytes after its end")

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self.read_all())
        out = []
        while size > 0 and (len(self._cur) or self._more()):
            part = self._cur[:size]
            self._cur = self._cur[len(part):]
            out.append(part)
            size -= len(part)
        return out[0].tobytes() if len(out) == 1 else b"".join(out)

    def read_all(self, size: Optional[int] = None) -> bytearray:
        """Everything left, in one buffer of ``size`` bytes when that is known (no second copy)."""
        if size is None:
            parts = [self._cur]
            while self._more():
                parts.append(self._cur)
            self._cur = memoryview(b"")
            return bytearray(b"".join(parts))
        buf, at = bytearray(size), 0
        while len(self._cur) or self._more():
            n = len(self._cur)
            if at + n > size:
                raise TransferError(f"{self._what}: the cluster sent more data than the {size} bytes it announced")
            buf[at : at + n] = self._cur
            at += n
            self._cur = memoryview(b"")
        if at != size:
            raise TransferError(f"{self._what}: the cluster announced {size} bytes but sent {at}")
        return buf

    def finish(self) -> None:
        """Check that nothing follows what the decoder read (it would be data we did not use)."""
        if len(self._cur) or self._more():
            raise TransferError(f"{self._what}: the cluster sent more data than the value it described")


def decode(entry: dict[str, Any], text: str) -> Any:
    """Decode one pulled value (``entry`` is the cluster's description, ``text`` its whole base64 data)."""
    return _decode(entry, iter([text]))


def _decode(entry: dict[str, Any], texts: Iterator[str]) -> Any:
    """Decode one pulled value from its base64 ``texts`` in order (see :class:`_Payload`)."""
    what = f"pulling {entry.get('name', 'the value')}"
    fmt = entry.get("format")
    packing = entry.get("packing", "zlib")
    if fmt not in ("arrow", "arrow-pandas", "helc", "json") or packing not in PACKINGS:
        raise TransferError(
            f"the cluster sent data in an unknown format {fmt!r} (packing {packing!r}): the hail-emr-lab code in the "
            "session may be from another version; run %hail connect --new"
        )
    payload = _Payload(texts, packing, what)
    try:
        if fmt == "arrow":
            value = _arrow_frame(payload, entry)
        elif fmt == "arrow-pandas":
            value = _pandas_frame(payload, entry)
        else:
            raw = payload.read_all(entry.get("raw_length") if packing == "zlib" else entry.get("bytes"))
            value = decode_pandas(raw) if fmt == "helc" else json.loads(raw.decode("utf-8"))
        payload.finish()
    except ValueError as exc:  # pyarrow's and the codec's errors about the data itself
        raise TransferError(f"{what}: {exc}") from None
    except OSError as exc:  # pyarrow's for a stream cut short; a failed fetch stays what it is
        if payload.fetch_error is not None:
            raise
        raise TransferError(f"{what}: the cluster's data is incomplete ({exc})") from None
    return value


def _arrow_frame(payload: _Payload, entry: dict[str, Any]) -> pd.DataFrame:
    """A Spark Arrow stream as pandas, batch by batch (see :func:`arrow_batches_to_pandas`)."""
    reader = _read_ipc(payload)
    tz = entry.get("session_tz") or "UTC"
    rows = entry.get("rows")
    if rows is None:
        return arrow_to_pandas(reader.read_all(), tz)
    return arrow_batches_to_pandas(reader.schema, reader, int(rows), tz)


def _pandas_frame(payload: _Payload, entry: dict[str, Any]) -> pd.DataFrame:
    """A pandas frame the driver held, from its Arrow stream (pandas metadata kept)."""
    table = _read_ipc(payload).read_all()
    rows = entry.get("rows")
    if rows is not None and table.num_rows != int(rows):
        raise ValueError(f"the cluster announced {rows} rows but sent {table.num_rows}")
    return pandas_from_arrow(table, entry.get("columns"))


def _read_ipc(payload: _Payload):
    """A pyarrow stream reader over ``payload`` (Arrow IPC streaming format; compressed buffers
    are inflated by pyarrow, batch by batch)."""
    import pyarrow as pa

    return pa.ipc.open_stream(pa.PythonFile(payload, mode="r"))


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


#: How ``-o`` moves a frame: chosen by estimated size, through Livy's text channel, or staged as Parquet.
VIAS = ("auto", "livy", "staged")


def pull(
    session,
    names: list[str],
    limit: Optional[int] = None,
    timeout: Optional[float] = None,
    use_arrow: Optional[bool] = None,
    on_chunk: Optional[Callable[[str, int, int], None]] = None,
    via: str = "livy",
    config: Any = None,
) -> list[Pulled]:
    """Pull the remote variables ``names`` (validated identifiers) in one statement plus chunks.

    ``via`` is one of :data:`VIAS`; ``"auto"`` stages frames estimated above the configuration's
    ``transfer_inline_max`` bytes (``config``: a :class:`~hail_emr_lab.config.Config`). Staging
    locations are deleted afterwards whatever happens (:mod:`.staging`). ``on_chunk(name, done,
    total, transport=, rows=)`` reports bytes moved (characters through Livy, Parquet bytes read),
    with the transport (``livy``, ``staged``) and the rows when known. Raises :class:`TransferError`, ``StatementError`` (a remote
    error) or ``StatementInterrupted`` (Ctrl-C; the statement was cancelled).
    """
    for name in names:
        if not name.isidentifier():
            raise TransferError(f"{name!r} is not a Python variable name")
    if via not in VIAS:
        raise TransferError(f"--via must be one of {', '.join(VIAS)}, got {via!r}")
    args = f"globals(), {json.dumps(names)}, {int(limit) if limit is not None else None}, {CHUNK_CHARS}"
    if use_arrow is not None:
        args += f", use_arrow={bool(use_arrow)}"
    area = None
    if via != "livy":
        area = StagingArea.open(config if config is not None else load_config())
        if via == "staged" and not area.locations:
            raise TransferError("--via staged: there is nowhere to stage (" + "; ".join(area.unavailable) + "); "
                                "set bucket and prefix in the configuration, or pull with --via livy")
        stage_above = int((config if config is not None else load_config()).get("transfer_inline_max"))
        args += f", via={via!r}, stagings={area.wire()!r}, stage_above={stage_above}"
    try:
        payload = _run(session, f"{NAMESPACE}.pull({args})", "pulling " + ", ".join(names), timeout)
        return [_receive(session, entry, limit, timeout, on_chunk, area) for entry in json.loads(payload)]
    finally:
        if area is not None:
            _clean(area)


def _receive(session, entry: dict[str, Any], limit, timeout, on_chunk, area) -> Pulled:
    """One entry of the cluster's answer as a :class:`Pulled` (staged files read, chunks fetched)."""
    meta = {k: v for k, v in entry.items() if k != "data"}
    fmt = entry.get("format", "?")
    if fmt in STAGED_FORMATS:
        if area is None:
            raise TransferError("the cluster staged a result although this pull offered no staging location")
        name = entry["name"]
        progress = (lambda done, total, rows=None: on_chunk(name, done, total, transport="staged", rows=rows)
                    ) if on_chunk else None
        try:
            value, rows, truncated, size = area.read(entry, limit, progress)
        except ValueError as exc:
            raise TransferError(f"pulling {name}: {exc}") from None
        except OSError as exc:  # pyarrow's S3 and file errors: network, permission, region, missing files
            raise TransferError(
                f"pulling {name}: reading the staged Parquet at {entry.get('location')} failed: {exc}. The notebook "
                "reads it with its own AWS credentials and region; or pull with --via livy") from None
        return Pulled(name=name, value=value, kind=entry.get("kind", "?"), format=fmt, rows=rows,
                      truncated=truncated, wire_chars=size, meta=meta)
    text = entry.get("data")
    if text is not None:
        value = decode(entry, text)
        if on_chunk:
            on_chunk(entry["name"], len(text), len(text), transport="livy", rows=entry.get("rows"))
    else:
        value = _decode_chunked(session, entry, timeout, on_chunk)
    return Pulled(
        name=entry["name"],
        value=value,
        kind=entry.get("kind", "?"),
        format=fmt,
        rows=entry.get("rows"),
        truncated=bool(entry.get("truncated")),
        wire_chars=int(entry.get("length") or len(text or "")),
        meta=meta,
    )


#: Seconds the driver is given to forget the rest of a pull that stopped early.
DROP_TIMEOUT = 60.0


def _decode_chunked(session, entry: dict[str, Any], timeout, on_chunk) -> Any:
    """Decode a value kept on the driver while its chunks are fetched. However the pull stops
    early (a value it cannot use, Ctrl-C, any error) the driver is told to forget the rest."""
    chunks = _Chunks(session, entry, timeout, on_chunk)
    try:
        return _decode(entry, iter(chunks))
    except BaseException:
        if not chunks.finished:
            _forget_rest(session, chunks, entry)
        raise


def _forget_rest(session, chunks: Any, entry: dict[str, Any]) -> None:
    """Free on the driver what a stopped pull did not take. The pull's own error stays what the
    user sees; if the driver cannot be told (a second Ctrl-C, a lost session) a warning says it
    keeps the rest until the session ends."""
    import warnings

    try:
        _run(session, f"{NAMESPACE}.drop({chunks.token!r}); print({MARKER!r})", chunks.what, DROP_TIMEOUT)
    except BaseException as exc:  # noqa: BLE001 - said, never hidden; the first error is re-raised
        warnings.warn(f"hail: the driver keeps the rest of {entry.get('name')!r} ({int(entry.get('bytes') or 0):,} "
                      f"bytes) until the session ends: it could not be told to let go ({type(exc).__name__}: "
                      f"{exc})", stacklevel=3)


def _clean(area) -> None:
    """Delete the staging locations; a leftover is said, never hidden."""
    problems = area.cleanup()
    if problems:
        import warnings

        warnings.warn("hail: could not delete staged -o files (delete them by hand): " + "; ".join(problems),
                      stacklevel=3)


class _Chunks:
    """The base64 chunks of a value kept on the driver, each fetched when the decoder asks for
    it (in order: the driver frees every chunk it sends); ``on_chunk(name, chars, total,
    transport="livy", rows=)`` is told before the first and after each."""

    def __init__(self, session, entry: dict[str, Any], timeout, on_chunk):
        self.token, self.total = entry["token"], int(entry["length"])
        if not all(c in "0123456789abcdef" for c in self.token):
            raise TransferError("the cluster sent a malformed transfer token")
        self.name = entry["name"]
        self.what = f"pulling {self.name}"
        self.session, self.timeout, self.on_chunk = session, timeout, on_chunk
        self.rows = entry.get("rows")
        self.start = 0

    @property
    def finished(self) -> bool:
        return self.start >= self.total

    def __iter__(self) -> Iterator[str]:
        if self.on_chunk:
            self.on_chunk(self.name, 0, self.total, transport="livy", rows=self.rows)
        while not self.finished:
            code = f"{NAMESPACE}.chunk({self.token!r}, {self.start}, {CHUNK_CHARS})"
            part = _run(self.session, code, self.what, self.timeout)
            if not part:
                raise TransferError(f"{self.what}: the cluster sent an empty chunk at {self.start} of {self.total}")
            self.start += len(part)
            if self.start > self.total:
                raise TransferError(f"{self.what}: the cluster sent {self.start} characters of the {self.total} "
                                    "it announced")
            if self.on_chunk:
                self.on_chunk(self.name, self.start, self.total, transport="livy", rows=self.rows)
            yield part
            part = ""  # decoded by now: let it go before the next chunk arrives


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
    via: str = "livy",
    config: Any = None,
) -> dict[str, Any]:
    """Send ``value`` to the session as variable ``name``; returns the cluster's summary.

    ``via`` is one of :data:`VIAS`: a pandas frame goes staged as Parquet (``"staged"``, or
    ``"auto"`` when its estimated size is above the configuration's ``transfer_inline_max``
    bytes), else inline through Livy. The summary is ``{"name", "type", "shape"}``, plus
    ``"via": "staged"`` and ``"bytes"`` (Parquet written) when staged, or ``"note"`` when
    ``"auto"`` wanted to stage and could not. ``on_chunk(name, done, total)`` reports bytes
    sent. Raises :class:`TransferError`, ``StatementError`` (a remote error) or
    ``StatementInterrupted`` (Ctrl-C; the statement was cancelled).
    """
    if not name.isidentifier():
        raise TransferError(f"{name!r} is not a Python variable name: use --as NAME")
    if via not in VIAS:
        raise TransferError(f"--via must be one of {', '.join(VIAS)}, got {via!r}")
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    note = None
    if isinstance(frame, pd.DataFrame) and via != "livy":
        from ..remote.staged import estimate_pandas

        config = config if config is not None else load_config()
        if via == "staged" or estimate_pandas(frame) > int(config.get("transfer_inline_max")):
            summary, note = _push_staged(session, frame, name, as_pandas, timeout, on_chunk, config, via == "staged")
            if summary is not None:
                return summary
    summary = _push_inline(session, value, name, as_pandas, timeout, on_chunk)
    if note:
        summary["note"] = note
    return summary


def _push_inline(session, value, name, as_pandas, timeout, on_chunk) -> dict[str, Any]:
    """The codec (or JSON) in base64 statements of :data:`PUSH_CHUNK_CHARS`, then one that decodes."""
    kind, text = encode_for_push(value)
    token = uuid.uuid4().hex
    for start in range(0, len(text), PUSH_CHUNK_CHARS):
        part = text[start : start + PUSH_CHUNK_CHARS]
        _run(session, f"{NAMESPACE}.push_part({token!r}, {part!r})", f"pushing {name}", timeout)
        if on_chunk:
            on_chunk(name, min(start + PUSH_CHUNK_CHARS, len(text)), len(text), transport="livy")
    if not text:
        _run(session, f"{NAMESPACE}.push_part({token!r}, '')", f"pushing {name}", timeout)
    code = f"{NAMESPACE}.push_finish(globals(), {token!r}, {name!r}, {kind!r}, as_pandas={bool(as_pandas)})"
    return json.loads(_run(session, code, f"pushing {name}", timeout))


def _push_staged(session, frame: pd.DataFrame, name: str, as_pandas: bool, timeout, on_chunk, config,
                 forced: bool) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """``(summary, None)`` once staged, or ``(None, why not)`` when inline must do (``forced``: raise).

    The cluster first names the offered location it can read; the frame is written there and
    read by the cluster; every offered location is deleted afterwards, whatever happened.
    """
    from .staged_push import NotStageable, staged_table

    def cannot(why: str) -> tuple[None, str]:
        if forced:
            raise TransferError(f"--via staged cannot push {name}: {why}; push it with --via livy")
        return None, f"pushed inline, not staged: {why}"

    try:
        staged = staged_table(frame, as_pandas)
    except NotStageable as exc:
        return cannot(str(exc))
    area = StagingArea.open(config)
    try:
        if not area.locations:
            return cannot("there is nowhere to stage (" + "; ".join(area.unavailable) + ")")
        code = f"{NAMESPACE}.push_where(globals(), {area.wire()!r}, as_pandas={bool(as_pandas)})"
        where = json.loads(_run(session, code, f"pushing {name}", timeout))
        if "location" not in where:
            return cannot(str(where.get("refused")))
        loc = area.location_of({"name": name, "location": where["location"]})
        progress = (lambda done, total: on_chunk(name, done, total, transport="staged", rows=staged.rows)
                    ) if on_chunk else None
        try:
            files, size = area.write(loc, staged.table, progress)
        except OSError as exc:
            raise TransferError(f"pushing {name}: writing the staged Parquet to {loc.url} failed: {exc}") from None
        del staged.table  # the cluster reads the files; the notebook's Arrow copy can go
        code = (f"{NAMESPACE}.push_staged(globals(), {loc.wire()!r}, {files!r}, {name!r}, {staged.names!r}, "
                f"{staged.naive!r}, {staged.rows}, as_pandas={bool(as_pandas)})")
        summary = json.loads(_run(session, code, f"pushing {name}", timeout))
        summary["bytes"] = size
        return summary, None
    finally:
        _clean_push(area)


def _clean_push(area) -> None:
    """Delete a staged push's locations; a leftover is said, never hidden."""
    problems = area.cleanup()
    if problems:
        import warnings

        warnings.warn("hail: could not delete staged push files (delete them by hand): " + "; ".join(problems),
                      stacklevel=4)
