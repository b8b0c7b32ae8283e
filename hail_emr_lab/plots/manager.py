"""Plot pass-through: plot files the cluster writes, pulled over the Livy session and shown safely.

* The session defines ``PLOTS_DIR`` and ``save_plot(fig, name)`` (see
  ``hail_emr_lab/remote/plots.py``); users save plots there as they did with the Quick Start.
* After each ``%%hail`` cell, :meth:`PlotManager.after_cell` finds files that are new or
  changed (small ones arrive inside that same statement), pulls big ones in chunks, and keeps
  byte-identical copies under ``plots/`` next to the notebook, with an index file.
* Names from the cluster are untrusted: :func:`check_name` refuses anything that could
  escape ``plots/``; writes never follow symlinks.
* :func:`display_plot` shows HTML only inside a sandboxed iframe (``allow-scripts``, never
  ``allow-same-origin``) with BokehJS inlined (offline), images as images, SVG as an image.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import html as _html
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

from ..errors import HailEmrLabError
from ..paths import PathRefused, path_inside, unsafe_reason
from .bokeh_offline import BokehJS, cdn_bundles, compressed_bokehjs

INDEX_NAME = ".hail-plots-index.json"
LOCK_NAME = ".hail-plots-index.lock"
CHUNK = 4 * 1024 * 1024  # raw bytes per statement: ~5.6 MB of base64, far below Livy's 50 MB RPC limit
INLINE_LIMIT = 4 * 1024 * 1024  # new plots up to this total ride along in the scan statement
PIPELINE = 3  # chunk statements queued at once (Livy runs them in order; saves round trips)
MAX_PLOT_BYTES = 1024 * 1024 * 1024
PLOT_SUFFIXES = (".html", ".htm", ".png", ".svg", ".jpg", ".jpeg", ".gif", ".pdf")
REMOTE_SOURCE = Path(__file__).resolve().parent.parent / "remote" / "plots.py"

_NAME_EXTRA = set("._-+=,@()[]~# ")
MAX_NAME = 1024
MAX_DEPTH = 4


class PlotError(HailEmrLabError):
    """A plot could not be listed, pulled or shown."""


class UnsafePlotName(PlotError, PathRefused):
    """A name from the cluster that could escape ``plots/`` or is otherwise unsafe to write."""


@dataclass
class RemotePlot:
    """A file in the cluster's plot directory."""

    name: str
    size: int
    mtime: float
    sha256: Optional[str] = None


@dataclass
class LocalPlot:
    """A pulled plot: a byte-identical copy of the remote file under ``plots/``."""

    name: str
    path: Path
    size: int
    sha256: str
    mtime: float
    remote_path: str
    pulled_at: str

    @property
    def kind(self) -> str:
        """'html', 'png', 'svg', 'jpeg', 'gif', 'pdf' or 'other'."""
        ext = self.path.suffix.lower().lstrip(".")
        return (
            {"htm": "html", "jpg": "jpeg"}.get(ext, ext)
            if ext in ("html", "htm", "png", "svg", "jpg", "jpeg", "gif", "pdf")
            else "other"
        )


# ---------------------------------------------------------------------------- names and paths


