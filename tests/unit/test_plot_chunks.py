"""The chunk protocol of plot pulls, both ends in this process: the cluster-side helpers as the
one installer puts them in a session, and the notebook's parser of their text output.

What a Livy in between does to the text (nothing: it passes the statement's stdout on as one
string) is covered by tests/integration/test_plots_livy.py.
"""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest

from hail_emr_lab.livy.models import Output
from hail_emr_lab.plots.errors import PlotError
from hail_emr_lab.plots.helpers import RemoteHelpers
from hail_emr_lab.plots.puller import MAX_CHUNK, SessionPuller
from hail_emr_lab.remote import MODULES, NAMESPACE, PLOTS_NAMESPACE, bootstrap_code


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """The session's globals after the plots part of the one installer ran, PLOTS_DIR = tmp_path."""
    monkeypatch.setenv("HAIL_EMR_LAB_PLOTS_DIR", str(tmp_path))
    ns: dict = {}
    exec(bootstrap_code(PLOTS_NAMESPACE), ns)  # our own package source, as a session runs it
    module = ns[PLOTS_NAMESPACE]
    module.init("/plots")
    return module


def _output(text: str) -> Output:
    return Output.from_json({"status": "ok", "execution_count": 1, "data": {"text/plain": text}})


def test_the_installer_defines_one_module_per_namespace_and_nothing_else():
    ns: dict = {}
    exec(bootstrap_code(PLOTS_NAMESPACE), ns)
    assert set(ns) - {"__builtins__"} == {PLOTS_NAMESPACE}
    assert callable(ns[PLOTS_NAMESPACE].read) and callable(ns[PLOTS_NAMESPACE].save_plot)
    assert set(MODULES) == {NAMESPACE, PLOTS_NAMESPACE}
    with pytest.raises(KeyError):
        bootstrap_code("_not_ours")


def test_text_travels_compressed_and_noise_as_it_is(remote, tmp_path):
    text = "".join(f"<div>{i} {i * 0.5}</div>\n" for i in range(60000)).encode()
    noise = os.urandom(300_000)
    (tmp_path / "page.html").write_bytes(text)
    (tmp_path / "noise.png").write_bytes(noise)
    for name, data, encoding in (("page.html", text, "zlib"), ("noise.png", noise, "raw")):
        answer = remote.read(name, 1000, 200_000)
        header, got = RemoteHelpers.chunk_result(_output(answer), "test")
        assert header["encoding"] == encoding and got == data[1000:201000]
        assert header["size"] == len(data) and "sha256" not in header  # the hash comes with the first chunk
        assert (len(answer) < 100_000) if encoding == "zlib" else (len(answer) > 200_000 * 4 / 3)
    header, _ = RemoteHelpers.chunk_result(_output(remote.read("page.html", 0, 10)), "test")
    assert header["sha256"] and header["offset"] == 0 and header["length"] == 10


def _with_header(header: dict, body: str) -> str:
    return base64.b64encode(json.dumps(header).encode()).decode() + " " + body


def test_a_chunk_is_only_base64_letters_and_one_space(remote, tmp_path):
    """Nothing any hop must escape in JSON (quotes, newlines, backslashes): each would cost a
    character-by-character pass over megabytes."""
    (tmp_path / "q.html").write_bytes(b'<p class="x">\\n\n</p>\n' * 20_000)
    for length in (10, 100_000):
        text = remote.read("q.html", 0, length)
        assert text.count(" ") == 1 and json.dumps(text) == '"' + text + '"'


def test_a_damaged_chunk_is_refused_never_written(remote, tmp_path):
    (tmp_path / "p.html").write_bytes(b"<p>" * 50_000)
    head, _, body = remote.read("p.html", 0, 100_000).partition(" ")
    header = json.loads(base64.b64decode(head))
    bad = {
        "cut base64": head + " " + body[:-3],
        "one letter short": head + " " + body[:-1],
        "not base64": head + " " + "*" + body[1:],
        "a newline inside": head + " " + body[:40] + "\n" + body[40:],
        "length lies": _with_header(dict(header, length=header["length"] + 1), body),
        "unknown encoding": _with_header(dict(header, encoding="br"), body),
        "raw claimed for zlib bytes": _with_header(dict(header, encoding="raw"), body),
        "header not base64": json.dumps(header) + " " + body,
        "no header": body,
        "nothing": "",
    }
    for what, text in bad.items():
        with pytest.raises(PlotError, match="reading p.html"):
            RemoteHelpers.chunk_result(_output(text), "reading p.html")
        assert what


def test_a_failed_statement_says_what_failed_on_the_cluster():
    failed = Output.from_json({"status": "error", "execution_count": 1, "ename": "ValueError",
                               "evalue": "invalid plot name '../x'", "traceback": []})
    with pytest.raises(PlotError, match="reading plot '../x' failed on the cluster: .*invalid plot name"):
        RemoteHelpers.chunk_result(failed, "reading plot '../x'")


def test_the_cluster_refuses_names_outside_plots_dir(remote):
    for name in ("../etc/passwd", "/etc/passwd", ".hidden", "a/../../b"):
        with pytest.raises(ValueError, match="invalid plot name"):
            remote.read(name, 0, 10)


def test_chunk_size_stays_under_livys_output_limit():
    assert MAX_CHUNK * 4 / 3 <= 50 * 1024 * 1024 / 2
    with pytest.raises(ValueError, match="Livy's output limit"):
        SessionPuller(RemoteHelpers(None, "/plots"), chunk_size=MAX_CHUNK + 1)
    with pytest.raises(ValueError):
        SessionPuller(RemoteHelpers(None, "/plots"), chunk_size=0)


def test_a_driver_without_pybase64_sends_the_same_text(remote, tmp_path, monkeypatch):
    (tmp_path / "m.html").write_bytes(os.urandom(70_000) + b"<p>" * 30_000)
    with_simd = remote.read("m.html", 5, 150_000)
    monkeypatch.setitem(sys.modules, "pybase64", None)  # import pybase64 -> ImportError, as on a bare driver
    ns: dict = {}
    exec(bootstrap_code(PLOTS_NAMESPACE), ns)
    bare = ns[PLOTS_NAMESPACE]
    bare.init("/plots")
    assert bare._b64text.__name__ == "_b64text" and remote._b64text.__name__ == "b64encode_as_string"
    assert bare.read("m.html", 5, 150_000) == with_simd
