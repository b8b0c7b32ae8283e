"""The result of one sync run, for people (``summary``) and programs (``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Exit code of a run that finished but could not sync everything (unreadable files, ...).
EXIT_PARTIAL = 3


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
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts")
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        mb = self.bytes / 1e6
        lines = [f"{self.action} {self.target}: " + ", ".join(parts) + f" ({mb:.1f} MB, {self.seconds:.1f} s)"]
        for c in self.conflicts:
            lines.append(f"  conflict: {c['path']} -> other version kept as {c['conflict_copy']}")
        for e in self.errors:
            lines.append(f"  error: {e['path']}: {e['error']}")
        for n in self.notes:
            lines.append(f"  note: {n['path']}: {n['note']}")
        if self.errors:
            lines.append(f"  the {self.action} was partial: fix the errors above and run it again")
        return "\n".join(lines)
