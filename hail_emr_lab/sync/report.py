"""The result of one sync run, for people (``summary``) and programs (``to_dict``).

Names in the text shown to people come from other machines (S3 keys anyone with write access to
the prefix chose) or from the file system, so they pass through :func:`shown` first: a key
holding ``\x1b[2J`` must not clear the terminal it is printed on. ``to_dict`` keeps them raw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import HailEmrLabError

#: Exit code of a run that finished but could not sync everything (unreadable files, ...).
EXIT_PARTIAL = 3


class RemoteUnavailable(HailEmrLabError):
    """S3 cannot be used at all for this run (bucket missing, endpoint unreachable, credentials
    refused): one message for the whole run instead of one error per file. Raised by
    ``backup`` and ``restore``; built by :func:`.remote.remote_failure`."""


def failed_report(action: str, target: str, exc: BaseException) -> SyncReport:
    """A report for a run that could not use S3 at all (for callers that keep going)."""
    return SyncReport(action, target, errors=[{"path": target, "error": str(exc)}])


def shown(value: Any) -> str:
    """``value`` as text safe for a terminal: every character that is not printable (control
    characters such as ESC, CR and newline, bidi overrides, undecodable bytes kept as lone
    surrogates) is written as its Python escape (``\\x1b``, ``\\n``, ``\\u202e``, ``\\udcff``);
    printable text, including non-ASCII letters, is unchanged."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown_all(value: Any) -> Any:
    """:func:`shown` applied to every string inside ``value`` (dicts, lists; other values as
    they are): for printing a structure built for programs, such as ``status()``."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {k: shown_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown_all(v) for v in value]
    return value


@dataclass
class SyncReport:
    """What a backup, restore or seed did."""

    action: str
    target: str = ""
    uploaded: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    trashed: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    #: multipart uploads left by killed runs of this home and aborted by this one
    aborted_uploads: int = 0
    remote_calls: bool = False

    @property
    def partial(self) -> bool:
        return bool(self.errors)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["partial"] = self.partial
        return out

    def summary(self) -> str:
        """A few lines for the terminal."""
        parts = []
        if self.uploaded:
            parts.append(f"{len(self.uploaded)} uploaded")
        if self.downloaded:
            parts.append(f"{len(self.downloaded)} downloaded")
        if self.trashed:
            parts.append(f"{len(self.trashed)} moved to the remote trash")
        parts.append(f"{self.unchanged} unchanged")
        if self.aborted_uploads:
            parts.append(f"{self.aborted_uploads} interrupted uploads aborted")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts")
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        mb = self.bytes / 1e6
        lines = [f"{self.action} {shown(self.target)}: " + ", ".join(parts) + f" ({mb:.1f} MB, {self.seconds:.1f} s)"]
        for c in self.conflicts:
            lines.append(f"  conflict: {shown(c['path'])} -> other version kept as {shown(c['conflict_copy'])}")
        for e in self.errors:
            lines.append(f"  error: {shown(e['path'])}: {shown(e['error'])}")
        for n in self.notes:
            lines.append(f"  note: {shown(n['path'])}: {shown(n['note'])}")
        if self.errors:
            lines.append(f"  the {self.action} was partial: fix the errors above and run it again")
        return "\n".join(lines)
