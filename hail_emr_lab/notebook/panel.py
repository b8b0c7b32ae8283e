"""``%hail panel``: the sidebar's sections as an ipywidgets panel inside a notebook.

For Notebook 7 users and wherever the labextension is absent. It reads the same
``hail_emr_lab.dashboard`` modules as the server extension, and the kernel's connection
(``hail_emr_lab.notebook.context.current()``) for the endpoint. Every value shown is HTML-escaped;
HTML plots are shown only in a ``sandbox="allow-scripts"`` iframe.
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import load_config
from ..dashboard import backup, listings, plots, progress, status
from ..dashboard.times import local_time
from ..emr.serverless import KEPT_OUT_OF_NOTEBOOK, grants_access
from ..endpoint import make_client
from ..errors import HailEmrLabError
from ..plots.render import image_bytes, plot_html
from .context import current


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _error(text: Any) -> str:
    return f'<div style="color: var(--jp-error-color1, #c00);">{_e(text)}</div>'


def _muted(text: Any) -> str:
    return f'<div style="color: var(--jp-ui-font-color2, #666); font-size: 90%;">{_e(text)}</div>'


def _bar(fraction: float) -> str:
    pct = max(0, min(100, round(fraction * 100)))
    return (
        '<div style="background:#ddd; height:12px; border-radius:3px; width:100%; position:relative;">'
        f'<div style="background:#1976d2; height:100%; width:{pct}%; border-radius:3px;"></div>'
        f'<span style="position:absolute; top:-2px; left:4px; font-size:10px;">{pct}%</span></div>'
    )


def cluster_html(data: dict[str, Any]) -> str:
    """The Cluster section as HTML."""
    reach = "reachable" if data.get("reachable") else "not reachable"
    color = "#2e7d32" if data.get("reachable") else "#c62828"
    out = (
        f"<div>Endpoint <code>{_e(data.get('livy_url') or 'not configured')}</code> "
        f'<b style="color:{color}">{reach}</b></div>'
    )
    app = data.get("serverless")
    if app and app.get("error"):
        out += _error(app["error"])
    elif app:
        out += (f"<div>EMR Serverless application <code>{_e(app['application_id'])}</code> {_e(app.get('name'))} "
                f"<code>{_e(app.get('state'))}</code> {_e(app.get('release'))}</div>")
    if data.get("error"):
        out += _error(data["error"])
    return out + _muted(f"Connect: {data.get('hint', '')}")


def sessions_html(data: dict[str, Any]) -> str:
    """The Sessions section as HTML (delete buttons are separate widgets)."""
    if data.get("error"):
        return _error(data["error"])
    if not data.get("sessions"):
        return _muted("No sessions on this endpoint.")
    rows = []
    for s in data["sessions"]:
        url = s.get("spark_ui_url")
        link = ""
        if url and grants_access(url):  # the panel lives in the notebook's (savable) widget state
            link = " " + _muted(KEPT_OUT_OF_NOTEBOOK)
        elif url:
            link = f' <a href="{_e(url)}" target="_blank" rel="noopener noreferrer">Spark UI</a>'
        own = " <b>(yours)</b>" if s.get("own") else ""
        note = _muted(s["spark_ui_note"]) if s.get("spark_ui_note") else ""  # EMR Serverless: where the UI is
        rows.append(
            f"<li>#{_e(s['id'])} {_e(s.get('name') or '(unnamed)')} <code>{_e(s['state'])}</code>{own}{link}{note}</li>"
        )
    return "<ul style='margin:0; padding-left:18px;'>" + "".join(rows) + "</ul>"


def running_html(data: dict[str, Any]) -> str:
    """The Running section as HTML: a bar per running statement, its Spark jobs and stages."""
    if data.get("error"):
        return _error(data["error"])
    out = []
    for session in data.get("sessions", []):
        if session.get("error"):
            out.append(_error(f"#{session['session_id']}: {session['error']}"))
        for st in session.get("statements", []):
            jobs = "".join(
                f"<li>Job {_e(j.get('jobId'))} {_e(j.get('status'))}: {_e(j.get('numCompletedTasks', 0))}/"
                f"{_e(j.get('numTasks', 0))} tasks<ul>"
                + "".join(
                    f"<li>Stage {_e(s.get('stageId'))} {_e(s.get('status'))}: {_e(s.get('numCompleteTasks', 0))}/"
                    f"{_e(s.get('numTasks', 0))}</li>"
                    for s in j.get("stages", [])
                )
                + "</ul></li>"
                for j in st.get("jobs", [])
            )
            out.append(
                f"<div>Session #{_e(session['session_id'])}, statement {_e(st['id'])} <code>{_e(st['state'])}</code>"
                f"<br><code>{_e(st.get('code'))}</code>{_bar(st.get('progress', 0.0))}"
                + (_muted(session["spark_error"]) if session.get("spark_error") else "")
                + (f"<ul style='margin:0; padding-left:18px;'>{jobs}</ul>" if jobs else "")
                + "</div>"
            )
    return "".join(out) or _muted("Nothing running.")


def backup_html(data: dict[str, Any]) -> str:
    """The Backup section as HTML."""
    out = _error(data["error"]) if data.get("error") else ""
    s = data.get("status")
    if s:
        out += f"<div>Last backup: {_e(local_time(s.get('last_backup')))}</div>"
        out += f"<div>Pending files: {_e(s.get('pending_count', 0))}</div>"
        if s.get("pending"):
            out += _muted(", ".join(s["pending"][:8]))
        if data.get("skipped_note"):
            out += _muted(data["skipped_note"])
        out += f"<div>Conflicts: {_e(len(s.get('conflicts') or []))}</div>"
        for err in (s.get("errors") or [])[:5]:
            out += _error(err)
    run = data.get("run") or {}
    if run.get("action"):
        out += _muted(f"{run['action']} running…" if run.get("running") else run.get("message"))
    return out


def jobs_html(data: dict[str, Any]) -> str:
    """The Jobs section as HTML."""
    if not data.get("available") or data.get("error"):
        return _muted(data.get("error") or "jobs are not available")
    if not data.get("jobs"):
        return _muted("No jobs submitted from here yet.")
    rows = "".join(
        f"<li>{_e(j.get('name') or j.get('id'))} <code>{_e(j.get('backend'))}</code> "
        f"{_e(j.get('state') or j.get('last_state'))}</li>"
        for j in data["jobs"]
    )
    return f"<ul style='margin:0; padding-left:18px;'>{rows}</ul>"


class HailPanel:
    """The panel: one HTML widget per section, buttons, and an optional auto-refresh thread."""

    def __init__(self, notebook_dir: Optional[str] = None, interval: float = 3.0, auto_refresh: bool = True):
        import ipywidgets as w

        self.w = w
        self.notebook_dir = Path(notebook_dir or os.getcwd())
        self.interval = interval
        self.sections = {name: w.HTML() for name in ("cluster", "sessions", "running", "plots", "backup", "jobs")}
        self.message = w.HTML()
        self.session_buttons = w.HBox()
        self.plot_buttons = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.plot_output = w.Output()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.backup_button = w.Button(description="Back up now", icon="cloud-upload")
        self.restore_button = w.Button(description="Restore", icon="cloud-download")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.backup_button.on_click(lambda _: self.sync("backup"))
        self.restore_button.on_click(lambda _: self.sync("restore"))

        def title(text: str) -> Any:
            return w.HTML(f"<h4 style='margin:8px 0 2px'>{_e(text)}</h4>")

        self.widget = w.VBox(
            [
                w.HBox([w.HTML("<b>Hail on EMR</b>"), self.refresh_button]),
                self.message,
                title("Cluster"),
                self.sections["cluster"],
                title("Sessions"),
                self.sections["sessions"],
                self.session_buttons,
                title("Running"),
                self.sections["running"],
                title("Plots"),
                self.sections["plots"],
                self.plot_buttons,
                self.plot_output,
                title("Backup"),
                self.sections["backup"],
                w.HBox([self.backup_button, self.restore_button]),
                title("Jobs"),
                self.sections["jobs"],
            ]
        )
        # Buttons are kept by what they stand for and reused: a refresh makes no new widgets.
        self._plot_button_of: dict[str, Any] = {}
        self._delete_button_of: dict[int, Any] = {}
        # The front end counts the views it displays (ipywidgets' _view_count, kept up to date by
        # the widget manager): with none, the refresh thread idles instead of working for nobody.
        self.widget._view_count = 0
        self.refreshes = 0
        self._stop = threading.Event()
        self._busy = threading.RLock()  # one refresh at a time, and none while closing
        self._thread: Optional[threading.Thread] = None
        if auto_refresh:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="hail-panel-refresh")
            self._thread.start()

    # ------------------------------------------------------------------ data

    def _endpoint(self) -> tuple[Any, Optional[str]]:
        ctx = current()
        return ctx.config, ctx.endpoint or ctx.config.get("livy_url")

    def _guard(self, section: str, func: Callable[[], str]) -> None:
        try:
            self.sections[section].value = func()
        except HailEmrLabError as exc:
            self.sections[section].value = _error(exc)

    def displayed(self) -> bool:
        """True while some front end displays the panel.

        Two signals, each trusted only when it is known: the views the front ends report
        (ipywidgets' ``_view_count``: decremented when an output is cleared, but not when the
        notebook is closed), and the browser connections the Jupyter server counts for this
        kernel (none once its notebook is closed or its browser tab gone).
        """
        count = self.widget._view_count
        if count is not None and count <= 0:
            return False
        connections = kernel_connections()
        return connections is None or connections > 0

    def refresh(self) -> None:
        """Fetch every section again."""
        with self._busy:
            if self._closed:
                return
            self._refresh()

    def _refresh(self) -> None:
        self.refreshes += 1
        cfg, url = self._endpoint()
        self._guard("cluster", lambda: cluster_html(status.cluster_status(cfg, url)))
        client = None
        try:
            client = make_client(cfg, url, quick=True) if url else None
        except HailEmrLabError as exc:
            self.sections["sessions"].value = _error(exc)
        if client is None:
            hint = status.no_endpoint_hint(cfg)
            self.sections["sessions"].value = self.sections["running"].value = _muted(hint)
        else:
            try:
                sessions = status.list_sessions(cfg, client)
                self.sections["sessions"].value = sessions_html(sessions)
                self._session_buttons(sessions)
                self._guard("running", lambda: running_html(progress.running_progress(cfg, client)))
            finally:
                client.close()
        self._guard("plots", self._plots)
        self._guard("backup", lambda: backup_html(self._backup_state()))
        self._guard("jobs", lambda: jobs_html(listings.jobs()))

    def _backup_state(self) -> dict[str, Any]:
        data = backup.backup_status(load_config())
        busy = bool(data.get("run", {}).get("running")) or not data.get("configured")
        self.backup_button.disabled = self.restore_button.disabled = busy
        return data

    def _reuse(self, kept: dict[Any, Any], keys: list[Any], make: Callable[[Any], Any]) -> list[Any]:
        """The buttons for ``keys``: existing ones reused, new ones made, the others closed."""
        for key in [k for k in kept if k not in keys]:
            _close_tree(kept.pop(key))
        for key in keys:
            if key not in kept:
                kept[key] = make(key)
        return [kept[key] for key in keys]

    def _plots(self) -> str:
        data = plots.list_plots(self.notebook_dir, "")
        names = {plot["file"]: plot["name"] for plot in data["plots"][:40]}

        def make(file: str) -> Any:
            button = self.w.Button(description=names[file][:30], tooltip=names[file], icon="bar-chart")
            button.on_click(lambda _: self.show_plot(file))
            return button

        buttons = self._reuse(self._plot_button_of, list(names), make)
        if tuple(buttons) != tuple(self.plot_buttons.children):
            self.plot_buttons.children = buttons
        return _muted(f"{data['plots_dir']}/ — {len(data['plots'])} plot(s)") + (
            _muted(data["message"]) if data.get("message") else ""
        )

    def _session_buttons(self, sessions: dict[str, Any]) -> None:
        ids = [s["id"] for s in sessions.get("sessions", []) if s.get("own") and s.get("alive")]

        def make(sid: int) -> Any:
            button = self.w.Button(description=f"Delete #{sid}", button_style="danger", icon="trash")
            button.on_click(lambda _: self.delete_session(sid))
            return button

        buttons = self._reuse(self._delete_button_of, ids, make)
        if tuple(buttons) != tuple(self.session_buttons.children):
            self.session_buttons.children = buttons

    # ------------------------------------------------------------------ actions

    def plot_view(self, file: str) -> Any:
        """The display object for one plot: images as images, the rest as the magic shows it
        (:func:`hail_emr_lab.plots.render.plot_html`: HTML sandboxed, SVG inside <img>)."""
        from IPython.display import HTML, Image

        try:
            path, _ctype = plots.plot_file(self.notebook_dir, "", file)
        except (HailEmrLabError, FileNotFoundError) as exc:
            return HTML(_error(exc))
        data = image_bytes(path)
        return Image(data=data) if data is not None else HTML(plot_html(path, file))

    def show_plot(self, file: str) -> None:
        """Show one plot below the gallery."""
        from IPython.display import display

        self.plot_output.clear_output()
        with self.plot_output:
            display(self.plot_view(file))

    def delete_session(self, session_id: int) -> None:
        """Delete one of the user's own sessions."""
        cfg, url = self._endpoint()
        try:
            status.delete_own_session(session_id, cfg, make_client(cfg, url, quick=True))
            self.message.value = _muted(f"session {session_id} deleted")
        except HailEmrLabError as exc:
            self.message.value = _error(exc)
        self.refresh()

    def sync(self, action: str) -> dict[str, Any]:
        """Start a backup or restore in the background."""
        try:
            result = backup.start(action, load_config())
            self.message.value = _muted(result.get("message") or f"{action} started")
        except HailEmrLabError as exc:
            self.message.value = _error(exc)
            result = {"started": False, "message": str(exc)}
        self._guard("backup", lambda: backup_html(self._backup_state()))
        return result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.displayed():
                continue  # nobody looks: no Livy, Spark or S3 calls, no messages to buffer
            try:
                self.refresh()
            except Exception as exc:  # keep the panel alive; show what went wrong
                self.message.value = _error(f"refresh failed: {type(exc).__name__}: {exc}")

    _closed = False

    def close(self) -> None:
        """Stop refreshing and close every widget of the panel."""
        self._stop.set()
        with self._busy:
            if self._closed:
                return
            self._closed = True
            self._close_widgets()

    def _close_widgets(self) -> None:
        for kept in (self._plot_button_of, self._delete_button_of):
            for button in kept.values():
                _close_tree(button)
            kept.clear()
        _close_tree(self.widget)


