"""Local side of the plot pass-through: name safety, symlink tricks, the index, offline BokehJS,
and the safe HTML that display_plot shows. No cluster needed (files and the local bokeh)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import bokeh
import pytest
from bokeh.embed import file_html
from bokeh.plotting import figure
from bokeh.resources import CDN

from hail_emr_lab.plots.bokeh_offline import (
    DEFERRED_TYPE,
    GZIP_TYPE,
    BokehJS,
    cdn_bundles,
    compressed_bokehjs,
    inline_bokehjs,
)
from hail_emr_lab.plots.errors import PlotError, UnsafePlotName
from hail_emr_lab.plots.names import check_name
from hail_emr_lab.plots.render import display_plot, plot_html
from hail_emr_lab.plots.store import INDEX_NAME, LocalPlot, Writer, read_index, record, target

BAD_NAMES = [
    "../../.ssh/authorized_keys",
    "..",
    "a/../../b.html",
    "/etc/passwd",
    "C:evil.html",
    "a\\..\\b.html",
    "nul\x00.html",
    "bell\x07.html",
    "esc\x1b[31m.html",
    "rtl\u202egnp.html",
    ".hail-plots-index.json",
    ".bashrc",
    "a//b.html",
    "a/./b.html",
    " lead.html",
    "x" * 300 + ".html",
    "a/b/c/d/e.html",
    "semi;colon.html",
    'quote".html',
    "<script>.html",
    "",
    None,
    42,
]
GOOD_NAMES = ["hist.html", "gwas/manhattan-chr1.html", "qq plot (v2).png", "Ähre_1.svg", "a+b=c,d@e[1]~#.html"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:30] for n in BAD_NAMES])
def test_unsafe_names_refused(name):
    with pytest.raises(UnsafePlotName):
        check_name(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_ordinary_names_accepted(name, tmp_path):
    assert check_name(name) == name
    path = target(tmp_path, name)
    assert tmp_path.resolve() in path.parents


def test_symlinked_folder_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "sub").symlink_to(outside)
    with pytest.raises(UnsafePlotName, match="symlink"):
        target(plots, "sub/x.html")


def test_symlinked_file_is_replaced_not_followed(tmp_path):
    """A symlink at the target name (e.g. pointing to ~/.bashrc) is replaced; its target is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "x.html").symlink_to(victim)
    data = b"<html>plot</html>"
    writer = Writer(target(plots, "x.html"))
    writer.write(data)
    writer.commit(hashlib.sha256(data).hexdigest(), "test")
    assert victim.read_text() == "precious"
    assert not (plots / "x.html").is_symlink()
    assert (plots / "x.html").read_bytes() == data


def test_sha_mismatch_leaves_nothing(tmp_path):
    writer = Writer(target(tmp_path, "y.png"))
    writer.write(b"abc")
    with pytest.raises(PlotError, match="sha256"):
        writer.commit("0" * 64, "test")
    assert list(tmp_path.iterdir()) == []


def _plot(tmp_path: Path, name: str, data: bytes) -> LocalPlot:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return LocalPlot(
        name=name,
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mtime=1.0,
        remote_path="/plots/" + name,
        pulled_at="2024-01-01T00:00:00+00:00",
    )


def test_index_roundtrip_and_tampering(tmp_path):
    plot = _plot(tmp_path, "a.html", b"<p>a</p>")
    record(tmp_path, plot)
    record(tmp_path, _plot(tmp_path, "sub/b.png", b"\x89PNG\r\n\x1a\nxx"))
    record(tmp_path, plot)  # re-pull replaces, never duplicates
    entries = read_index(tmp_path)
    assert sorted(e["name"] for e in entries) == ["a.html", "sub/b.png"]
    a = next(e for e in entries if e["name"] == "a.html")
    assert a["local_path"] == str((tmp_path / "a.html").resolve())
    assert a["sha256"] == plot.sha256 and a["size"] == 8 and a["remote_path"] == "/plots/a.html"
    assert a["kind"] == "html" and a["pulled_at"]
    # A tampered index cannot make the sidebar serve files outside plots/.
    raw = json.loads((tmp_path / INDEX_NAME).read_text())
    raw["plots"].append(dict(raw["plots"][0], name="../../etc/passwd", local_path="/etc/passwd"))
    raw["plots"].append(dict(raw["plots"][0], name="gone.html"))
    (tmp_path / INDEX_NAME).write_text(json.dumps(raw))
    assert sorted(e["name"] for e in read_index(tmp_path)) == ["a.html", "sub/b.png"]
    (tmp_path / INDEX_NAME).write_text("{not json")
    assert read_index(tmp_path) == []