def check_name(name: Any) -> str:
    """Return ``name`` if it is a safe relative plot name, else raise :class:`UnsafePlotName`.

    The rules of every relative name (:func:`hail_emr_lab.paths.unsafe_reason`: no NUL,
    backslash, absolute path, empty, '.' or '..' component, component over 255 bytes), and for
    plots: '/'-separated components (at most 4) of letters, digits, spaces inside, and
    ``._-+=,@()[]~#``; no component starting with '.'; no control or format characters.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePlotName(f"{name!r}: not a non-empty string")
    if len(name) > MAX_NAME:
        raise UnsafePlotName(f"{name[:60]!r}...: longer than {MAX_NAME} characters")
    problem = unsafe_reason(name)
    if problem:
        raise UnsafePlotName(f"{name!r}: {problem}")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafePlotName(f"{name!r}: nested deeper than {MAX_DEPTH} levels")
    for part in parts:
        if part.startswith("."):
            raise UnsafePlotName(f"{name!r}: hidden file name (starts with '.')")
        if part != part.strip():
            raise UnsafePlotName(f"{name!r}: leading or trailing space")
        odd = [ch for ch in part if not (ch.isalnum() or ch in _NAME_EXTRA)]
        if odd:
            raise UnsafePlotName(f"{name!r}: unexpected character(s) {''.join(sorted(set(odd)))!r}")
    return name


def _target(local_dir: Path, name: str) -> Path:
    """The local path for ``name``, creating its folders; refuses symlinked folders or escapes."""
    check_name(name)
    root = local_dir.resolve()
    folder = root
    for part in name.split("/")[:-1]:
        folder = folder / part
        if not os.path.lexists(folder):
            folder.mkdir()
            continue
        if folder.is_symlink() or not folder.is_dir():
            raise UnsafePlotName(f"{name!r}: local folder {folder} is a symlink or not a directory")
    if "/" in name:  # the folders' real path, symlinks included, stays inside plots/
        path_inside(root, name.rsplit("/", 1)[0], error=UnsafePlotName, what="plot folder of")
    # A symlink as the file itself is fine: the write replaces it (os.replace), never follows it.
    final = folder / name.split("/")[-1]
    if final.is_dir() and not final.is_symlink():
        raise UnsafePlotName(f"{name!r}: a directory of that name exists in {root}")
    return final


class _Writer:
    """Streams bytes to a temporary file next to the target, hashing; ``commit`` renames it in place.

    ``os.replace`` swaps the directory entry, so an existing symlink at the target is replaced,
    never followed.
    """

    def __init__(self, target: Path):
        self.target = target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def commit(self, sha256: str, what: str) -> None:
        self.file.close()
        if self.hash.hexdigest() != sha256:
            self.abort()
            raise _ShaMismatch(
                f"{what}: the copy's sha256 does not match the cluster's file (it changed while pulling?)"
            )
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


# ---------------------------------------------------------------------------- index


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _locked(local_dir: Path) -> Iterator[None]:
    """Serialise index updates between kernels sharing a folder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(local_dir / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_index(local_dir: Path) -> list[dict[str, Any]]:
    path = local_dir / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []  # a damaged index is rebuilt from the next pulls; the plot files themselves are intact
    items = data.get("plots") if isinstance(data, dict) else None
    return [p for p in items or [] if isinstance(p, dict) and isinstance(p.get("name"), str)]


def read_index(local_dir: Path) -> list[dict[str, Any]]:
    """The pulled plots recorded in ``local_dir``'s index, newest first.

    Each dict has ``name``, ``remote_path``, ``pulled_at`` (ISO time), ``mtime`` (remote, epoch
    seconds), ``size``, ``sha256``, ``kind`` and ``local_path`` (absolute). Entries whose name
    is unsafe or whose file is gone are left out, so a tampered index cannot point outside.
    """
    local_dir = Path(local_dir)
    out = []
    for entry in _load_index(local_dir):
        try:
            path = _safe_existing(local_dir, entry["name"])
        except UnsafePlotName:
            continue
        if path is None:
            continue
        item = dict(entry)
        item["local_path"] = str(path)
        out.append(item)
    out.sort(key=lambda e: str(e.get("pulled_at", "")), reverse=True)
    return out


def _safe_existing(local_dir: Path, name: str) -> Optional[Path]:
    check_name(name)
    root = local_dir.resolve()
    path = root.joinpath(*name.split("/"))
    if not path.is_file() or path.is_symlink():
        return None
    try:
        path_inside(root, name, error=UnsafePlotName, what="plot")
    except UnsafePlotName:
        return None
    return path


def _record(local_dir: Path, plot: LocalPlot) -> None:
    """Add or replace ``plot`` in the index (atomic rewrite under a lock)."""
    with _locked(local_dir):
        items = [p for p in _load_index(local_dir) if p.get("name") != plot.name]
        entry = asdict(plot)
        entry["local_path"] = plot.name  # relative to the index's folder (stays valid if the folder moves)
        entry.pop("path", None)
        entry["kind"] = plot.kind
        items.append(entry)
        body = json.dumps({"version": 1, "plots": items}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=local_dir, prefix=".tmp-index-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, local_dir / INDEX_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _printable(name: Any) -> str:
    # repr escapes control characters and terminal escapes; keep it short.
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."


def _stderr_warning(message: str) -> None:
    print(f"hail-emr-lab: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- manager


class PlotManager:
    """Finds, pulls and records the plots of one Livy session (see module docstring).

    ``plots_url`` switches content transfer to HTTP GET ``<plots_url>/<name>`` (Quick Start
    clusters serving ``/plots`` on port 80); listing still goes through the session, and
    copies are verified against the cluster's sha256 either way.
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
        self.plots_url = plots_url.rstrip("/") + "/" if plots_url else None
        self.chunk_size = chunk_size
        self.inline_limit = inline_limit
        self.warn = warn
        self.max_bytes = max_bytes
        self.bokehjs = bokehjs or BokehJS()
        if self.bokehjs.fetch is None:
            self.bokehjs.fetch = self._fetch_bokehjs
        self.refused: list[tuple[str, str]] = []  # (name, reason) refused at the last look
        self._refused_warned: set[str] = set()  # names already warned about after a cell
        self._queued: list[Any] = []  # scan statements submitted right after the user's cells
        self._retry: set[str] = set()  # names whose pull failed: tried again next time
        self._http: Any = None
        self._dir_warned = False

    # ------------------------------------------------------------------ remote calls

    def setup_code(self) -> str:
        """Code to run once in the session (after ``hl.init``): PLOTS_DIR, save_plot, helpers."""
        source = REMOTE_SOURCE.read_text(encoding="utf-8")
        return (
            "_hel_plots_ns = {'__name__': 'hail_emr_lab_remote_plots'}\n"
            f"exec(compile({source!r}, '<hail-emr-lab plots>', 'exec'), _hel_plots_ns)\n"
            f"PLOTS_DIR = _hel_plots_ns['init']({self.plots_dir!r})\n"
            "save_plot = _hel_plots_ns['save_plot']\n"
            "_hel_plots_list = _hel_plots_ns['list_plots']\n"
            "_hel_plots_scan = _hel_plots_ns['scan']\n"
            "_hel_plots_read = _hel_plots_ns['read']\n"
            "_hel_plots_forget = _hel_plots_ns['forget']\n"
            "_hel_plots_bokeh_version = _hel_plots_ns['bokeh_version']\n"
            "_hel_plots_bokehjs = _hel_plots_ns['read_bokehjs']\n"
            "_hel_plots_ns['route_shows']()\n"  # hl.plot.show, bokeh's show, plt.show() save here
        )

    @staticmethod
    def _call_code(call: str) -> str:
        return f"_hel_plots_out = {call}\n%json _hel_plots_out"

    def _result(self, output: Any, what: str) -> Any:
        if not output.ok:
            raise PlotError(f"{what} failed on the cluster: {output.error_text}")
        result = output.json
        if result is None:
            raise PlotError(f"{what}: the session answered without JSON output ({output.text[:200]!r})")
        return result

    def _call(self, call: str, what: str) -> Any:
        """Run one helper call in the session (defining the helpers first if the session lacks them)."""
        output = self.session.run(self._call_code(call))
        if not output.ok and output.ename == "NameError" and "_hel_plots" in (output.evalue or ""):
            self.session.run(self.setup_code(), check=True)
            output = self.session.run(self._call_code(call))
        return self._result(output, what)

    # ------------------------------------------------------------------ listing

    def _filter(self, entries: list[Any], refused: list[Any]) -> list[dict[str, Any]]:
        good = []
        for item in refused or []:
            if isinstance(item, dict):
                self.refused.append((str(item.get("name")), str(item.get("reason"))))
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            try:
                check_name(name)
                int(entry.get("size"))
                float(entry.get("mtime"))
            except UnsafePlotName as exc:
                self.refused.append((name if isinstance(name, str) else repr(name), str(exc)))
                continue
            except (TypeError, ValueError):
                self.refused.append((str(name), "malformed listing entry"))
                continue
            good.append(entry)
        return good

    def _report_refused(self, once: bool = False) -> None:
        """Warn about the refused names; with ``once``, only about names not warned about before."""
        refused = self.refused
        if once:
            refused = [(n, why) for n, why in refused if n not in self._refused_warned]
            self._refused_warned.update(n for n, _ in refused)
        if refused:
            shown = "; ".join(f"{_printable(n)} ({why})" for n, why in refused[:20])
            more = f" and {len(refused) - 20} more" if len(refused) > 20 else ""
            self.warn(
                f"refused {len(refused)} plot file name(s) from the cluster, nothing was written for them: "
                f"{shown}{more}. Rename them in PLOTS_DIR using letters, digits and ._-"
            )

    def list_remote(self) -> list[RemotePlot]:
        """The plot files on the cluster (name, size, mtime, sha256), oldest first."""
        self.refused = []
        result = self._call("_hel_plots_list()", "listing the plot directory")
        if result.get("error"):
            raise PlotError(
                f"cannot list the plot directory {result.get('dir')!r} on the cluster: {result['error']}. On EMR, "
                "create it with the plots step (lifecycle-scripts/emr/create-plots-dir.sh), or point the "
                "connection at another directory"
            )
        entries = self._filter(result.get("files"), result.get("refused"))
        self._report_refused()
        plots = [
            RemotePlot(
                e["name"],
                int(e["size"]),
                float(e["mtime"]),
                e.get("sha256") if isinstance(e.get("sha256"), str) else None,
            )
            for e in entries
        ]
        return sorted(plots, key=lambda p: (p.mtime, p.name))

    def remote_bokeh_version(self) -> Optional[str]:
        """The bokeh version installed in the session's Python (None without bokeh)."""
        result = self._call("{'version': _hel_plots_bokeh_version()}", "asking the cluster for its bokeh version")
        version = result.get("version") if isinstance(result, dict) else None
        return str(version) if version is not None else None

    # ------------------------------------------------------------------ auto-pull

    def _scan_call(self, sweep: bool = True) -> str:
        # sweep: also save the matplotlib figures the cell left open (not for --no-plots cells)
        return f"_hel_plots_scan({int(self.inline_limit)}, sweep={bool(sweep)})"

    def _scan_code(self) -> str:
        return self._call_code(self._scan_call())

    def queue_scan(self) -> None:
        """Submit the scan right after the user's cell (no wait): Livy runs it after the cell,
        so :meth:`after_cell` then costs no extra round trip."""
        self._queued.append(self.session.submit(self._scan_code()))

    def _queued_result(self, statement: Any) -> dict[str, Any]:
        statement = self.session.wait(statement)
        output = statement.output
        if output is None:
            raise PlotError(f"the plot scan (statement {statement.id}) ended {statement.state.value} without output")
        if not output.ok and output.ename == "NameError":  # helpers not defined yet in this session
            return self._call(self._scan_call(), "scanning the plot directory")
        return self._result(output, "scanning the plot directory")

    def after_cell(self, pull: bool = True) -> list[LocalPlot]:
        """Pull the plot files that are new or changed since the last look; return them.

        With ``pull=False`` the changes are only marked as seen (for ``--no-plots`` cells), and
        open matplotlib figures are left open. The plots come in the order they were saved.
        Refused names are reported with a visible warning, once per name; a failed pull is
        reported and retried after the next cell.
        """
        self.refused = []
        queued, self._queued = self._queued, []
        results = [self._queued_result(st) for st in queued]
        if not results:
            results = [self._call(self._scan_call(sweep=pull), "scanning the plot directory")]
        # Scans queued behind cells whose after_cell never ran (an error stopped the magic) still count.
        merged: dict[str, Any] = {}
        for res in results:
            for entry in res.get("files") or []:
                if isinstance(entry, dict):
                    merged[str(entry.get("name"))] = entry
        result = dict(results[-1], files=list(merged.values()))
        result["refused"] = [item for res in results for item in res.get("refused") or []]
        for res in results:
            for problem in res.get("show_errors") or []:
                self.warn(f"a figure left open by the cell could not be saved for showing: {problem}")
        error = str(result.get("error") or "")
        # A missing directory is normal for a user who never plots; save_plot explains it when used.
        if error and not error.startswith("FileNotFoundError"):
            if not self._dir_warned:
                self._dir_warned = True
                self.warn(f"cannot read the plot directory {result.get('dir')!r} on the cluster: {result['error']}")
        entries = self._filter(result.get("files"), result.get("refused"))
        self._report_refused(once=True)
        if not pull:
            return []
        index = {e["name"]: e for e in _load_index(self.local_dir)} if self.local_dir.is_dir() else {}
        pulled: list[LocalPlot] = []
        names = set()
        for entry in entries:
            name = entry["name"]
            names.add(name)
            known = index.get(name)
            sha = entry.get("sha256")
            if known and known.get("sha256") == sha and (self.local_dir / name).is_file():
                continue  # same content as our copy: nothing to do
            try:
                pulled.append(self._pull_entry(entry))
            except PlotError as exc:
                self._retry.add(name)
                self.warn(f"could not pull plot {_printable(name)}: {exc} (will retry after the next cell)")
        for name in sorted(self._retry - names):
            try:
                pulled.append(self.pull(name))
                self._retry.discard(name)
            except PlotError as exc:
                self.warn(f"could not pull plot {_printable(name)}: {exc}")
                if "No such file" in str(exc) or "FileNotFoundError" in str(exc):
                    self._retry.discard(name)
        self._retry -= {p.name for p in pulled}
        return pulled

    def _pull_entry(self, entry: dict[str, Any]) -> LocalPlot:
        data = entry.get("data")
        if isinstance(data, str) and isinstance(entry.get("sha256"), str):
            raw = base64.b64decode(data)
            return self._store(entry["name"], [raw], entry["sha256"], float(entry["mtime"]))
        return self.pull(entry["name"])

    # ------------------------------------------------------------------ pulling

    def pull(self, name: str) -> LocalPlot:
        """Pull one plot file (chunked, or by HTTP in HTTP mode) and record it; verified by sha256."""
        check_name(name)
        if self.plots_url:
            return self._pull_http(name)
        last: Optional[PlotError] = None
        for _attempt in range(3):
            try:
                return self._pull_session(name)
            except (_Changed, _ShaMismatch) as exc:
                last = PlotError(f"{name!r} kept changing while being pulled ({exc})")
        assert last is not None
        raise last

    def _read_code(self, name: str, offset: int) -> str:
        return self._call_code(f"_hel_plots_read({name!r}, {int(offset)}, {int(self.chunk_size)})")

    def _pull_session(self, name: str) -> LocalPlot:
        first = self._call(f"_hel_plots_read({name!r}, 0, {int(self.chunk_size)})", f"reading plot {name!r}")
        size, mtime_ns, sha = int(first["size"]), first["mtime_ns"], str(first["sha256"])
        if size > self.max_bytes:
            raise PlotError(f"{name!r} is {size / 1e6:.0f} MB, over the {self.max_bytes / 1e6:.0f} MB limit for plots")

        def chunks() -> Iterator[bytes]:
            yield base64.b64decode(first["data"])
            offsets = list(range(self.chunk_size, size, self.chunk_size))
            queue: list[Any] = []
            while offsets or queue:
                while offsets and len(queue) < PIPELINE:
                    queue.append(self.session.submit(self._read_code(name, offsets.pop(0))))
                statement = self.session.wait(queue.pop(0))
                if statement.output is None:
                    raise PlotError(f"reading {name!r}: statement {statement.id} ended without output")
                part = self._result(statement.output, f"reading plot {name!r}")
                if int(part["size"]) != size or part["mtime_ns"] != mtime_ns:
                    for pending in queue:
                        self.session.wait(pending)  # drain: the session stays in order for the retry
                    raise _Changed("size or modification time changed")
                yield base64.b64decode(part["data"])

        return self._store(name, chunks(), sha, mtime_ns / 1e9, expect_size=size)

    def _pull_http(self, name: str) -> LocalPlot:
        import requests

        info = self._call(f"_hel_plots_read({name!r}, 0, 0)", f"looking up plot {name!r}")
        size, sha = int(info["size"]), str(info["sha256"])
        if size > self.max_bytes:
            raise PlotError(f"{name!r} is {size / 1e6:.0f} MB, over the {self.max_bytes / 1e6:.0f} MB limit for plots")
        url = self.plots_url + "/".join(quote(part) for part in name.split("/"))
        if self._http is None:
            self._http = requests.Session()
        try:
            response = self._http.get(url, stream=True, timeout=(5, 60), allow_redirects=False)
        except requests.RequestException as exc:
            raise PlotError(
                f"could not fetch {url}: {exc.__class__.__name__}. Is port 80 open from this notebook to the "
                "master? Without --plots-url plots are pulled over the Livy session instead."
            ) from None
        with response:
            if response.status_code != 200:
                raise PlotError(
                    f"GET {url} answered HTTP {response.status_code}: is {self.plots_url} the plot directory?"
                )
            return self._store(name, response.iter_content(1 << 20), sha, float(info["mtime"]), expect_size=size)

    def _store(self, name: str, parts: Any, sha256: str, mtime: float, expect_size: Optional[int] = None) -> LocalPlot:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        target = _target(self.local_dir, name)
        writer = _Writer(target)
        try:
            for data in parts:
                writer.write(data)
                if writer.size > self.max_bytes:
                    raise PlotError(f"{name!r} is larger than the {self.max_bytes / 1e6:.0f} MB limit for plots")
            writer.commit(sha256, f"pulling {name!r}")
        except BaseException:
            writer.abort()
            raise
        plot = LocalPlot(
            name=name,
            path=target,
            size=writer.size,
            sha256=sha256,
            mtime=mtime,
            remote_path=self.plots_dir.rstrip("/") + "/" + name,
            pulled_at=_now(),
        )
        _record(self.local_dir, plot)
        if plot.kind == "html":
            self._prefetch_bokehjs(plot)
        return plot

    # ------------------------------------------------------------------ offline BokehJS

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
                f"plot {_printable(plot.name)} needs BokehJS {', '.join(f'{b}-{v}' for b, v in missing)}, which is "
                "neither installed here nor on the cluster"
                + (f" ({err})" if err else "")
                + "; it will only render with internet access"
            )

    def _fetch_bokehjs(self, bundle: str, version: str) -> bytes:
        parts = []
        offset = 0
        while True:
            out = self._call(
                f"_hel_plots_bokehjs({bundle!r}, {version!r}, {offset}, {int(self.chunk_size)})",
                f"reading BokehJS {bundle}-{version} from the cluster",
            )
            data = base64.b64decode(out["data"])
            parts.append(data)
            offset += len(data)
            if not data or offset >= int(out["size"]):
                return b"".join(parts)


class _Changed(Exception):
    """Internal: the remote file changed during a chunked pull."""


class _ShaMismatch(PlotError):
    """The pulled bytes do not hash to the cluster's sha256."""


# ---------------------------------------------------------------------------- display

SANDBOX = "allow-scripts"
_SIZE_RE = re.compile(r'"(?:height|frame_height)"\s*:\s*(\d{2,4})')


def _iframe_height(html: str) -> int:
    heights = [int(h) for h in _SIZE_RE.findall(html[:2_000_000])]
    best = max([h for h in heights if h <= 3000] or [600])
    return best + 40


def iframe_html(plot: LocalPlot, provider: Optional[BokehJS] = None) -> tuple[str, list[tuple[str, str]]]:
    """The sandboxed iframe markup for an HTML plot (BokehJS inlined, gzipped: it is saved in the
    notebook with every plot), and the bundles left on the CDN."""
    text = Path(plot.path).read_bytes().decode("utf-8", errors="replace")
    text, missing = compressed_bokehjs(text, provider)
    srcdoc = _html.escape(text, quote=True)
    title = _html.escape(plot.name, quote=True)
    markup = (
        f'<iframe class="hail-emr-lab-plot" title="{title}" sandbox="{SANDBOX}" referrerpolicy="no-referrer" '
        f'style="width: 100%; height: {_iframe_height(text)}px; border: 0;" srcdoc="{srcdoc}"></iframe>'
    )
    return markup, missing


_IMAGE_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
}


def plot_html(plot: LocalPlot, provider: Optional[BokehJS] = None) -> str:
    """Safe HTML showing ``plot``: sandboxed iframe for HTML, ``<img>`` for images and SVG."""
    caption = (
        f'<div style="font-size: 85%; color: #666;">{_html.escape(plot.name)} '
        f"({plot.size / 1024:.0f} KiB, {_html.escape(str(plot.path))})</div>"
    )
    kind = plot.kind
    if kind == "html":
        markup, missing = iframe_html(plot, provider)
        if missing:
            names = ", ".join(f"{b}-{v}" for b, v in missing)
            caption += (
                f'<div style="color: #a60;">BokehJS {_html.escape(names)} unavailable offline: needs internet.</div>'
            )
        return markup + caption
    data = Path(plot.path).read_bytes()
    if kind == "svg":
        # An SVG inside <img> runs no scripts and loads nothing: safe without sanitising.
        b64 = base64.b64encode(data).decode("ascii")
        return (
            f'<img alt="{_html.escape(plot.name)}" src="data:image/svg+xml;base64,{b64}" style="max-width: 100%;"/>'
            + caption
        )
    if kind in _IMAGE_MAGIC:
        if not data.startswith(_IMAGE_MAGIC[kind]):
            return f'<div style="color: #a00;">{_html.escape(plot.name)} is not a valid {kind.upper()} file.</div>'
        b64 = base64.b64encode(data).decode("ascii")
        return (
            f'<img alt="{_html.escape(plot.name)}" src="data:image/{kind};base64,{b64}" style="max-width: 100%;"/>'
            + caption
        )
    return f"<div>Pulled {_html.escape(plot.name)} to {_html.escape(str(plot.path))} (not shown inline).</div>"


def plot_label(plot: LocalPlot) -> str:
    """``hail-emr-lab plot: plots/NAME``: the plain-text form of a shown plot (where to find the file)."""
    folder = Path(plot.path).parents[plot.name.count("/")].name
    return f"hail-emr-lab plot: {folder}/{plot.name}"


def display_plot(plot: LocalPlot) -> None:
    """Show ``plot`` in the notebook (IPython display): see :func:`plot_html`. Images are
    published as images (they render anywhere a notebook is read), followed by their caption."""
    from IPython.display import display

    label = plot_label(plot)
    data = Path(plot.path).read_bytes()
    if plot.kind in ("png", "jpeg", "gif") and data.startswith(_IMAGE_MAGIC[plot.kind]):
        display({f"image/{plot.kind}": base64.b64encode(data).decode("ascii"), "text/plain": label}, raw=True)
        caption = (
            f'<div style="font-size: 85%; color: #666;">{_html.escape(plot.name)} '
            f"({plot.size / 1024:.0f} KiB, {_html.escape(str(plot.path))})</div>"
        )
        display({"text/html": caption, "text/plain": f"({plot.size / 1024:.0f} KiB, {plot.path})"}, raw=True)
        return
    display({"text/html": plot_html(plot), "text/plain": label}, raw=True)


__all__ = [
    "LocalPlot",
    "PlotError",
    "PlotManager",
    "RemotePlot",
    "UnsafePlotName",
    "check_name",
    "display_plot",
    "iframe_html",
    "plot_html",
    "plot_label",
    "read_index",
]