def _close_tree(widget: Any) -> None:
    """Close ``widget`` and everything it contains (its layout and style widgets too)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    for part in ("layout", "style"):
        sub = getattr(widget, part, None)
        if sub is not None and hasattr(sub, "close"):
            sub.close()
    widget.close()


_SHOWN: Optional[HailPanel] = None
#: The Jupyter server that answered for this kernel last time: (url, token).
_SERVER: dict[str, Any] = {}


def kernel_connections() -> Optional[int]:
    """How many front ends (browser websockets) the Jupyter server counts for this kernel, from
    its REST API (``GET <base>/api/kernels/<id>`` -> ``connections``, jupyter_server); None when
    this kernel was not started by a Jupyter server found in the runtime directory."""
    import glob
    import json
    import re
    import sys

    import requests

    # Only inside a running ipykernel: importing ipykernel elsewhere would swap the comm manager
    # of the widgets already made, and IPKernelApp.instance() would make a kernel app.
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None or not kernelapp.IPKernelApp.initialized():
        return None
    from jupyter_core.paths import jupyter_runtime_dir

    IPKernelApp = kernelapp.IPKernelApp
    match = re.fullmatch(r"kernel-(.+)\.json", os.path.basename(IPKernelApp.instance().abs_connection_file))
    if not match:
        return None
    servers = [_SERVER["info"]] if _SERVER.get("info") else []
    for path in sorted(glob.glob(os.path.join(jupyter_runtime_dir(), "jpserver-*.json"))):
        try:
            with open(path) as f:
                servers.append(json.load(f))
        except (OSError, ValueError):
            continue
    for info in servers:
        url = str(info.get("url") or "").rstrip("/")
        if not url:
            continue
        try:
            answer = requests.get(f"{url}/api/kernels/{match.group(1)}", timeout=2,
                                  headers={"Authorization": f"token {info.get('token', '')}"})
        except requests.RequestException:
            continue
        if answer.status_code == 200:
            _SERVER["info"] = info
            return int(answer.json().get("connections", 0))
    _SERVER.pop("info", None)
    return None


def show_panel(interval: float = 3.0, auto_refresh: bool = True) -> HailPanel:
    """Display the Hail panel in the notebook (``%hail panel``) and return it.

    One panel per kernel: showing it again closes the previous one (its thread and widgets).
    """
    from IPython.display import display

    global _SHOWN
    if _SHOWN is not None:
        _SHOWN.close()
    panel = _SHOWN = HailPanel(interval=interval, auto_refresh=auto_refresh)
    panel.refresh()
    display(panel.widget)
    return panel
