"""How a plot is shown, the one way for the magic, the ``%hail panel`` and the sidebar's viewer.

Plots are made on the cluster, so their HTML is untrusted: it is shown only inside an iframe
with ``sandbox="allow-scripts"`` (never ``allow-same-origin``: its scripts run in an opaque
origin that cannot read JupyterLab, its cookies or its token), and the viewer serves it with
:data:`PLOT_CSP`, the same sandbox as a Content-Security-Policy (W3C CSP Level 2 ``sandbox``
directive). Bokeh's CDN scripts are replaced by the same BokehJS inlined once per bundle,
gzipped (:func:`hail_emr_lab.plots.bokeh_offline.compressed_bokehjs`), so plots render
offline and a notebook stays small. Images are shown as images; SVG inside ``<img>``, where
it runs no scripts and loads nothing.
"""

from __future__ import annotations

import base64
import html as _html
import re
from pathlib import Path
from typing import Optional

from .bokeh_offline import BokehJS, compressed_bokehjs
from .names import kind_of
from .store import LocalPlot

#: The only sandbox a plot's iframe ever gets (HTML Living Standard, iframe ``sandbox``).
SANDBOX = "allow-scripts"
#: Served with every plot the viewer sends: scripts may run, in an opaque origin, and load nothing.
PLOT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)
#: Height in pixels of an iframe whose plot does not say its own.
DEFAULT_HEIGHT = 600

_SIZE_RE = re.compile(r'"(?:height|frame_height)"\s*:\s*(\d{2,4})')
_IMAGE_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
}


def plot_document(text: str, provider: Optional[BokehJS] = None) -> tuple[str, list[tuple[str, str]]]:
    """The HTML document of a plot, BokehJS inlined (gzipped, once per bundle); also the
    (bundle, version) pairs left on the CDN because no copy was found."""
    return compressed_bokehjs(text, provider)


def plot_height(document: str) -> int:
    """Pixels an iframe needs for ``document``: bokeh's largest declared height (<= 3000) + 40."""
    heights = [int(h) for h in _SIZE_RE.findall(document[:2_000_000])]
    return max([h for h in heights if h <= 3000] or [DEFAULT_HEIGHT]) + 40


def sandboxed_iframe(document: str, title: str, height: Optional[int] = None) -> str:
    """``document`` in a ``sandbox="allow-scripts"`` iframe (as an escaped ``srcdoc``), ``height``
    in pixels (default: :func:`plot_height`)."""
    return (
        f'<iframe class="hail-emr-lab-plot" title="{_html.escape(title, quote=True)}" sandbox="{SANDBOX}" '
        f'referrerpolicy="no-referrer" style="width: 100%; height: {height or plot_height(document)}px; '
        f'border: 0;" srcdoc="{_html.escape(document, quote=True)}"></iframe>'
    )


def _caption(name: str, path: Path, size: int) -> str:
    return (
        f'<div style="font-size: 85%; color: #666;">{_html.escape(name)} '
        f"({size / 1024:.0f} KiB, {_html.escape(str(path))})</div>"
    )


def plot_html(path: Path, name: Optional[str] = None, provider: Optional[BokehJS] = None) -> str:
    """Safe HTML showing the plot file ``path`` (``name`` defaults to the file name) with a
    caption: HTML in :func:`sandboxed_iframe`, images and SVG as ``<img>``; an image whose bytes
    are not of its type is refused with a message."""
    path = Path(path)
    name = name or path.name
    data = path.read_bytes()
    caption = _caption(name, path, len(data))
    kind = kind_of(path.name)
    if kind == "html":
        document, missing = plot_document(data.decode("utf-8", errors="replace"), provider)
        if missing:
            names = ", ".join(f"{b}-{v}" for b, v in missing)
            caption += (
                f'<div style="color: #a60;">BokehJS {_html.escape(names)} unavailable offline: needs internet.</div>'
            )
        return sandboxed_iframe(document, name) + caption
    if kind == "svg" or kind in _IMAGE_MAGIC:
        if kind != "svg" and not data.startswith(_IMAGE_MAGIC[kind]):
            return f'<div style="color: #a00;">{_html.escape(name)} is not a valid {kind.upper()} file.</div>'
        mime = "image/svg+xml" if kind == "svg" else f"image/{kind}"
        b64 = base64.b64encode(data).decode("ascii")
        return f'<img alt="{_html.escape(name)}" src="data:{mime};base64,{b64}" style="max-width: 100%;"/>' + caption
    return f"<div>Pulled {_html.escape(name)} to {_html.escape(str(path))} (not shown inline).</div>"


def image_bytes(path: Path) -> Optional[bytes]:
    """The bytes of a PNG, JPEG or GIF plot whose content matches its type; None otherwise."""
    kind = kind_of(Path(path).name)
    if kind not in _IMAGE_MAGIC:
        return None
    data = Path(path).read_bytes()
    return data if data.startswith(_IMAGE_MAGIC[kind]) else None


def viewer_body(path: Path, content_type: str) -> bytes:
    """What the sidebar's viewer serves for the plot file ``path``: HTML as :func:`plot_document`
    (served under :data:`PLOT_CSP`), other files as they are."""
    data = Path(path).read_bytes()
    if not content_type.startswith("text/html"):
        return data
    return plot_document(data.decode("utf-8", errors="replace"))[0].encode("utf-8")


def plot_label(plot: LocalPlot) -> str:
    """``hail-emr-lab plot: plots/NAME``: the plain-text form of a shown plot (where to find the file)."""
    folder = Path(plot.path).parents[plot.name.count("/")].name
    return f"hail-emr-lab plot: {folder}/{plot.name}"


def display_plot(plot: LocalPlot) -> None:
    """Show ``plot`` in the notebook (IPython display): images are published as images (they
    render anywhere a notebook is read) followed by their caption; the rest as :func:`plot_html`."""
    from IPython.display import display

    label = plot_label(plot)
    data = image_bytes(plot.path)
    if data is not None:
        display({f"image/{plot.kind}": base64.b64encode(data).decode("ascii"), "text/plain": label}, raw=True)
        caption = _caption(plot.name, plot.path, plot.size)
        display({"text/html": caption, "text/plain": f"({plot.size / 1024:.0f} KiB, {plot.path})"}, raw=True)
        return
    display({"text/html": plot_html(plot.path, plot.name), "text/plain": label}, raw=True)
