"""A ``%%hail`` cell's progress in a real JupyterLab, driven by headless Chromium.

JupyterLab runs as a subprocess on the embedded Livy server. A notebook connects, runs a slow
statement (``time.sleep``, which Livy reports at 0 % throughout) and a ``%hail push``. The test
sees the statement's state and elapsed time within about two seconds of the cell starting,
then the time moving, then the final record; it saves the notebook, shuts its kernel down,
reloads the page and reopens the notebook as a user coming back the next day would: the records
are there as text and no "Error displaying widget" appears. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from support.lab import Lab, chromium, delete_livy_sessions, failure_artifacts, open_notebook, run_command, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSION_NAME = "hail-ui-progress"
SLOW_SECONDS = 12
CELLS = [
    "%load_ext hail_emr_lab",
    "%hail connect",
    "%%hail\nprint('session ready')",
    f"%%hail\nimport time\ntime.sleep({SLOW_SECONDS})\nprint('slept')",
    "import pandas as pd\nframe = pd.DataFrame({'a': list(range(200_000)), 'b': ['x'] * 200_000})",
    "%hail push frame",
]
SLOW = 3  # index of the slow cell
PUSH = 5


@pytest.fixture
def lab(livy_server, tmp_path, isolated_config, artifacts_dir):
    """JupyterLab with the extension on the embedded Livy."""
    env = {
        "HAIL_EMR_LAB_LIVY_URL": livy_server.url,
        "HAIL_EMR_LAB_SESSION_NAME": SESSION_NAME,
        "HAIL_EMR_LAB_PLOTS_DIR": str(livy_server.plots_dir),
    }
    try:
        with running_lab(tmp_path, artifacts_dir, "progress", notebooks={"progress.ipynb": CELLS}, env=env) as running:
            yield running
    finally:
        delete_livy_sessions(livy_server.url, SESSION_NAME)


def test_progress_from_the_first_second_and_records_after_reopen(lab: Lab, artifacts_dir):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        with failure_artifacts(page, artifacts_dir, "progress", lab):
            _run(page, lab, artifacts_dir)


def _done(cell) -> bool:
    """True once the cell has run: its prompt shows an execution count, not '*'."""
    return bool(re.search(r"\[\d+\]", cell.locator(".jp-InputPrompt").inner_text()))


def _run(page, lab: Lab, shots: Path) -> None:
    from playwright.sync_api import expect

    open_notebook(page, lab, "progress.ipynb")
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    run_command(page, "notebook:run-all-cells")

    # The slow cell starts when the one before it is done; from then on, its state and elapsed
    # time show within about two seconds (no widget, no wait for Livy to report progress).
    before, slow = cells.nth(SLOW - 1), cells.nth(SLOW)
    deadline = time.monotonic() + 300
    while not _done(before):
        assert time.monotonic() < deadline, "the session never got ready: " + before.inner_text()
        expect(before.locator(".jp-OutputArea-output.jp-mod-error")).to_have_count(0)
        time.sleep(0.05)
    started = time.monotonic()
    line = slow.locator(".jp-OutputArea-output", has_text=re.compile(r"statement \d+ (waiting|running), \d+ s"))
    expect(line).to_be_visible(timeout=4_000)
    shown_after = time.monotonic() - started
    assert shown_after < 2.5, f"the first progress line took {shown_after:.1f} s"
    page.screenshot(path=str(shots / "progress-1-first-second.png"))
    # The elapsed time moves in place while the statement reports 0 %.
    expect(slow.locator(".jp-OutputArea-output", has_text=re.compile(r"running, [4-9] s"))).to_be_visible(
        timeout=10_000
    )
    expect(slow.locator(".jp-OutputArea-output", has_text=re.compile(r"statement \d+ (waiting|running)"))).to_have_count(1)
    record = slow.locator(".jp-OutputArea-output", has_text=re.compile(r"hail: statement \d+ finished in \d+\.\d s"))
    expect(record).to_be_visible(timeout=(SLOW_SECONDS + 60) * 1000)
    expect(slow).to_contain_text("slept")
    push = cells.nth(PUSH)
    expect(push).to_contain_text("frame: pushed", timeout=300_000)
    page.screenshot(path=str(shots / "progress-2-finished.png"))

    # Save, shut the kernel down, reload, reopen: the records stay, as plain output.
    run_command(page, "docmanager:save")
    page.wait_for_function(
        "!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
    )
    saved = json.loads((lab.root / "progress.ipynb").read_text())
    outputs = [o for c in saved["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})], outputs
    for kernel in requests.get(f"{lab.url}/api/kernels", params={"token": lab.token}, timeout=10).json():
        requests.delete(f"{lab.url}/api/kernels/{kernel['id']}", params={"token": lab.token}, timeout=30)
    page.reload()
    open_notebook(page, lab, "progress.ipynb")
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    slow = cells.nth(SLOW)
    expect(slow.locator(".jp-OutputArea-output", has_text=re.compile(r"finished in \d+\.\d s"))).to_be_visible(
        timeout=30_000
    )
    expect(cells.nth(PUSH)).to_contain_text("frame: pushed")
    page.wait_for_timeout(2_000)  # widget outputs render asynchronously: give them the time to fail
    expect(page.locator(".jp-Notebook")).not_to_contain_text("Error displaying widget")
    page.screenshot(path=str(shots / "progress-3-reopened.png"))
