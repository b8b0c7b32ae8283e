"""What a ``%%hail`` cell shows while it runs and leaves behind, and which session a notebook gets.

A real IPython kernel (jupyter_client) started the way jupyter_server starts one for a notebook
(``JPY_SESSION_NAME`` set to the notebook's path), on the embedded Livy server with real Spark:
one kernel and one Livy session for the module. Every iopub message is timed as it arrives.
"""

from __future__ import annotations

import queue
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.kernel import Kernel, kernel_env

from hail_emr_lab.livy import LivyClient
from hail_emr_lab.session_names import default_session_name, is_own, notebook_label, notebook_session_name

pytestmark = pytest.mark.slow
BASE = "hail-progress-test"
WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass
class Timed:
    """The display messages of one cell: (seconds since execute, msg type, data, display id)."""

    shown: list[tuple[float, str, dict[str, Any], str]] = field(default_factory=list)
    status: str = ""
    stdout: str = ""

    def final(self) -> dict[str, dict[str, Any]]:
        """The last bundle of every display id: what a saved notebook keeps."""
        out: dict[str, dict[str, Any]] = {}
        for _, _, data, display_id in self.shown:
            out[display_id] = data
        return out


def run_timed(kernel: Kernel, code: str, timeout: float = 600) -> Timed:
    msg_id = kernel.kc.execute(code)
    t0 = time.monotonic()
    res = Timed()
    while True:
        assert time.monotonic() - t0 < timeout, f"cell did not finish: {code!r}"
        try:
            msg = kernel.kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if msg["parent_header"].get("msg_id") != msg_id and kind != "update_display_data":
            continue
        if kind in ("display_data", "update_display_data"):
            display_id = (content.get("transient") or {}).get("display_id", f"anon-{len(res.shown)}")
            res.shown.append((time.monotonic() - t0, kind, content["data"], display_id))
        elif kind == "stream" and content["name"] == "stdout":
            res.stdout += content["text"]
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kernel.kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.kc.get_shell_msg(timeout=30)
    res.status = reply["content"]["status"]
    return res


@pytest.fixture(scope="module")
def notebook_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("nb")


@pytest.fixture(scope="module")
def kernel(livy_server, notebook_dir):
    cfg = notebook_dir / "cfg"
    cfg.mkdir()
    notebook = notebook_dir / "analysis.ipynb"
    env = kernel_env(str(cfg), HAIL_EMR_LAB_SESSION_NAME=BASE, HAIL_EMR_LAB_LIVY_URL=livy_server.url,
                     JPY_SESSION_NAME=str(notebook))
    k = Kernel(env, cwd=str(notebook_dir))
    k.notebook = notebook
    res = k.run("%hail connect")
    assert res.status == "ok", res.text
    res = k.run("%%hail\nprint('ready')", timeout=900)
    assert res.status == "ok" and "ready" in res.stdout, res.text
    yield k
    k.run("%hail delete", timeout=120)
    k.shutdown()


def test_slow_statement_shows_state_and_elapsed_from_the_first_second(kernel):
    res = run_timed(kernel, "%%hail\nimport time\ntime.sleep(6)\nprint('slept')")
    assert res.status == "ok" and "slept" in res.stdout
    lines = [(t, d.get("text/plain", "")) for t, _, d, _ in res.shown]
    assert lines, "the cell showed no progress at all"
    first_t, first = lines[0]
    assert first_t < 2.0, f"the first progress line came after {first_t:.1f} s"
    assert re.search(r"statement \d+ (waiting|running)", first), first
    # The elapsed time moves while the statement sits at 0 %: one line per second, in place.
    seconds = sorted({int(m.group(1)) for _, text in lines for m in [re.search(r", (\d+) s$", text)] if m})
    assert len(seconds) >= 4 and seconds[-1] >= 4, lines
    assert len({display_id for *_, display_id in res.shown}) == 1, "progress must update one output in place"
    # What stays in the notebook: a plain record (text and HTML), never a widget.
    (record,) = res.final().values()
    assert WIDGET not in record and not any(WIDGET in d for _, _, d, _ in res.shown)
    assert re.fullmatch(r"hail: statement \d+ finished in \d+\.\d s", record["text/plain"]), record
    assert "finished in" in record["text/html"] and 'data-state="ok"' in record["text/html"]


def test_spark_job_shows_bar_and_job_line(kernel):
    code = "%%hail\nimport time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(4) or x).count()"
    res = run_timed(kernel, code)
    assert res.status == "ok"
    texts = [d.get("text/plain", "") for _, _, d, _ in res.shown]
    assert any(re.search(r"Spark job \d+ running: \d/4 tasks", t) for t in texts), texts
    assert any(re.search(r"\] +\d+%", t) for t in texts), "no progress bar while Livy reported progress"
    (record,) = res.final().values()
    assert "finished in" in record["text/plain"] and "100%" in record["text/plain"], record


