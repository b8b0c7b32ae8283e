"""Plot pass-through end to end: real Hail plots made in the embedded Livy server, pulled over
the session (and over HTTP), then shown in headless Chromium with the network blocked.

One Livy session (one Spark JVM) for the whole module; tests run in file order and build on
each other's plots where that saves Spark work.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import bokeh
import pytest
from support.net import free_port, wait_http

from hail_emr_lab.livy import LivyClient, LivySession
from hail_emr_lab.plots.bokeh_offline import BokehJS
from hail_emr_lab.plots.errors import PlotError, UnsafePlotName
from hail_emr_lab.plots.helpers import RemoteHelpers
from hail_emr_lab.plots.manager import PlotManager
from hail_emr_lab.plots.render import plot_html
from hail_emr_lab.plots.store import LocalPlot, read_index

pytestmark = pytest.mark.slow

HAIL_CELL = """
import hail as hl
hl.init(sc, quiet=True, idempotent=True)
ht = hl.utils.range_table(3000, n_partitions=4)
ht = ht.annotate(x=hl.rand_norm(0, 1, seed=1), y=hl.rand_norm(0, 1, seed=2), p=hl.rand_unif(1e-12, 1, seed=3))
ht = ht.annotate(locus=hl.locus(hl.str(ht.idx % 22 + 1), ht.idx * 1000 + 1))
ht = ht.cache()
save_plot(hl.plot.histogram(ht.x, range=(-4, 4), bins=40), 'histogram')
save_plot(hl.plot.cumulative_histogram(ht.x, range=(-4, 4), bins=40), 'cumulative_histogram')
save_plot(hl.plot.histogram2d(ht.x, ht.y, bins=20), 'histogram2d')
save_plot(hl.plot.scatter(ht.x, ht.y), 'scatter')
save_plot(hl.plot.qq(ht.p), 'qq')
save_plot(hl.plot.manhattan(ht.p, locus=ht.locus), 'gwas/manhattan')
"""
HAIL_PLOTS = [
    "histogram.html",
    "cumulative_histogram.html",
    "histogram2d.html",
    "scatter.html",
    "qq.html",
    "gwas/manhattan.html",
]


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def session(livy_server):
    with LivyClient(livy_server.url) as client:
        s = LivySession.create(client, name="plots-tests", heartbeat_timeout=120)
        try:
            s.wait_ready(timeout=300)
            yield s
        finally:
            s.delete()


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook") / "plots"


@pytest.fixture(scope="module")
def warnings_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def mgr(session, local_dir, warnings_seen, tmp_path_factory):
    cache = tmp_path_factory.mktemp("bokehjs")
    # "/plots" is the EMR default; the embedded server's HAIL_EMR_LAB_PLOTS_DIR must win.
    m = PlotManager(session, local_dir, "/plots", warn=warnings_seen.append, bokehjs=BokehJS(cache_dir=cache))
    session.run(m.setup_code(), check=True)
    return m


def remote_dir(livy_server) -> Path:
    return Path(livy_server.plots_dir)


def run_cell(session, mgr, code: str):
    """What the %%hail magic does: submit the cell, queue the scan behind it, wait, pull."""
    cell = session.submit(code)
    mgr.queue_scan()
    done = session.wait(cell)
    assert done.output is not None and done.output.ok, done.output and done.output.traceback
    return mgr.after_cell()


def test_plots_dir_defined(session, mgr, livy_server):
    out = session.run("print(PLOTS_DIR)")
    assert out.text.strip() == str(livy_server.plots_dir)
    assert mgr.remote_bokeh_version() == bokeh.__version__
    assert mgr.after_cell() == []  # nothing new yet


@pytest.fixture(scope="module")
def hail_plots(session, mgr):
    """The six Hail plots, made by one cell and auto-pulled (once per module)."""
    return run_cell(session, mgr, HAIL_CELL)


def test_hail_plots_pulled_byte_identical(session, mgr, livy_server, local_dir, hail_plots):
    pulled = hail_plots
    assert sorted(p.name for p in pulled) == sorted(HAIL_PLOTS)
    for plot in pulled:
        remote = remote_dir(livy_server) / plot.name
        assert plot.path == (local_dir / plot.name).resolve()
        assert plot.path.read_bytes() == remote.read_bytes()
        assert plot.sha256 == sha(remote) and plot.size == remote.stat().st_size
        assert "cdn.bokeh.org" in plot.path.read_text()  # the copy is the file as the cluster wrote it
    index = {e["name"]: e for e in read_index(local_dir)}
    assert set(index) == set(HAIL_PLOTS)
    assert index["qq.html"]["remote_path"] == "/plots/qq.html"
    assert index["qq.html"]["sha256"] == sha(remote_dir(livy_server) / "qq.html")
    listed = {p.name: p for p in mgr.list_remote()}
    assert set(HAIL_PLOTS) <= set(listed)
    assert listed["scatter.html"].size == (local_dir / "scatter.html").stat().st_size


def test_auto_pull_two_new_and_ignores_unchanged(session, mgr, livy_server, local_dir, hail_plots):
    cell = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from bokeh.plotting import figure\n"
        "f = figure(width=300, height=300); f.scatter([1, 2, 3], [3, 1, 2])\n"
        "save_plot(f, 'two_a')\n"
        "plt.figure(); plt.plot([1, 2, 3]); save_plot(plt, 'two_b')\n"
    )
    pulled = run_cell(session, mgr, cell)
    assert sorted(p.name for p in pulled) == ["two_a.html", "two_b.png"]
    for plot in pulled:
        assert plot.path.read_bytes() == (remote_dir(livy_server) / plot.name).read_bytes()
    before = {p: (local_dir / p).stat().st_mtime_ns for p in HAIL_PLOTS}
    # Same bytes rewritten (new mtime) and a cell that plots nothing: nothing is pulled.
    touch = "import os, time\ntime.sleep(0.01)\nos.utime(os.path.join(PLOTS_DIR, 'two_a.html'))\n"
    assert run_cell(session, mgr, touch) == []
    assert run_cell(session, mgr, "x = 1") == []
    assert {p: (local_dir / p).stat().st_mtime_ns for p in HAIL_PLOTS} == before
    # A changed plot is pulled again.
    changed = run_cell(session, mgr, "f.title.text = 'changed'\nsave_plot(f, 'two_a')")
    assert [p.name for p in changed] == ["two_a.html"]
    assert "changed" in (local_dir / "two_a.html").read_text()
    # --no-plots: changes are marked seen, not pulled.
    out = session.run("save_plot(f, 'skipped')", check=True)
    assert out.text == "", out.text  # a cell ending with save_plot echoes nothing (like savefig)
    assert mgr.after_cell(pull=False) == []
    assert mgr.after_cell() == [] and not (local_dir / "skipped.html").exists()


def test_plot_of_a_failed_cell_is_not_lost(session, mgr, local_dir):
    """A cell that saves a plot and then raises: the magic stops before after_cell, yet the
    scan queued behind that cell is honoured at the next look."""
    cell = session.submit(
        "from bokeh.plotting import figure\ng = figure(width=200, height=200)\ng.line([1, 2], [2, 1])\n"
        "save_plot(g, 'before_error')\nraise ValueError('boom')"
    )
    mgr.queue_scan()
    done = session.wait(cell)
    assert done.output is not None and done.output.ename == "ValueError"
    assert [p.name for p in run_cell(session, mgr, "y = 2")] == ["before_error.html"]
    assert (local_dir / "before_error.html").is_file()


def test_20mb_plot_pulls_in_chunks(session, mgr, livy_server, local_dir):
    code = (
        "import os, random\n"
        "rnd = random.Random(7)\n"
        "body = ''.join('<div>%d %f</div>\\n' % (i, rnd.random()) for i in range(850000))\n"
        "with open(os.path.join(PLOTS_DIR, 'big.html'), 'w') as fh:\n"
        "    fh.write('<html><body>' + body + '</body></html>')\n"
        "os.path.getsize(os.path.join(PLOTS_DIR, 'big.html'))"
    )
    out = session.run(code, check=True)
    size = int(out.text.strip())
    assert size > 20 * 1024 * 1024
    first_id = session.last_statement_id
    pulled = mgr.after_cell()
    assert [p.name for p in pulled] == ["big.html"]
    statements = session.last_statement_id - first_id
    assert statements == 1 + -(-size // mgr.puller.chunk_size)  # the scan, then one statement per chunk
    assert pulled[0].size == size
    assert sha(local_dir / "big.html") == sha(remote_dir(livy_server) / "big.html")
    # Text like this travels compressed; bytes that do not compress travel as they are.
    rnd = (remote_dir(livy_server) / "noise.png")
    rnd.write_bytes(os.urandom(300_000))
    try:
        for name, encoding, raw in (("big.html", "zlib", (remote_dir(livy_server) / "big.html").read_bytes()),
                                    ("noise.png", "raw", rnd.read_bytes())):
            out = session.run(RemoteHelpers.text_code(f"read({name!r}, 1000, 200000)"), check=True)
            header, data = RemoteHelpers.chunk_result(out, "test")
            assert header["encoding"] == encoding and data == raw[1000:201000]
            assert len(out.text) < 200000 if encoding == "zlib" else len(out.text) > 200000 * 4 / 3
    finally:
        rnd.unlink()
        (remote_dir(livy_server) / "big.html").unlink()


def test_odd_and_traversal_names_refused(session, mgr, livy_server, local_dir, warnings_seen, tmp_path):
    rdir = remote_dir(livy_server)
    odd = ["ctl\x07bell.html", "back\\slash.html", "new\nline.png", "esc\x1b[2J.html"]
    for name in odd:
        (rdir / name).write_text("<p>odd</p>")
    secret = tmp_path / "secret.txt"
    secret.write_text("cluster secret")
    os.symlink(secret, rdir / "link.html")
    del warnings_seen[:]
    try:
        assert mgr.after_cell() == []
    finally:
        for name in [*odd, "link.html"]:
            (rdir / name).unlink()
    refused = dict(mgr.refused)
    assert set(odd) <= set(refused) and "link.html" in refused
    assert len(warnings_seen) == 1 and "refused 5 plot file name(s)" in warnings_seen[0]
    assert repr("esc\x1b[2J.html") in warnings_seen[0] and "\x1b" not in warnings_seen[0]

    # A hostile cluster lying in its listing: names that could never be files there.
    evil = [
        "../../.ssh/authorized_keys",
        "/etc/cron.d/evil",
        "..",
        "sub/../../x.html",
        "nul\x00.html",
        ".hail-plots-index.json",
    ]
    session.run(
        "import base64\n_hel_plots_real_scan = _hail_emr_lab_plots.scan\n"
        "_hail_emr_lab_plots.scan = lambda limit, sweep=False: {'dir': PLOTS_DIR, 'error': None, 'refused': [], "
        "'files': ["
        + ", ".join(
            f"{{'name': {n!r}, 'size': 4, 'mtime': 1.0, 'sha256': 'x', 'data': base64.b64encode(b'pwnd').decode()}}"
            for n in evil
        )
        + "]}",
        check=True,
    )
    notebook = local_dir.parent
    before = sorted(str(p) for p in notebook.parent.rglob("*"))
    del warnings_seen[:]
    try:
        assert mgr.after_cell() == []
    finally:
        session.run("_hail_emr_lab_plots.scan = _hel_plots_real_scan", check=True)
    assert [n for n, _ in mgr.refused] == evil
    assert sorted(str(p) for p in notebook.parent.rglob("*")) == before
    assert (
        not (Path.home() / ".ssh" / "authorized_keys").exists()
        or b"pwnd" not in (Path.home() / ".ssh" / "authorized_keys").read_bytes()
    )
    assert "refused 6" in warnings_seen[0] and "'../../.ssh/authorized_keys'" in warnings_seen[0]
    with pytest.raises(UnsafePlotName):
        mgr.pull("../../.ssh/authorized_keys")
    # The cluster side refuses to read outside PLOTS_DIR, too.
    out = session.run("_hail_emr_lab_plots.read('../etc/passwd', 0, 10)")
    assert not out.ok and out.ename == "ValueError"


def test_bokehjs_fetched_once_from_cluster(session, local_dir, tmp_path, hail_plots):
    """With no matching local bokeh, BokehJS comes from the cluster's install and is cached."""
    provider = BokehJS(cache_dir=tmp_path / "cache", use_package=False)
    m = PlotManager(session, tmp_path / "plots", "/plots", bokehjs=provider)
    before = session.last_statement_id
    plot = m.pull("histogram.html")
    cached = tmp_path / "cache" / bokeh.__version__ / "bokeh.min.js"
    local_js = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js"
    assert cached.read_bytes() == local_js.read_bytes()
    used = session.last_statement_id - before
    m.pull("qq.html")
    assert session.last_statement_id - before - used == 1  # the second plot: only its own read
    markup = plot_html(plot.path, plot.name, BokehJS(cache_dir=tmp_path / "cache", use_package=False))
    assert "cdn.bokeh.org" not in markup