def _bokeh_html() -> str:
    p = figure(width=300, height=200)
    p.line([1, 2, 3], [3, 1, 2])
    return file_html(p, CDN, "t")


def test_cdn_tags_inlined_from_local_package(tmp_path):
    html = _bokeh_html()
    assert cdn_bundles(html) == [("bokeh", bokeh.__version__)]
    out, missing = inline_bokehjs(html, BokehJS(cache_dir=tmp_path))
    assert missing == []
    assert "cdn.bokeh.org" not in out
    assert f'data-bokehjs="bokeh-{bokeh.__version__}"' in out
    assert len(out) > 1_000_000  # the whole of bokeh.min.js is in there


def test_unknown_version_left_on_cdn_and_cache_used(tmp_path):
    html = _bokeh_html().replace(bokeh.__version__, "2.4.3")
    provider = BokehJS(cache_dir=tmp_path)
    out, missing = inline_bokehjs(html, provider)
    assert missing == [("bokeh", "2.4.3")] and "cdn.bokeh.org/bokeh/release/bokeh-2.4.3.min.js" in out
    fetched = []

    def fetch(bundle, version):
        fetched.append((bundle, version))
        return b"console.log('bokehjs " + version.encode() + b"')"

    provider = BokehJS(cache_dir=tmp_path, fetch=fetch)
    assert provider.ensure(html) == []
    assert provider.ensure(html) == []  # fetched once, then cached
    assert fetched == [("bokeh", "2.4.3")]
    out, missing = inline_bokehjs(html, BokehJS(cache_dir=tmp_path))  # no fetcher: from the cache
    assert missing == [] and "bokehjs 2.4.3" in out
    # Versions and bundle names become cache paths: junk never does.
    assert not BokehJS(cache_dir=tmp_path, fetch=fetch).available("bokeh", "../../x")
    assert cdn_bundles('<script src="https://cdn.bokeh.org/bokeh/release/bokeh-../../x.min.js"></script>') == []
    assert BokehJS(cache_dir=tmp_path, fetch=fetch).get("bokeh", "../../x") is None
    assert not (tmp_path.parent / "x.min.js").exists()


def test_script_end_in_js_uses_data_url(tmp_path):
    (tmp_path / "9.9.9").mkdir()
    (tmp_path / "9.9.9" / "bokeh.min.js").write_bytes(b"var s = '</script><script>alert(1)</script>';")
    html = '<head><script src="https://cdn.bokeh.org/bokeh/release/bokeh-9.9.9.min.js"></script></head>'
    out, missing = inline_bokehjs(html, BokehJS(cache_dir=tmp_path))
    assert missing == []
    m = re.search(r'src="data:text/javascript;base64,([^"]+)"', out)
    assert m and b"alert(1)" in base64.b64decode(m.group(1))