def test_fast_cell_and_push_leave_no_progress_or_widget(kernel):
    res = run_timed(kernel, "%%hail\n1 + 1")
    assert res.status == "ok" and not [d for _, _, d, _ in res.shown if "statement" in d.get("text/plain", "")]
    kernel.run("import pandas as pd\nframe = pd.DataFrame({'a': list(range(1000))})")
    res = run_timed(kernel, "%hail push frame")
    assert res.status == "ok" and "frame: pushed" in res.stdout
    assert not any(WIDGET in d for _, _, d, _ in res.shown)
    assert all(not d.get("text/plain") for d in res.final().values())  # the push line is cleared


def test_quiet_cell_leaves_no_record(kernel):
    res = run_timed(kernel, "%%hail -q\nimport time\ntime.sleep(2)\nprint('hidden')")
    assert res.status == "ok" and "hidden" not in res.stdout
    assert any("statement" in d.get("text/plain", "") for _, _, d, _ in res.shown)  # shown while running
    assert all(not d.get("text/plain") for d in res.final().values()), res.final()


def test_failed_statement_leaves_a_failed_record(kernel):
    res = run_timed(kernel, "%%hail\nimport time\ntime.sleep(1.5)\nraise ValueError('boom')")
    assert res.status == "error"
    (record,) = res.final().values()
    assert re.fullmatch(r"hail: statement \d+ failed after \d+\.\d s", record["text/plain"]), record
    assert 'data-state="error"' in record["text/html"]


# ----------------------------------------------------------------- one session per notebook


def test_session_is_named_after_the_notebook_and_found_after_restart(kernel, livy_server):
    expected = notebook_session_name(BASE, str(kernel.notebook))
    assert expected.startswith(f"{BASE}@analysis-")
    first = kernel.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id")
    assert kernel.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.name") == expected
    kernel.restart()
    res = kernel.run("%hail connect")
    assert res.status == "ok" and "reattached to session" in res.text, res.text
    assert kernel.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.id") == first
    with LivyClient(livy_server.url) as client:
        assert [s.id for s in client.list_sessions() if s.name == expected and s.state.is_alive] == [first]


def test_other_notebook_gets_its_own_name_and_name_shares(kernel, notebook_dir, livy_server):
    other = notebook_dir / "sub" / "analysis.ipynb"  # the same stem in another folder
    cfg = notebook_dir / "cfg2"
    cfg.mkdir()
    env = kernel_env(str(cfg), HAIL_EMR_LAB_SESSION_NAME=BASE, HAIL_EMR_LAB_LIVY_URL=livy_server.url,
                     JPY_SESSION_NAME=str(other))
    k2 = Kernel(env, cwd=str(notebook_dir))
    try:
        # The kernel sees its notebook through __session__ as well (ipykernel copies the variable).
        assert k2.value("__session__") == str(other)
        theirs = k2.value("__import__('hail_emr_lab.session_names').session_names.default_session_name("
                          f"{BASE!r})")
        mine = notebook_session_name(BASE, str(kernel.notebook))
        assert theirs != mine and theirs.startswith(f"{BASE}@analysis-")
        # --name shares a session on purpose: the other notebook reattaches to this one's.
        res = k2.run(f"%hail connect --name {mine}")
        assert res.status == "ok" and "reattached to session" in res.text, res.text
        assert k2.value("__import__('hail_emr_lab.notebook.context').notebook.context.current().session.name") == mine
        k2.run("%hail disconnect")
    finally:
        k2.shutdown()


def test_session_names_without_a_notebook_and_labels(tmp_path):
    assert default_session_name("hail-bob", env={}, user_ns={}) == "hail-bob"
    by_ns = default_session_name("hail-bob", env={}, user_ns={"__session__": str(tmp_path / "QC run.ipynb")})
    assert re.fullmatch(r"hail-bob@QC-run-[0-9a-f]{8}", by_ns)
    assert default_session_name("hail-bob", env={"JPY_SESSION_NAME": str(tmp_path / "QC run.ipynb")}) == by_ns
    assert is_own(by_ns, "hail-bob") and is_own("hail-bob", "hail-bob")
    assert not is_own("hail-bobby@x-00000000", "hail-bob") and not is_own("hail-bobby", "hail-bob")
    assert notebook_label(by_ns, "hail-bob", {by_ns: "work/QC run.ipynb"}) == "work/QC run.ipynb"
    assert notebook_label(by_ns, "hail-bob", {}) == "QC-run"
    assert notebook_label("hail-bob", "hail-bob", {}) is None
