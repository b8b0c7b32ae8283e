"""A pull's transfer in the Hail sidebar's Running section, in a real JupyterLab and headless Chromium.

JupyterLab runs as a subprocess on the embedded Livy server; its notebook's kernel pulls a 9.6 MB
frame with ``-o --via livy`` in small chunks (the kernel's chunk size is lowered so the pull takes
many Livy statements), publishing its transfer as it goes. The sidebar must show what moves (name,
direction, transport, notebook), bytes of total, rows and a rate while it runs, and drop it when the
pull ends. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from support.lab import Lab, chromium, delete_livy_sessions, failure_artifacts, open_notebook, run_command, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSION_NAME = "hail-ui-transfer"
ROWS = 600_000
NOTEBOOK_CELLS = [
    "%load_ext hail_emr_lab",
    "%hail connect",
    "%%hail\nimport numpy as np, pandas as pd\nrng = np.random.default_rng(7)\n"
    f"big = spark.createDataFrame(pd.DataFrame({{'a': rng.random({ROWS}), 'b': rng.random({ROWS})}})).cache()\n"
    "big.count()",
    # Small chunks: hundreds of Livy statements, so the pull lasts many of the sidebar's 1 s polls
    # however fast this machine is (48 chunks of 200k took about a second on a quiet one).
    "import hail_emr_lab.notebook.transfer as _t\n_t.CHUNK_CHARS = 20_000",
    "%%hail -o big --via livy\npass",
]


@pytest.fixture
def lab(livy_server, tmp_path, isolated_config, artifacts_dir):
    """JupyterLab with the extension, on the embedded Livy; the sidebar polls every second."""
    env = {"HAIL_EMR_LAB_LIVY_URL": livy_server.url, "HAIL_EMR_LAB_SESSION_NAME": SESSION_NAME}
    try:
        with running_lab(tmp_path, artifacts_dir, "transfer", notebooks={"analysis.ipynb": NOTEBOOK_CELLS},
                         env=env, settings={"pollInterval": 1}) as running:
            yield running
    finally:
        delete_livy_sessions(livy_server.url, SESSION_NAME)


def test_sidebar_shows_a_running_pull_and_drops_it_when_it_ends(lab: Lab, artifacts_dir):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        with failure_artifacts(page, artifacts_dir, "transfer", lab):
            open_notebook(page, lab, "analysis.ipynb")
            page.click(".jp-SideBar.jp-mod-left [data-id='hail-emr-lab-panel']")
            running = page.locator("#hail-emr-lab-panel [data-section='running']")
            expect(running).to_be_visible()
            run_command(page, "notebook:run-all-cells")

            moving = running.locator(".jp-HailTransfer[data-transfer='big'][data-direction='pull']")
            expect(moving).to_be_visible(timeout=400_000)
            expect(moving.locator(".jp-HailRow")).to_have_text("Pulling big through Livy · analysis.ipynb")
            detail = moving.locator(".jp-HailTransfer-detail")
            expect(detail).to_have_text(re.compile(rf"[\d.]+ (B|kB|MB) of [\d.]+ MB · {ROWS:,} rows · "))
            expect(moving.locator("[role='progressbar']")).to_be_visible()
            first = _done_bytes(detail.text_content())
            page.screenshot(path=str(artifacts_dir / "transfer-1-running-pull.png"))
            # It moves: the bytes grow and a rate shows while it runs.
            expect(detail).to_have_text(re.compile(r"· [\d.]+ (MB|kB)/s"), timeout=60_000)
            page.wait_for_function(
                "(first) => { const d = document.querySelector(\".jp-HailTransfer[data-transfer='big'] "
                ".jp-HailTransfer-detail\"); if (!d) { return true; } const m = d.textContent.match("
                "/^([\\d.]+) (B|kB|MB) of/); return !m || parseFloat(m[1]) * {B: 1, kB: 1e3, MB: 1e6}[m[2]] > first; }",
                arg=first, timeout=120_000)
            # When the pull ends, the sidebar drops it, and the cell says what came.
            expect(running.locator(".jp-HailTransfer")).to_have_count(0, timeout=300_000)
            expect(page.locator(".jp-OutputArea-output", has_text="big: pulled")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(artifacts_dir / "transfer-2-pull-done.png"))


def _done_bytes(text: str | None) -> float:
    m = re.match(r"([\d.]+) (B|kB|MB) of", text or "")
    assert m, text
    return float(m.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6}[m.group(2)]
