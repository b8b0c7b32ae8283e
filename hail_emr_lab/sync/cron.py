"""``install-cron`` / ``uninstall-cron``: the every-5-minutes safety-net backup.

One line in the user's crontab, recognised by its marker, replaced in place (idempotent).
The command is the absolute path of this interpreter's ``hail-emr-lab`` script, because
cron's PATH does not include the notebook's conda environment. ``crontab`` is looked up on
PATH, so tests can put a stand-in first.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ..errors import HailEmrLabError

MARKER = "# hail-emr-lab-sync"
SCHEDULE = "*/5 * * * *"


def script_command() -> list[str]:
    """How to run ``hail-emr-lab`` with this same interpreter, as absolute paths."""
    script = Path(sys.executable).parent / "hail-emr-lab"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [os.path.abspath(sys.executable), "-m", "hail_emr_lab"]


def cron_line(extra_args: Sequence[str], log_path: Path | None = None) -> str:
    """The crontab line: backup quietly every 5 minutes, errors appended to ``log_path``."""
    cmd = [*script_command(), "sync", "backup", "--quiet", *extra_args]
    text = " ".join(shlex.quote(c) for c in cmd)
    if log_path is not None:
        text += f" >> {shlex.quote(str(log_path))} 2>&1"
    return f"{SCHEDULE} {text} {MARKER}"


def _crontab() -> str:
    exe = shutil.which("crontab")
    if not exe:
        raise HailEmrLabError(
            "the crontab command was not found, so the 5-minute backup cannot be scheduled. "
            "Install cron (e.g. `sudo yum install -y cronie`) or rely on the on-save backup and "
            "`hail-emr-lab sync watch`."
        )
    return exe


def read_crontab() -> str:
    """The current user crontab ('' if the user has none)."""
    proc = subprocess.run([_crontab(), "-l"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "no crontab" in (proc.stderr or "").lower():
            return ""
        raise HailEmrLabError(f"`crontab -l` failed: {(proc.stderr or '').strip() or proc.returncode}")
    return proc.stdout


def _write_crontab(text: str) -> None:
    proc = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HailEmrLabError(f"`crontab -` refused the new crontab: {(proc.stderr or '').strip()}")


def _without_ours(text: str) -> list[str]:
    return [line for line in text.splitlines() if MARKER not in line]


def install(extra_args: Sequence[str] = (), log_path: Path | None = None) -> tuple[bool, str]:
    """Add or update our line; returns (changed, line). Running it twice changes nothing."""
    current = read_crontab()
    line = cron_line(extra_args, log_path)
    lines = _without_ours(current) + [line]
    new = "\n".join(lines) + "\n"
    if new == current:
        return False, line
    _write_crontab(new)
    return True, line


def uninstall() -> bool:
    """Remove our line; returns whether anything changed."""
    current = read_crontab()
    lines = _without_ours(current)
    if len(lines) == len(current.splitlines()):
        return False
    _write_crontab("\n".join(lines) + "\n" if lines else "")
    return True
