"""Plot pass-through: plot files the cluster writes, pulled over the Livy session and shown safely.

* The session defines ``PLOTS_DIR`` and ``save_plot(fig, name)`` (``hail_emr_lab/remote/plots.py``,
  installed by :class:`~hail_emr_lab.plots.helpers.RemoteHelpers`); users save plots there as
  they did with the Quick Start, and ``show()`` saves there too.
* After each ``%%hail`` cell, :meth:`PlotManager.after_cell` finds files that are new or
  changed (small ones arrive inside that same statement), pulls big ones
  (:mod:`~hail_emr_lab.plots.puller`), and keeps byte-identical copies under ``plots/`` next to
  the notebook, with an index (:mod:`~hail_emr_lab.plots.store`).
* Names from the cluster are untrusted (:mod:`~hail_emr_lab.plots.names`); showing a plot is
  :mod:`~hail_emr_lab.plots.render`'s job.
"""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .bokeh_offline import BokehJS, cdn_bundles
from .errors import Changed, PlotError, ShaMismatch
from .helpers import RemoteHelpers
from .names import check_name, printable
from .puller import CHUNK, HttpPuller, SessionPuller
from .scan import Refusals, merge
from .store import MAX_PLOT_BYTES, LocalPlot, load_index, save

#: New plots up to this many bytes in total ride along in the scan statement.
INLINE_LIMIT = 4 * 1024 * 1024
#: Tries of a pull whose file keeps changing under it.
PULL_TRIES = 3


@dataclass
class RemotePlot:
    """A file in the cluster's plot directory: ``size`` in bytes, ``mtime`` epoch seconds."""

    name: str
    size: int
    mtime: float
    sha256: Optional[str] = None


def _stderr_warning(message: str) -> None:
    print(f"hail-emr-lab: {message}", file=sys.stderr)


