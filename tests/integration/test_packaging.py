"""Packaging: the wheel carries everything a `pip install` user needs, and Jupyter sees it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_wheel_ships_labextension_server_config_scripts_and_remote_code(tmp_path):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("hail_emr_lab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "hail_emr_lab-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/hail-emr-lab/package.json" in names
    assert f"{data}share/jupyter/labextensions/hail-emr-lab/install.json" in names
    assert any(n.startswith(f"{data}share/jupyter/labextensions/hail-emr-lab/static/remoteEntry.") for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/hail_emr_lab.json" in names
    for script in ("on-create.sh", "on-start.sh", "emr/create-plots-dir.sh", "emr/livy-conf.json"):
        assert f"hail_emr_lab/lifecycle/scripts/{script}" in names, script
    for module in ("dataframe.py", "codec.py", "push.py", "plots.py"):
        assert f"hail_emr_lab/remote/{module}" in names, module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hail-emr-lab = hail_emr_lab.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    # Build outputs and local state never go in.
    assert not [n for n in names if "node_modules" in n or "/.venv/" in n or n.endswith(".pyc")]


def test_jupyter_lists_both_extensions_enabled():
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    lab = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True, env=env)
    server = subprocess.run(
        [str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True, text=True, env=env
    )
    lab_out = lab.stdout + lab.stderr
    server_out = server.stdout + server.stderr
    assert any("hail-emr-lab" in line and "enabled" in line for line in lab_out.splitlines()), lab_out
    assert any("hail_emr_lab" in line and "enabled" in line for line in server_out.splitlines()), server_out


def test_cli_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("local-livy", "lab", "clusters", "sync", "lifecycle", "jobs"):
        assert f"  {command}" in out
    bad = subprocess.run([sys.executable, "-m", "hail_emr_lab", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'nope'" in bad.stderr and "Traceback" not in bad.stderr
