"""What a pull shows while it moves, in the cell and in the sidebar's record, through a real kernel.

A real IPython kernel (jupyter_client, started as jupyter_server starts one for a notebook) on the
embedded Livy server with real Spark, one kernel and one session for the module. The kernel's
chunk size is made small so a 3 MB frame takes many Livy statements; the test reads the
sidebar's records with the server extension's own reader (``dashboard.transfers``) from the
runtime folder it gave the kernel, while the cell runs.
"""

from __future__ import annotations

import queue
import re
import time
from typing import Any

import pytest
from support.kernel import Kernel, kernel_env

from hail_emr_lab.dashboard import transfers

pytestmark = pytest.mark.slow
NAME = "hail-transfer-progress-test"
ROWS = 400_000
BYTES = r"[\d.]+ (?:B|kB|MB)"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def kernel(livy_server, runtime, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg")
    notebook = cfg / "gwas.ipynb"
    env = kernel_env(str(cfg), JUPYTER_RUNTIME_DIR=runtime, JPY_SESSION_NAME=str(notebook))
    k = Kernel(env, cwd=str(cfg))
    k.notebook = notebook
    res = k.run(f"%hail connect --url {livy_server.url} --name {NAME}")
    assert res.status == "ok", res.text
    code = ("%%hail\nimport numpy as np, pandas as pd\nrng = np.random.default_rng(7)\n"
            f"big = spark.createDataFrame(pd.DataFrame({{'a': rng.random({ROWS}), 'b': rng.random({ROWS})}}))\n"
            "big = big.cache(); big.createOrReplaceTempView('big'); print(big.count())")
    res = k.run(code, timeout=900)
    assert res.status == "ok" and str(ROWS) in res.stdout, res.text
    # Small chunks, every one shown: the inline pull takes many statements and reports each, so
    # the test does not depend on how fast this machine is (a quiet one pulled 8 MB in about 1 s,
    # within four redraws of the usual 0.25 s throttle; a Ctrl-C could land after the end).
    res = k.run("import hail_emr_lab.notebook.transfer as _t, hail_emr_lab.notebook.transfer_progress as _p\n"
                "_t.CHUNK_CHARS = 100_000; _p.MIN_INTERVAL = 0.0")
    assert res.status == "ok", res.text
    yield k
    k.run("%hail delete", timeout=120)
    k.shutdown()


def watch(kernel: Kernel, code: str, runtime: str, interrupt_on_record: bool = False,
          timeout: float = 600) -> dict[str, Any]:
    """Run ``code``; gather its progress texts (in order), its last display, and the sidebar's
    records seen while it ran (Ctrl-C once both show bytes moving, with ``interrupt_on_record``)."""
    msg_id = kernel.kc.execute(code)
    t0 = time.monotonic()
    texts: list[str] = []
    final: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    stdout, error = "", None
    while True:
        assert time.monotonic() - t0 < timeout, f"cell did not finish: {code!r}"
        found, problem = transfers.running_transfers(runtime)
        assert problem is None, problem
        records += found
        # Ctrl-C once the cell shows bytes moving (its line appears only after a moment: a Ctrl-C
        # before it leaves no line to turn into a record) and the sidebar has the transfer.
        if interrupt_on_record and records and any(" through Livy: " in t for t in texts):
            kernel.km.interrupt_kernel()
            interrupt_on_record = False
        try:
            msg = kernel.kc.get_iopub_msg(timeout=0.1)
        except queue.Empty:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if msg["parent_header"].get("msg_id") != msg_id and kind != "update_display_data":
            continue
        if kind in ("display_data", "update_display_data"):
            texts.append(content["data"].get("text/plain", ""))
            final = content["data"]
        elif kind == "stream" and content["name"] == "stdout":
            stdout += content["text"]
        elif kind == "error":
            error = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            break
    return {"texts": texts, "final": final, "records": records, "stdout": stdout, "error": error}


def done_of(text: str, what: str) -> float:
    """The bytes done in a line ``<what>: 1.2 MB of 4.3 MB · …``, in bytes."""
    m = re.search(re.escape(what) + r": ([\d.]+) (B|kB|MB) of", text)
    assert m, text
    return float(m.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6}[m.group(2)]


def test_a_chunked_pull_shows_growing_bytes_a_rate_and_a_final_mean(kernel, runtime):
    seen = watch(kernel, "%%hail -o big --via livy\npass", runtime)
    assert seen["error"] is None, seen
    assert re.search(rf"big: pulled 400,000 rows .*MB on the wire\); moved {BYTES} in [\d.]+ s, mean [\d.]+ (MB|kB)/s",
                     seen["stdout"]), seen["stdout"]
    what = "pulling big through Livy"
    moving = [t for t in seen["texts"] if what in t]
    assert len(moving) >= 3, seen["texts"]
    done = [done_of(t, what) for t in moving]
    assert done == sorted(done) and done[-1] > done[0], done
    assert all(re.search(rf"of {BYTES} · 400,000 rows · ({BYTES}/s|… MB/s)", t) for t in moving), moving
    assert any(re.search(r"· [\d.]+ (MB|kB)/s · \d+ s left", t) for t in moving), moving
    assert seen["final"]["text/plain"] == "", seen["final"]  # cleared: the result line has the totals
    # The sidebar saw the same transfer, growing, from this notebook; and it is gone now.
    mine = [r for r in seen["records"] if r["name"] == "big"]
    assert len(mine) >= 2, seen["records"]
    assert {(r["direction"], r["transport"], r["rows"], r["notebook"]) for r in mine} == \
        {("pull", "livy", ROWS, str(kernel.notebook))}
    assert mine[-1]["done_bytes"] > mine[0]["done_bytes"] and mine[-1]["total_bytes"] >= mine[-1]["done_bytes"]
    assert any(r["rate"] for r in mine), mine
    assert transfers.running_transfers(runtime) == ([], None)


def test_a_staged_pull_shows_rows_and_how_it_travelled(kernel, runtime):
    seen = watch(kernel, "%%hail -o big --via staged\npass", runtime)
    assert seen["error"] is None, seen
    assert re.search(rf"\(parquet, .*\); moved {BYTES} in [\d.]+ s, mean ", seen["stdout"]), seen["stdout"]
    assert any("pulling big staged as Parquet: " in t and "400,000 rows" in t for t in seen["texts"]), seen["texts"]
    assert all(r["transport"] == "staged" and r["rows"] == ROWS for r in seen["records"]), seen["records"]
    assert transfers.running_transfers(runtime) == ([], None)


def test_ctrl_c_during_a_pull_withdraws_it_and_says_how_far_it_got(kernel, runtime):
    seen = watch(kernel, "%%hail -o big --via livy\npass", runtime, interrupt_on_record=True)
    assert seen["records"], "the pull never showed in the sidebar"
    assert seen["error"] in ("HailInterrupted", "KeyboardInterrupt"), seen
    assert "hail: pull was interrupted; so far pulled big through Livy: " in seen["final"]["text/plain"], seen
    assert transfers.running_transfers(runtime) == ([], None)
    res = kernel.run("%%hail\nprint('still usable', len(_hail_emr_lab._BLOBS))")
    # The driver let go of the chunks the notebook never took (it held them for the session's life).
    assert res.status == "ok" and "still usable 0" in res.stdout, res.text


@pytest.mark.parametrize("via, how", [("livy", "through Livy"), ("staged", "staged as Parquet")])
def test_a_push_shows_how_it_travels_and_ends_with_its_mean_rate(kernel, runtime, via, how):
    res = kernel.run(f"import numpy as np, pandas as pd\nlocal = pd.DataFrame({{'v': np.random.default_rng(1).random({ROWS})}})")
    assert res.status == "ok", res.text
    seen = watch(kernel, f"%hail push local --via {via}", runtime)
    assert seen["error"] is None, seen
    assert re.search(rf"local: pushed \(.*\); moved {BYTES} in [\d.]+ s, mean ", seen["stdout"]), seen["stdout"]
    assert all(r["direction"] == "push" and r["transport"] == via for r in seen["records"]), seen["records"]
    moving = [t for t in seen["texts"] if "hail: pushing local " in t and "encoding" not in t]
    assert all(how in t for t in moving), moving
    assert transfers.running_transfers(runtime) == ([], None)


def test_a_sql_result_shows_as_its_own_name(kernel, runtime):
    seen = watch(kernel, "%%hail sql -o q -q -n -1\nSELECT a, b FROM big", runtime)
    assert seen["error"] is None, seen
    assert any("hail: pulling q through Livy: " in t and "400,000 rows" in t for t in seen["texts"]), seen["texts"]
    assert seen["records"] and {r["name"] for r in seen["records"]} == {"q"}, seen["records"]
    assert transfers.running_transfers(runtime) == ([], None)