def test_compressed_bundles_for_notebooks(tmp_path):
    """Plots saved in notebooks carry BokehJS gzipped: the same bytes, a third of the size; the
    page's inline scripts wait for it, its JSON data is left alone."""
    import gzip

    html = _bokeh_html()
    inlined, _ = inline_bokehjs(html, BokehJS(cache_dir=tmp_path))
    out, missing = compressed_bokehjs(html, BokehJS(cache_dir=tmp_path))
    assert missing == [] and "cdn.bokeh.org" not in out
    assert len(out) < len(inlined) / 2, (len(out), len(inlined))
    m = re.search(rf'<script type="{GZIP_TYPE}" data-bokehjs="bokeh-{re.escape(bokeh.__version__)}">([^<]+)</script>', out)
    assert m is not None
    bundle = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js"
    assert gzip.decompress(base64.b64decode(m.group(1))) == bundle.read_bytes()
    tags = re.findall(r"<script\b[^>]*>", out)
    runs_at_once = [t for t in tags if "type=" not in t or 'type="text/javascript"' in t]
    assert runs_at_once == ["<script>"], tags  # only the loader; bokeh's own scripts wait for it
    assert any(f'type="{DEFERRED_TYPE}"' in t for t in tags)
    assert '<script type="application/json"' in out
    assert "Bokeh.set_log_level" in out and "DecompressionStream" in out
    # A bundle not available offline: the page falls back to the plain form (CDN tag kept).
    old = html.replace(bokeh.__version__, "2.4.3")
    out, missing = compressed_bokehjs(old, BokehJS(cache_dir=tmp_path))
    assert missing == [("bokeh", "2.4.3")] and GZIP_TYPE not in out and "bokeh-2.4.3.min.js" in out


def test_html_plot_only_in_sandboxed_iframe(tmp_path):
    evil = b"<script>parent.document.title='pwned'</script><p>\"quotes\" & <b>tags</b></p>"
    markup = plot_html(_plot(tmp_path, "evil.html", evil).path)
    frames = re.findall(r"<iframe[^>]*>", markup)
    assert len(frames) == 1
    assert 'sandbox="allow-scripts"' in frames[0] and "allow-same-origin" not in markup
    # The plot's markup exists only as an escaped srcdoc attribute, never as live HTML here.
    assert "<script>" not in markup.replace(frames[0], "")
    assert "&lt;script&gt;parent.document.title=&#x27;pwned&#x27;&lt;/script&gt;" in frames[0]


def test_svg_shown_as_image_and_png_checked(tmp_path):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    markup = plot_html(_plot(tmp_path, "s.svg", svg).path)
    assert markup.startswith('<img alt="s.svg" src="data:image/svg+xml;base64,')
    assert "alert" not in markup  # only inside the base64 image, which runs no scripts
    fake = plot_html(_plot(tmp_path, "f.png", b"<html>not a png</html>").path)
    assert "not a valid PNG" in fake


def test_remote_code_is_python37_stdlib_only():
    """The cluster may run Python 3.7 with nothing extra: check syntax and top-level imports."""
    import ast

    from hail_emr_lab.remote import source

    tree = ast.parse(source("plots.py"), feature_version=(3, 7))
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= {"base64", "hashlib", "json", "os", "re", "stat", "sys", "tempfile", "time", "zlib"}
    guard = source("hail_init.py")
    tree = ast.parse(guard, feature_version=(3, 7))
    assert {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names} <= {"inspect", "sys"}
    assert "from __future__" not in guard  # exec'd after the other parts: must not need to come first


def test_display_plot_publishes_safe_outputs(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    with capture_output() as captured:
        display_plot(_plot(tmp_path, "p.png", png))
        display_plot(_plot(tmp_path, "h.html", _bokeh_html().encode()))
    first, caption, second = captured.outputs
    data = first.data["image/png"]
    assert (base64.b64decode(data) if isinstance(data, str) else data) == png
    # Each plot says in plain text where its file is; images get a visible caption too.
    assert first.data["text/plain"] == f"hail-emr-lab plot: {tmp_path.name}/p.png"
    assert "p.png" in caption.data["text/html"] and str(tmp_path / "p.png") in caption.data["text/html"]
    assert second.data["text/plain"] == f"hail-emr-lab plot: {tmp_path.name}/h.html"
    html = second.data["text/html"]
    assert html.startswith('<iframe class="hail-emr-lab-plot"') and 'sandbox="allow-scripts"' in html
    assert "cdn.bokeh.org" not in html