class PlotManager:
    """Finds, pulls and records the plots of one Livy session (see the module docstring).

    ``plots_url`` switches content transfer to HTTP GET ``<plots_url>/<name>`` (Quick Start
    clusters serving ``/plots`` on port 80); listing still goes through the session, and
    copies are verified against the cluster's sha256 either way. Sizes are in bytes.
    """

    def __init__(
        self,
        session: Any,
        local_dir: Path,
        plots_dir: str,
        plots_url: Optional[str] = None,
        chunk_size: int = CHUNK,
        inline_limit: int = INLINE_LIMIT,
        warn: Callable[[str], None] = _stderr_warning,
        bokehjs: Optional[BokehJS] = None,
        max_bytes: int = MAX_PLOT_BYTES,
    ):
        self.session = session
        self.local_dir = Path(local_dir)
        self.plots_dir = plots_dir
        self.helpers = RemoteHelpers(session, plots_dir)
        self.puller = SessionPuller(self.helpers, chunk_size)
        self.http = HttpPuller(plots_url) if plots_url else None
        self.inline_limit = inline_limit
        self.warn = warn
        self.max_bytes = max_bytes
        self.bokehjs = bokehjs or BokehJS()
        if self.bokehjs.fetch is None:
            self.bokehjs.fetch = self.puller.bokehjs
        self.refusals = Refusals(warn)
        self._queued: list[Any] = []  # scan statements submitted right after the user's cells
        self._retry: set[str] = set()  # names whose pull failed: tried again next time
        self._dir_warned = False

    @property
    def refused(self) -> list[tuple[str, str]]:
        """(name, reason) of the names refused at the last look."""
        return self.refusals.last

    def setup_code(self) -> str:
        """Code to run once in the session (after ``hl.init``): PLOTS_DIR, save_plot, helpers."""
        return self.helpers.setup_code()

    # ------------------------------------------------------------------ listing

    def list_remote(self) -> list[RemotePlot]:
        """The plot files on the cluster, oldest first; :class:`PlotError` if the directory is unreadable."""
        result = self.helpers.call("list_plots()", "listing the plot directory")
        if result.get("error"):
            raise PlotError(
                f"cannot list the plot directory {result.get('dir')!r} on the cluster: {result['error']}. On EMR, "
                "create it with the plots step (lifecycle-scripts/emr/create-plots-dir.sh), or point the "
                "connection at another directory"
            )
        entries = self.refusals.filter(result.get("files"), result.get("refused"))
        self.refusals.report()
        plots = [
            RemotePlot(e["name"], int(e["size"]), float(e["mtime"]),
                       e.get("sha256") if isinstance(e.get("sha256"), str) else None)
            for e in entries
        ]
        return sorted(plots, key=lambda p: (p.mtime, p.name))

    def remote_bokeh_version(self) -> Optional[str]:
        """The bokeh version installed in the session's Python (None without bokeh)."""
        result = self.helpers.call("bokeh_version()", "asking the cluster for its bokeh version")
        version = result.get("version") if isinstance(result, dict) else None
        return str(version) if version is not None else None

    # ------------------------------------------------------------------ after a cell

    def _scan_call(self, sweep: bool = True) -> str:
        # sweep: also save the matplotlib figures the cell left open (not for --no-plots cells)
        return f"scan({int(self.inline_limit)}, sweep={bool(sweep)})"

    def queue_scan(self) -> None:
        """Submit the scan right after the user's cell (no wait): Livy runs it after the cell,
        so :meth:`after_cell` then costs no extra round trip."""
        self._queued.append(self.session.submit(self.helpers.json_code(self._scan_call())))

    def _queued_result(self, statement: Any) -> dict[str, Any]:
        statement = self.session.wait(statement)
        output = statement.output
        if output is None:
            raise PlotError(f"the plot scan (statement {statement.id}) ended {statement.state.value} without output")
        if self.helpers.missing(output):  # helpers not defined yet in this session
            return self.helpers.call(self._scan_call(), "scanning the plot directory")
        return self.helpers.json_result(output, "scanning the plot directory")

    def _look(self, pull: bool) -> list[dict[str, Any]]:
        """The entries of the queued scans (or of a new one), checked; warnings said."""
        queued, self._queued = self._queued, []
        results = [self._queued_result(st) for st in queued]
        if not results:
            results = [self.helpers.call(self._scan_call(sweep=pull), "scanning the plot directory")]
        # Scans queued behind cells whose after_cell never ran (an error stopped the magic) still count.
        result = merge(results)
        for problem in result["show_errors"]:
            self.warn(f"a figure left open by the cell could not be saved for showing: {problem}")
        error = str(result.get("error") or "")
        # A missing directory is normal for a user who never plots; save_plot explains it when used.
        if error and not error.startswith("FileNotFoundError") and not self._dir_warned:
            self._dir_warned = True
            self.warn(f"cannot read the plot directory {result.get('dir')!r} on the cluster: {error}")
        entries = self.refusals.filter(result.get("files"), result.get("refused"))
        self.refusals.report(once=True)
        return entries

    def after_cell(self, pull: bool = True) -> list[LocalPlot]:
        """Pull the plot files that are new or changed since the last look; return them.

        With ``pull=False`` the changes are only marked as seen (for ``--no-plots`` cells), and
        open matplotlib figures are left open. The plots come in the order they were saved.
        Refused names are reported with a visible warning, once per name; a failed pull is
        reported and retried after the next cell.
        """
        entries = self._look(pull)
        if not pull:
            return []
        index = {e["name"]: e for e in load_index(self.local_dir)} if self.local_dir.is_dir() else {}
        fresh = [e for e in entries if not self._have(index.get(e["name"]), e)]
        pulled = self._pull_all(fresh, lambda entry: self._pull_entry(entry), retry_later=True)
        seen = {e["name"] for e in entries}
        pulled += self._pull_all(sorted(self._retry - seen), self.pull, retry_later=False)
        self._retry -= {p.name for p in pulled}
        return pulled

    def _have(self, known: Optional[dict[str, Any]], entry: dict[str, Any]) -> bool:
        """True if our copy already has the content the cluster lists."""
        return bool(known) and known.get("sha256") == entry.get("sha256") and (self.local_dir / entry["name"]).is_file()

    def _pull_all(self, items: Iterable[Any], pull: Callable[[Any], LocalPlot], retry_later: bool) -> list[LocalPlot]:
        """Pull each item; a failure is warned about and (``retry_later``) kept for the next cell,
        else dropped once the file is gone."""
        pulled = []
        for item in items:
            name = item["name"] if isinstance(item, dict) else item
            try:
                pulled.append(pull(item))
            except PlotError as exc:
                if retry_later:
                    self._retry.add(name)
                    self.warn(f"could not pull plot {printable(name)}: {exc} (will retry after the next cell)")
                    continue
                self.warn(f"could not pull plot {printable(name)}: {exc}")
                if "No such file" in str(exc) or "FileNotFoundError" in str(exc):
                    self._retry.discard(name)
        return pulled

    def _pull_entry(self, entry: dict[str, Any]) -> LocalPlot:
        data = entry.get("data")
        if isinstance(data, str) and isinstance(entry.get("sha256"), str):
            return self._save(entry["name"], [base64.b64decode(data)], entry["sha256"], float(entry["mtime"]))
        return self.pull(entry["name"])

    # ------------------------------------------------------------------ pulling

    def pull(self, name: str) -> LocalPlot:
        """Pull one plot file (chunked over the session, or by HTTP) and record it; verified by sha256.

        Raises :class:`PlotError` (the message says why: unreadable, too large, kept changing).
        """
        check_name(name)
        last: Optional[PlotError] = None
        for _attempt in range(PULL_TRIES):
            try:
                return self._pull_once(name)
            except (Changed, ShaMismatch) as exc:
                last = PlotError(f"{name!r} kept changing while being pulled ({exc})")
        assert last is not None
        raise last

    def _pull_once(self, name: str) -> LocalPlot:
        if self.http is not None:
            info = self.helpers.call(f"info({name!r})", f"looking up plot {name!r}")
            self._check_size(name, int(info["size"]))
            return self._save(name, self.http.chunks(name), str(info["sha256"]), float(info["mtime"]))
        header, first = self.puller.first(name)
        self._check_size(name, int(header["size"]))
        later = self.puller.rest(name, header)  # queued now: the cluster reads on while this one is written

        def parts() -> Iterable[bytes]:
            yield first
            yield from later

        return self._save(name, parts(), str(header["sha256"]), header["mtime_ns"] / 1e9)

    def _check_size(self, name: str, size: int) -> None:
        if size > self.max_bytes:
            raise PlotError(f"{name!r} is {size / 1e6:.0f} MB, over the {self.max_bytes / 1e6:.0f} MB limit for plots")

    def _save(self, name: str, parts: Iterable[bytes], sha256: str, mtime: float) -> LocalPlot:
        remote_path = self.plots_dir.rstrip("/") + "/" + name
        plot = save(self.local_dir, name, parts, sha256, mtime, remote_path, self.max_bytes)
        if plot.kind == "html":
            self._prefetch_bokehjs(plot)
        return plot

    def _prefetch_bokehjs(self, plot: LocalPlot) -> None:
        """Make sure the BokehJS this plot loads from the CDN is available offline (fetched once)."""
        with open(plot.path, "rb") as f:
            head = f.read(64 * 1024).decode("utf-8", errors="replace")  # bokeh puts its scripts in <head>
        if not cdn_bundles(head):
            return
        missing = self.bokehjs.ensure(head)
        if missing:
            err = self.bokehjs.last_error
            self.warn(
                f"plot {printable(plot.name)} needs BokehJS {', '.join(f'{b}-{v}' for b, v in missing)}, which is "
                "neither installed here nor on the cluster"
                + (f" ({err})" if err else "")
                + "; it will only render with internet access"
            )
