"""JupyterLab and headless Chromium for the browser tests: one way to start, drive and stop them.

* :func:`running_lab`: ``jupyter lab`` from this venv as a subprocess on a free loopback port,
  with its own token, Jupyter config and runtime directories, the sidebar's user settings and
  whatever environment the test adds; waits until ``/api/status`` answers; its output goes to
  ``test-artifacts/<name>-jupyterlab.log``; on exit it is terminated (killed after 20 s).
* :func:`chromium`: Playwright's Chromium API on Debian's ``/usr/bin/chromium`` (Playwright's own
  browser download is not used).
* :func:`failure_artifacts`: on a failure, a screenshot and the tail of the lab's log.
* :func:`open_notebook`, :func:`run_command`, :func:`accept_kernel_dialog`: what a user does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from support.net import free_port, wait_http

VENV_BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Seconds JupyterLab may take to answer ``/api/status`` (a loaded machine starts it slowly).
START_TIMEOUT = 120.0


@dataclass
class Lab:
    """A running JupyterLab: ``url`` (no trailing slash), its ``token``, ``root`` (served
    directory), ``runtime`` (``JUPYTER_RUNTIME_DIR``: kernel connection files) and ``log``."""

    url: str
    token: str
    root: Path
    runtime: Path
    log: Path

    def page(self, path: str = "lab") -> str:
        """The address of a Lab page (``lab``, ``lab/tree/x.ipynb``) with the token."""
        return f"{self.url}/{path}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def notebook(cells: list[str]) -> dict[str, Any]:
    """An nbformat 4 notebook (Python 3 kernel) of code cells with these sources."""
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@contextlib.contextmanager
def running_lab(
    tmp_path: Path,
    artifacts_dir: Path,
    name: str,
    *,
    root: Optional[Path] = None,
    notebooks: Optional[dict[str, list[str]]] = None,
    env: Optional[dict[str, str]] = None,
    settings: Optional[dict[str, Any]] = None,
) -> Iterator[Lab]:
    """Start JupyterLab with the extension and yield a :class:`Lab`; stop it on exit.

    ``root`` (default ``tmp_path/home``) is created and gets ``notebooks`` (file name -> cell
    sources); ``env`` is added to this process's environment; ``settings`` are the user's
    settings of the Hail sidebar (Settings Editor > Hail on EMR, e.g. ``{"pollInterval": 1}``).
    Raises ``RuntimeError`` when the lab does not answer within :data:`START_TIMEOUT` seconds.
    """
    root = root or tmp_path / "home"
    root.mkdir(parents=True, exist_ok=True)
    for file_name, cells in (notebooks or {}).items():
        (root / file_name).write_text(json.dumps(notebook(cells)))
    config, runtime = tmp_path / "jupyter-config", tmp_path / "jupyter-runtime"
    if settings is not None:
        user_settings = config / "lab" / "user-settings" / "hail-emr-lab"
        user_settings.mkdir(parents=True)
        (user_settings / "plugin.jupyterlab-settings").write_text(json.dumps(settings))
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.update(
        {
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    port, token = free_port(), secrets.token_hex(16)
    log_path = artifacts_dir / f"{name}-jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                "--ServerApp.open_browser=False", "--allow-root",
            ],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/api/status", timeout=START_TIMEOUT)
            yield Lab(url, token, root, runtime, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright  # a dev dependency: a missing one must fail, not skip

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def failure_artifacts(page: Any, artifacts_dir: Path, name: str, lab: Optional[Lab] = None) -> Iterator[None]:
    """On an exception: ``<name>-failure.png`` and the tail of the lab's log printed; re-raised."""
    try:
        yield
    except BaseException:
        page.screenshot(path=str(artifacts_dir / f"{name}-failure.png"))
        if lab is not None:
            print("---- jupyter lab log (tail) ----\n" + lab.log_tail())
        raise


def open_notebook(page: Any, lab: Lab, path: str) -> None:
    """Open notebook ``path`` (relative to the lab's root) and wait until its kernel is idle."""
    page.goto(lab.page(f"lab/tree/{path}"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    accept_kernel_dialog(page)


def accept_kernel_dialog(page: Any) -> None:
    """JupyterLab may still ask which kernel to use (on a loaded machine the kernel's start can
    outlast its wait): take its default answer, the notebook's own kernel."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    try:
        dialog.wait_for(timeout=3_000)
    except Exception:  # no dialog: the kernel started on its own  # noqa: BLE001
        return
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def run_command(page: Any, command: str) -> None:
    """Run a JupyterLab command without waiting for it: the promise of a run command settles only
    when its cells have finished."""
    page.evaluate("(id) => { void window.jupyterapp.commands.execute(id); }", command)


def delete_livy_sessions(livy_url: str, name_prefix: str) -> None:
    """Delete the Livy sessions whose name starts with ``name_prefix`` (a lab's kernels leave
    theirs behind; deleting them keeps the shared embedded Livy lean)."""
    from hail_emr_lab.livy import LivyClient

    with LivyClient(livy_url) as client:
        for s in client.list_sessions():
            if (s.name or "").startswith(name_prefix):
                client.delete_session(s.id)
