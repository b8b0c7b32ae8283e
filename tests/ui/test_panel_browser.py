"""``%hail panel`` in a real JupyterLab: it refreshes while shown, and stops when nobody shows it.

JupyterLab runs as a subprocess; a notebook shows the panel; the test reads the kernel's state
through a second client of the same kernel (its connection file, as ``jupyter console
--existing`` would; the Jupyter server does not count it as a front end), closes the notebook
tab (the kernel keeps running, as in JupyterLab by default) and sees the panel's refreshes stop;
reopened, they resume.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import requests
from support.lab import Lab, chromium, failure_artifacts, open_notebook, run_command, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PANEL = "__import__('hail_emr_lab.notebook.panel').notebook.panel._SHOWN"


@pytest.fixture
def lab(tmp_path, isolated_config, artifacts_dir):
    cells = ["%load_ext hail_emr_lab", "%hail panel"]
    with running_lab(tmp_path, artifacts_dir, "panel", notebooks={"progress.ipynb": cells}) as running:
        yield running


class Peek:
    """A second client of the notebook's kernel, to read the panel's state."""

    def __init__(self, connection_file: str):
        from jupyter_client import BlockingKernelClient

        self.kc = BlockingKernelClient(connection_file=connection_file)
        self.kc.load_connection_file()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def value(self, expr: str):
        reply = self.kc.execute_interactive(f"import json as _j; print(_j.dumps({expr}))", timeout=60,
                                            output_hook=self._hook)
        assert reply["content"]["status"] == "ok", reply
        return json.loads(self._out.strip().splitlines()[-1])

    def _hook(self, msg) -> None:
        if msg["msg_type"] == "stream":
            self._out += msg["content"]["text"]

    _out = ""

    def state(self) -> tuple[bool, int]:
        """(whether the panel thinks it is displayed, how many times it refreshed)."""
        self._out = ""
        return tuple(self.value(f"[{PANEL}.displayed(), {PANEL}.refreshes]"))

    def close(self) -> None:
        self.kc.stop_channels()


def test_panel_refreshes_only_while_displayed(lab: Lab, artifacts_dir):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        with failure_artifacts(page, artifacts_dir, "panel", lab):
            open_notebook(page, lab, "progress.ipynb")
            run_command(page, "notebook:run-all-cells")
            expect(page.locator(".jp-OutputArea-output", has_text="Hail on EMR")).to_be_visible(timeout=120_000)
            (kernel,) = requests.get(f"{lab.url}/api/kernels", params={"token": lab.token}, timeout=10).json()
            with contextlib.closing(Peek(str(lab.runtime / f"kernel-{kernel['id']}.json"))) as peek:
                _check(page, lab, peek, artifacts_dir)


def _check(page, lab: Lab, peek: Peek, shots) -> None:
    from playwright.sync_api import expect

    time.sleep(1)
    shown, first = peek.state()
    assert shown, "the panel does not know it is displayed"
    time.sleep(7.5)  # the panel refreshes every 3 s while shown
    assert peek.state()[1] >= first + 2
    page.screenshot(path=str(shots / "panel-1-shown.png"))

    # Close the notebook tab: the kernel runs on, nobody displays the panel.
    run_command(page, "docmanager:save")
    page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    run_command(page, "application:close-all")
    expect(page.locator(".jp-Notebook")).to_have_count(0, timeout=30_000)
    time.sleep(4)  # the front end's last messages, and a refresh under way, land
    shown, stopped = peek.state()
    assert not shown, "the panel still thinks it is displayed with its notebook closed"
    time.sleep(9)
    assert peek.state() == (False, stopped), "the panel kept refreshing for nobody"

    # Reopened on the same kernel, the saved output shows the panel again: refreshes resume.
    open_notebook(page, lab, "progress.ipynb")
    expect(page.locator(".jp-OutputArea-output", has_text="Hail on EMR")).to_be_visible(timeout=60_000)
    time.sleep(7.5)
    shown, resumed = peek.state()
    assert shown and resumed >= stopped + 2, (shown, stopped, resumed)
