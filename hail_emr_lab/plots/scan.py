"""What a look at the cluster's plot directory found: merged, filtered, refusals reported.

The cluster-side ``scan`` answers the files new or changed since its last look; scans queued
behind several cells (when an error stopped the magic before it looked) are merged, the
newest entry per name winning. Every entry is checked here again (names are untrusted);
refused names are reported in one warning, at most once per name for the automatic look.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import UnsafePlotName
from .names import check_name, printable


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One scan answer from several, in order: files by name (last wins), all refusals and
    show errors; ``dir``, ``error`` and ``total`` of the last."""
    merged: dict[str, Any] = {}
    for res in results:
        for entry in res.get("files") or []:
            if isinstance(entry, dict):
                merged[str(entry.get("name"))] = entry
    out = dict(results[-1], files=list(merged.values()))
    out["refused"] = [item for res in results for item in res.get("refused") or []]
    out["show_errors"] = [problem for res in results for problem in res.get("show_errors") or []]
    return out


class Refusals:
    """Names refused at the last look, and the warning that lists them."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn
        self.last: list[tuple[str, str]] = []  # (name, reason) refused at the last look
        self._warned: set[str] = set()  # names already warned about after a cell

    def filter(self, entries: Any, refused: Any) -> list[dict[str, Any]]:
        """The well-formed entries with safe names; the others (and the cluster's own
        refusals) go to :attr:`last`, which starts afresh."""
        self.last = [(str(item.get("name")), str(item.get("reason"))) for item in refused or []
                     if isinstance(item, dict)]
        good = []
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            try:
                check_name(name)
                int(entry.get("size"))
                float(entry.get("mtime"))
            except UnsafePlotName as exc:
                self.last.append((name if isinstance(name, str) else repr(name), str(exc)))
                continue
            except (TypeError, ValueError):
                self.last.append((str(name), "malformed listing entry"))
                continue
            good.append(entry)
        return good

    def report(self, once: bool = False) -> None:
        """Warn about the refused names; with ``once``, only about names not warned about before."""
        refused = self.last
        if once:
            refused = [(n, why) for n, why in refused if n not in self._warned]
            self._warned.update(n for n, _ in refused)
        if refused:
            shown = "; ".join(f"{printable(n)} ({why})" for n, why in refused[:20])
            more = f" and {len(refused) - 20} more" if len(refused) > 20 else ""
            self.warn(
                f"refused {len(refused)} plot file name(s) from the cluster, nothing was written for them: "
                f"{shown}{more}. Rename them in PLOTS_DIR using letters, digits and ._-"
            )