@pytest.fixture
def http_plots(livy_server):
    """The plot directory served the Quick Start way (a plain HTTP server on loopback)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", livy_server.plots_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


def test_http_mode(session, livy_server, tmp_path, http_plots, hail_plots):
    m = PlotManager(session, tmp_path / "plots", "/plots", plots_url=http_plots)
    plot = m.pull("gwas/manhattan.html")
    assert plot.path.read_bytes() == (remote_dir(livy_server) / "gwas" / "manhattan.html").read_bytes()
    (remote_dir(livy_server) / "only-remote.html").write_text("x")
    try:
        m2 = PlotManager(session, tmp_path / "plots2", "/plots", plots_url=http_plots + "nowhere/")
        with pytest.raises(PlotError, match="HTTP 404"):
            m2.pull("only-remote.html")
    finally:
        (remote_dir(livy_server) / "only-remote.html").unlink()


# ---------------------------------------------------------------------------- browser


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def browser_page(tmp_path_factory):
    """Headless Chromium with every non-loopback request aborted (and recorded).

    One per test: Playwright's sync API runs its own event loop in this thread, and pytest-jupyter's
    autouse loop fixture (loaded by the server tests) would take a module-wide one for its own and
    close it while it runs."""
    from support.lab import chromium

    site = tmp_path_factory.mktemp("site")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    blocked: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1100, "height": 900})

        def guard(route):
            url = route.request.url
            if url.startswith(("http://127.0.0.1", "data:", "about:")):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        yield page, site, f"http://127.0.0.1:{server.server_address[1]}", blocked
    server.shutdown()


EMBED = """<!doctype html><html><head><title>Lab page</title><meta charset="utf-8"></head><body>
<script>
document.cookie = "_xsrf=lab-secret-token; path=/";
window.results = [];
window.addEventListener("message", (e) => window.results.push(e.data));
</script>
{markup}
</body></html>"""


@pytest.mark.browser
def test_bokeh_plot_renders_offline(browser_page, mgr, hail_plots, artifacts_dir):
    page, site, base, blocked = browser_page
    plot = next(p for p in hail_plots if p.name == "histogram.html")
    (site / "hist.html").write_text(EMBED.format(markup=plot_html(plot.path, plot.name, mgr.bokehjs)), encoding="utf-8")
    page.goto(f"{base}/hist.html")
    frame = page.frame_locator("iframe.hail-emr-lab-plot")
    frame.locator("canvas").first.wait_for(state="attached", timeout=30000)
    page.wait_for_timeout(1500)  # let bokeh finish drawing
    shot = page.locator("iframe.hail-emr-lab-plot").screenshot(path=str(artifacts_dir / "plots-histogram-offline.png"))
    from PIL import Image

    img = Image.open(io.BytesIO(shot)).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 10  # bars, axes, labels: far from a blank frame
    non_white = sum(n for n, c in colors if c != (255, 255, 255))
    assert non_white > 0.02 * img.width * img.height
    assert blocked == [], f"the plot tried to reach the network: {blocked}"


@pytest.mark.browser
def test_plot_cannot_read_the_lab_page(browser_page, tmp_path, artifacts_dir):
    page, site, base, blocked = browser_page
    evil = tmp_path / "evil.html"
    evil.write_text(
        """<html><body><p>evil plot</p><script>
        function attempt(f) { try { return "READ:" + f(); } catch (e) { return "blocked:" + e.name; } }
        parent.postMessage({
          parentDoc: attempt(() => parent.document.title),
          parentCookie: attempt(() => parent.document.cookie),
          ownCookie: attempt(() => document.cookie),
          topStorage: attempt(() => top.localStorage.length),
        }, "*");
        </script></body></html>"""
    )
    plot = LocalPlot("evil.html", evil, evil.stat().st_size, sha(evil), 0.0, "/plots/evil.html", "now")
    (site / "evil.html").write_text(EMBED.format(markup=plot_html(plot.path, plot.name)), encoding="utf-8")
    page.goto(f"{base}/evil.html")
    page.wait_for_function("window.results.length > 0", timeout=15000)
    result = page.evaluate("window.results[0]")
    page.screenshot(path=str(artifacts_dir / "plots-sandbox-escape.png"))
    assert page.evaluate("document.cookie") == "_xsrf=lab-secret-token"  # the secret is there to steal
    for key in ("parentDoc", "parentCookie", "ownCookie", "topStorage"):
        assert result[key].startswith("blocked:"), (key, result[key])
    assert page.title() == "Lab page"
    assert blocked == []
