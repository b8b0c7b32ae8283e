"""Habits users bring from Jupyter and sparkmagic, in a real IPython kernel against the embedded Livy.

``hl.init(...)`` in a session that ``%hail connect`` already initialised, Hail failures whose
only explanation is inside Hail, and the usual ways of showing a figure (``hl.plot.show``,
bokeh's ``show``, ``plt.show()``, a figure left open) arriving inline through the plot
pass-through. One kernel and one Livy session (one Spark JVM) for the module; tests run in
file order.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from support.kernel import Kernel, kernel_env

pytestmark = pytest.mark.slow
NAME = "hail-habits-test"
LABEL = "hail-emr-lab plot: plots/"


@pytest.fixture(scope="module")
def kernel(livy_server, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("habits")
    k = Kernel(kernel_env(str(cfg)), cwd=str(cfg))
    k.cwd = cfg
    try:
        res = k.run(f"%hail connect --url {livy_server.url} --name {NAME} --new --wait", timeout=900)
        assert res.status == "ok", res.text
        yield k
    finally:
        k.run("%hail disconnect --delete", timeout=120)
        k.shutdown()


def remote(kernel: Kernel, code: str, timeout: float = 600):
    return kernel.run("%%hail\n" + code, timeout=timeout)


def error_text(res) -> str:
    return "\n".join(res.traceback)


# ---------------------------------------------------------------------- hl.init in a session we initialised


def test_hl_init_again_is_a_noop_with_a_note(kernel):
    res = remote(kernel, "import hail as hl\nhl.init()\nhl.init(sc)\nprint('after', hl.default_reference().name)")
    assert res.status == "ok", res.text
    notes = [line for line in res.stdout.splitlines() if line.startswith("hl.init")]
    assert notes == ["hl.init: Hail is already running in this session (%hail connect started it); nothing to do."] * 2
    assert "after GRCh37" in res.stdout and "AssertionError" not in res.text
    res = remote(kernel, "hl.init(sc, quiet=True, idempotent=True)\nprint('quiet')")
    assert res.status == "ok" and res.stdout.strip() == "quiet", res.text


def test_hl_init_applies_what_hail_can_change(kernel, tmp_path):
    tmp_dir = tmp_path / "hail-tmp"
    res = remote(kernel, f"hl.init(default_reference='GRCh38', tmp_dir={str(tmp_dir)!r})\n"
                         "print('now', hl.default_reference().name, hl.tmp_dir())")
    assert res.status == "ok", res.text
    # Settings are named in the order of hl.init's signature.
    assert (f"hl.init(tmp_dir={str(tmp_dir)!r}, default_reference='GRCh38'): Hail was already running in this "
            f"session; applied tmp_dir={str(tmp_dir)!r}, default_reference='GRCh38'.") in res.stdout
    assert f"now GRCh38 {tmp_dir}" in res.stdout
    assert tmp_dir.is_dir()  # created, as hl.init does for a new tmp_dir
    # The setting is in effect for Hail's own functions, not only reported back.
    res = remote(kernel, "print('locus', hl.eval(hl.locus('chr1', 100)).reference_genome.name)")
    assert "locus GRCh38" in res.stdout, res.text
    # global_seed: the same seed gives the same random numbers again, another seed others.
    draw = "hl.eval(hl.rand_unif(0, 1))"
    res = remote(kernel, f"hl.init(global_seed=7)\na = {draw}\nhl.init(global_seed=7)\nb = {draw}\n"
                         f"hl.init(global_seed=8)\nc = {draw}\nprint('seeds', a == b, a != c)")
    assert res.status == "ok", res.text
    assert "applied global_seed=7." in res.stdout and "seeds True True" in res.stdout
    # The log moves to the new file (Hail's JVM logger is reconfigured).
    log = tmp_path / "moved.log"
    res = remote(kernel, f"hl.init(log={str(log)!r})\nhl.utils.range_table(10).count()")
    assert res.status == "ok" and f"applied log={str(log)!r}." in res.stdout, res.text
    assert log.is_file() and log.stat().st_size > 0
    res = remote(kernel, "hl.default_reference('GRCh37')")
    assert res.status == "ok", res.text


def test_hl_init_refuses_what_only_a_new_session_can_do_and_changes_nothing(kernel):
    res = remote(kernel, "hl.init(spark_conf={'spark.executor.memory': '2g'}, default_reference='GRCh38')")
    assert res.status == "error" and res.ename == "HailMagicError", res.text
    text = error_text(res)
    assert "HailAlreadyRunning" in text and "nothing was changed" in text
    assert ("  spark_conf={'spark.executor.memory': '2g'}: Spark settings are fixed when the Livy session starts: "
            "`%hail connect --new --conf spark.executor.memory=2g`") in text
    assert "These could be applied to the running Hail (call hl.init again without the above): " \
           "default_reference='GRCh38'" in text
    res = remote(kernel, "print('still', hl.default_reference().name)")
    assert "still GRCh37" in res.stdout, res.text  # nothing applied when one setting is refused

    res = remote(kernel, "hl.init(backend='local')")
    assert res.status == "error", res.text
    assert ("  backend='local': the session runs Hail on Spark; for another backend connect with "
            "`%hail connect --new --no-hail`, then call hl.init yourself") in error_text(res)
    res = remote(kernel, "hl.init(master='local[2]', driver_memory='8g')")
    assert res.status == "error", res.text
    text = error_text(res)
    assert "  master='local[2]': Livy chooses the Spark master when the Livy session starts: " \
           "`%hail connect --new --conf spark.master=local[2]`" in text
    assert "  driver_memory='8g': the session's size is fixed when it starts: " \
           "`%hail connect --new --driver-memory 8g`" in text


def test_a_failure_inside_hail_shows_where_it_happened(kernel):
    # Hail's own "one context per process" check: a bare assert with no message.
    res = remote(kernel, "from hail.context import HailContext\n"
                         "HailContext(log='x.log', quiet=True, append=False, global_seed=None, "
                         "backend=hl.current_backend())")
    assert res.status == "error", res.text
    text = error_text(res)
    assert "AssertionError" in text and 'File "<stdin>", line 2' in text
    assert re.search(r'File ".*hail/context\.py", line \d+, in __init__', text), text
    assert "assert not Env._hc" in text
    # Our own helpers' frames stay hidden.
    assert "<hail_emr_lab" not in text and "<hail-emr-lab" not in text


# ---------------------------------------------------------------------- show() routes through the plots


def shown(res) -> list[str]:
    """The plot names the cell displayed, in display order."""
    names = []
    for bundle in res.data:
        label = bundle.get("text/plain", "")
        if label.startswith(LABEL):
            names.append(label[len(LABEL):])
    return names


SHOW_CELL = """
import matplotlib.pyplot as plt
from bokeh.plotting import figure, show
ht = hl.utils.range_table(50)
p = hl.plot.scatter(ht.idx, ht.idx * 2, title='first hail')
hl.plot.show(p)
f = figure(title='second bokeh', width=200, height=200)
f.line([1, 2, 3], [3, 1, 2])
show(f)
plt.figure()
plt.plot([1, 2, 3])
plt.title('third pyplot')
plt.show()
plt.figure()
plt.plot([3, 2, 1])
plt.title('fourth left open')
"""


def test_every_way_of_showing_a_figure_appears_inline_once_in_call_order(kernel):
    res = remote(kernel, SHOW_CELL, timeout=900)
    assert res.status == "ok", res.text
    names = shown(res)
    pattern = r"show-\d{8}-\d{6}-\d{3}-%s\.%s"
    expected = [("first-hail", "html"), ("second-bokeh", "html"), ("third-pyplot", "png"), ("fourth-left-open", "png")]
    assert len(names) == 4, names
    for name, (title, ext) in zip(names, expected):
        assert re.fullmatch(pattern % (title, ext), name), names
    plots = Path(kernel.cwd) / "plots"
    for bundle in res.data:
        label = bundle.get("text/plain", "")
        if not label.startswith(LABEL):
            continue
        local = plots / label[len(LABEL):]
        assert local.is_file()
        if local.suffix == ".png":
            assert base64.b64decode(bundle["image/png"]) == local.read_bytes()
        else:
            assert 'sandbox="allow-scripts"' in bundle["text/html"] and "bokeh" in bundle["text/html"].lower()
    # Figures were closed (as Jupyter's inline backend does): the next cell shows nothing again.
    res = remote(kernel, "print(len(plt.get_fignums()))")
    assert res.status == "ok" and res.stdout.strip() == "0" and shown(res) == [], res.text
    # Showing the same figure twice shows it twice, as two files.
    res = remote(kernel, "show(f)\nshow(f)")
    assert res.status == "ok", res.text
    twice = shown(res)
    assert len(twice) == 2 and len(set(twice)) == 2 and all("second-bokeh" in n for n in twice), twice


def test_save_plot_figures_are_not_shown_twice_and_saves_keep_their_order(kernel):
    cell = "\n".join(f"plt.figure(); plt.plot([{i}]); save_plot(plt, 'order/{name}')"
                     for i, name in enumerate(["zeta", "alpha", "mid", "beta"]))
    res = remote(kernel, cell)
    assert res.status == "ok", res.text
    assert shown(res) == ["order/zeta.png", "order/alpha.png", "order/mid.png", "order/beta.png"]


def test_plots_listing_shows_local_time(kernel):
    res = remote(kernel, "save_plot(f, 'listed')")
    assert res.status == "ok", res.text
    res = kernel.run("%hail plots")
    assert res.status == "ok", res.text
    table = "\n".join(d.get("text/plain", "") for d in res.data)
    assert "listed.html" in table and "modified" in table
    assert time.strftime("%Y-%m-%d ") in table and "e+09" not in table, table


def test_refused_plot_name_is_warned_once(kernel):
    res = remote(kernel, "import os\nos.symlink('/etc/hostname', os.path.join(PLOTS_DIR, 'sneaky.png'))")
    try:
        assert res.status == "ok", res.text
        assert res.stderr.count("refused 1 plot file name(s)") == 1 and "'sneaky.png' (symbolic link)" in res.stderr
        for _ in range(2):
            res = remote(kernel, "x = 1")
            assert res.status == "ok" and "refused" not in res.stderr, res.stderr
    finally:
        remote(kernel, "os.unlink(os.path.join(PLOTS_DIR, 'sneaky.png'))")


def test_pull_says_what_it_came_from(kernel):
    res = kernel.run("%%hail -o pcs\npcs = hl.utils.range_table(5).annotate(x=1.5)", timeout=900)
    assert res.status == "ok", res.text
    assert "pcs: pulled 5 rows x 2 columns from the Hail Table `pcs` (" in res.stdout, res.stdout
    res = kernel.run("%%hail -o cfg\ncfg = {'k': 1}")
    assert "cfg: pulled the dict `cfg` (json," in res.stdout, res.stdout
