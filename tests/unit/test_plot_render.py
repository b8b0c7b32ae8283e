"""The one plot renderer: the magic, the panel and the sidebar's viewer show a plot the same way.

Checked here on files and the local bokeh package (no cluster): the sandbox attribute, the
viewer's CSP, BokehJS inlined once per bundle (offline), the cell-output iframe of the magic.
"""

from __future__ import annotations

import base64
import gzip
import html
import re

import bokeh
import pytest
from bokeh.embed import file_html
from bokeh.layouts import row
from bokeh.plotting import figure
from bokeh.resources import CDN
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from hail_emr_lab.livy.models import Output
from hail_emr_lab.notebook.magics.render import render_output
from hail_emr_lab.plots.bokeh_offline import GZIP_TYPE
from hail_emr_lab.plots.render import PLOT_CSP, SANDBOX, plot_html, sandboxed_iframe, viewer_body


def _two_plots_html() -> str:
    """A bokeh page with two figures: the CDN bundle is named once, both need it."""
    a, b = figure(width=200, height=150), figure(width=200, height=150)
    a.line([1, 2], [2, 1])
    b.scatter([1, 2], [1, 2])
    return file_html(row(a, b), CDN, "two")


def _srcdoc(markup: str) -> str:
    (frame,) = re.findall(r"<iframe[^>]*>", markup)
    return html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))


def test_sandbox_is_scripts_only_and_the_csp_says_the_same():
    assert SANDBOX == "allow-scripts"
    assert "sandbox allow-scripts;" in PLOT_CSP and "allow-same-origin" not in PLOT_CSP
    assert "default-src 'none'" in PLOT_CSP and "connect-src" not in PLOT_CSP  # no fetch, no XHR, no CDN


def test_html_plot_is_an_iframe_with_bokehjs_inlined_once_gzipped(tmp_path):
    page = tmp_path / "two.html"
    page.write_text(_two_plots_html())
    markup = plot_html(page)
    (frame,) = re.findall(r"<iframe[^>]*>", markup)
    assert f'sandbox="{SANDBOX}"' in frame and "allow-same-origin" not in markup
    doc = _srcdoc(markup)
    assert "cdn.bokeh.org" not in doc
    bundles = re.findall(rf'<script type="{GZIP_TYPE}" data-bokehjs="([^"]+)">([^<]*)</script>', doc)
    assert [name for name, _ in bundles] == [f"bokeh-{bokeh.__version__}"]  # once, however many figures
    js = gzip.decompress(base64.b64decode(bundles[0][1]))
    local = bokeh.util.paths.bokehjs_path() / "js" / "bokeh.min.js"
    assert js == local.read_bytes()


def test_the_viewer_serves_the_same_document_the_iframe_holds(tmp_path):
    page = tmp_path / "two.html"
    page.write_text(_two_plots_html())
    assert viewer_body(page, "text/html; charset=utf-8").decode() == _srcdoc(plot_html(page))
    png = tmp_path / "p.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    assert viewer_body(png, "image/png") == png.read_bytes()


@pytest.mark.parametrize("title", ['a" onload="alert(1)', "<script>x</script>"])
def test_iframe_escapes_title_and_document(title):
    markup = sandboxed_iframe("<script>parent.x=1</script>", title, height=300)
    assert markup.count("<") == 2 and "height: 300px" in markup  # <iframe ...></iframe> only
    assert 'onload="' not in markup


def test_the_magic_shows_cluster_html_through_the_same_iframe():
    output = Output.from_json({"status": "ok", "execution_count": 1,
                               "data": {"text/html": "<b>hi</b><script>top.x=1</script>", "text/plain": ""}})
    InteractiveShell.instance()
    with capture_output() as captured:
        render_output(output)
    (shown,) = [o.data["text/html"] for o in captured.outputs if "text/html" in o.data]
    assert shown.startswith('<iframe class="hail-emr-lab-plot"') and f'sandbox="{SANDBOX}"' in shown
    assert "<script>" not in shown and _srcdoc(shown) == "<b>hi</b><script>top.x=1</script>"
