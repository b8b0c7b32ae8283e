"""Pieces of the Hail-habits work that need no cluster: the remote plot helpers run in this
process (as the session runs them), and how a remote traceback is cut for the notebook."""

from __future__ import annotations

import os

import pytest

from hail_emr_lab.notebook.magics.errors import user_frames
from hail_emr_lab.remote import source


@pytest.fixture
def remote_plots(tmp_path):
    """The cluster-side plot helpers, exec'd as the session does, with PLOTS_DIR in tmp_path."""
    ns = {"__name__": "hail_emr_lab_remote_plots"}
    exec(compile(source("plots.py"), "<hail-emr-lab plots>", "exec"), ns)
    old = os.environ.pop("HAIL_EMR_LAB_PLOTS_DIR", None)
    try:
        ns["init"](str(tmp_path))
    finally:
        if old is not None:
            os.environ["HAIL_EMR_LAB_PLOTS_DIR"] = old
    return ns


def test_scan_lists_saves_in_save_order_even_within_one_clock_tick(remote_plots, tmp_path):
    from bokeh.plotting import figure

    names = ["zeta", "alpha", "sub/mid", "beta", "sub/aaa"]
    for name in names:
        f = figure(title=name)
        f.line([1, 2], [2, 1])
        remote_plots["save_plot"](f, name)
    # The file system may give saves in quick succession the same mtime: force it.
    for name in names:
        os.utime(tmp_path / (name + ".html"), ns=(1_700_000_000_000_000_000,) * 2)
    found = [e["name"] for e in remote_plots["scan"](0)["files"]]
    assert found == [n + ".html" for n in names]


def test_show_names_are_findable_and_unique(remote_plots):
    from bokeh.plotting import figure

    f = figure(title="QQ plot: p-values (all)")
    first, second = remote_plots["show_name"](f, "bokeh"), remote_plots["show_name"](figure(), "bokeh")
    assert first.startswith("show-") and first.endswith("-001-qq-plot-p-values-all.html")
    assert second.endswith("-002.html")
    from hail_emr_lab.plots.names import check_name

    check_name(first)


TRACEBACK = [
    "Traceback (most recent call last):\n",
    '  File "<stdin>", line 2, in <module>\n',
    '  File "/site-packages/hail/typecheck/check.py", line 585, in wrapper\n',
    "    return __original_func(*args_, **kwargs_)\n",
    '  File "/site-packages/hail/context.py", line 86, in __init__\n',
    "    assert not Env._hc\n",
    "AssertionError\n",
]


def test_a_failure_inside_a_library_keeps_the_frame_that_raised():
    lines = user_frames(TRACEBACK)
    assert lines == [
        '  File "<stdin>", line 2, in <module>',
        "  ... 1 more frame(s) inside libraries ...",
        '  File "/site-packages/hail/context.py", line 86, in __init__',
        "    assert not Env._hc",
    ]
    assert user_frames(TRACEBACK, library_frames=3)[1:] == [
        '  File "/site-packages/hail/typecheck/check.py", line 585, in wrapper',
        "    return __original_func(*args_, **kwargs_)",
        '  File "/site-packages/hail/context.py", line 86, in __init__',
        "    assert not Env._hc",
    ]


def test_errors_raised_in_user_code_or_our_helpers_show_only_user_frames():
    own = [
        "Traceback (most recent call last):\n",
        '  File "<stdin>", line 1, in <module>\n',
        '  File "<hail_emr_lab.remote>", line 200, in guarded\n',
        "HailAlreadyRunning: ...\n",
    ]
    assert user_frames(own) == ['  File "<stdin>", line 1, in <module>']
    plain = ["Traceback (most recent call last):\n", '  File "<stdin>", line 3, in <module>\n',
             "NameError: name 'x' is not defined\n"]
    assert user_frames(plain) == ['  File "<stdin>", line 3, in <module>', "NameError: name 'x' is not defined"]
