"""Check rendered lifecycle scripts before they reach SageMaker.

What SageMaker and the notebook instance require (SageMaker ``CreateNotebookInstanceLifecycleConfig``
API reference and the notebook instance lifecycle configuration guide):
each script's base64 is at most 16,384 characters; the script is valid bash (``bash -n``,
and ``shellcheck`` when installed); Unix line endings; and a script rendered for instances
without internet (package source ``s3``) downloads nothing from outside AWS: no ``pip install``
from the index, no ``conda install`` without ``--offline``, no ``curl``/``wget``/``git`` to
hosts other than S3 / AWS endpoints and the instance metadata service.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

from .render import SCRIPTS

#: SageMaker's limit on a lifecycle script's base64-encoded ``Content``.
MAX_BASE64_CHARS = 16384

_OFFLINE = re.compile(r"^PACKAGE_SOURCE=['\"]?s3['\"]?\s*$", re.M)
_URL = re.compile(r"\b(?:https?|ftp)://([^/\s'\"$:]+)")
_AWS_HOST = re.compile(r"(^|\.)amazonaws\.com(\.cn)?$|^169\.254\.169\.254$|^localhost$|^127\.0\.0\.1$")
_DOWNLOADERS = (
    (
        re.compile(r"\bpip3?\s+install\b|\bpip\"?\s+install\b|-m\s+pip\s+install\b"),
        "--no-index",
        "pip install from the package index",
    ),
    (re.compile(r"\bpip3?\"?\s+download\b"), None, "pip download from the package index"),
    (re.compile(r"\b(conda|mamba|micromamba)\"?\s+install\b"), "--offline", "conda install from a channel"),
    (re.compile(r"\b(npm|jlpm|yarn)\"?\s+(install|add|ci)\b"), None, "npm install from the registry"),
    (re.compile(r"\bjupyter\"?\s+labextension\s+install\b"), None, "labextension install from npm"),
    (re.compile(r"\bgit\s+clone\b"), None, "git clone"),
)
_FETCHERS = re.compile(r"\b(curl|wget)\b")


def _code_lines(text: str):
    """(line number, line) for every line that is not a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip().startswith("#"):
            yield number, line


def offline_problems(text: str) -> list[str]:
    """Lines of ``text`` that would download from the internet (for scripts rendered for s3)."""
    problems = []
    for number, line in _code_lines(text):
        for pattern, allowed_flag, what in _DOWNLOADERS:
            if pattern.search(line) and (allowed_flag is None or allowed_flag not in line):
                problems.append(f"line {number}: {what} needs internet access: {line.strip()}")
        if _FETCHERS.search(line):
            hosts = _URL.findall(line)
            bad = [host for host in hosts if not _AWS_HOST.search(host)]
            if bad:
                problems.append(f"line {number}: downloads from {', '.join(bad)} (not S3/AWS): {line.strip()}")
            elif not hosts:
                problems.append(f"line {number}: curl/wget to a URL that cannot be checked: {line.strip()}")
    return problems


def validate_script(path: Path, offline: bool | None = None) -> list[str]:
    """Every reason ``path`` would not work as a lifecycle script ([] when it is fine).

    ``offline`` None means: decide from the script's ``PACKAGE_SOURCE`` line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [f"cannot read {path}: {exc.strerror}"]
    problems = []
    size = len(base64.b64encode(data))
    if size > MAX_BASE64_CHARS:
        problems.append(
            f"base64 is {size} characters, over SageMaker's limit of {MAX_BASE64_CHARS} "
            f"(the script may have at most {MAX_BASE64_CHARS // 4 * 3} bytes; it has {len(data)})"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [*problems, "not UTF-8 text"]
    if not text.startswith("#!"):
        problems.append("no #! line: start the script with #!/bin/bash")
    if "\r" in text:
        problems.append("has Windows (CRLF) line endings: bash fails on them; convert with dos2unix")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problems.append("bash -n: " + (result.stderr.strip() or f"exit {result.returncode}"))
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        result = subprocess.run(
            [shellcheck, "-s", "bash", "-S", "warning", "-f", "gcc", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            lines = (result.stdout or result.stderr).strip().splitlines()
            problems += ["shellcheck: " + line.replace(str(path) + ":", "line ", 1) for line in lines]
    if offline is None:
        offline = bool(_OFFLINE.search(text))
    if offline:
        problems += offline_problems(text)
    return problems


def validate_dir(directory: Path, offline: bool | None = None) -> dict[str, list[str]]:
    """Problems of each lifecycle script in ``directory`` (on-create.sh, on-start.sh)."""
    directory = Path(directory)
    if not directory.is_dir():
        return {str(directory): [f"{directory} is not a directory of rendered scripts"]}
    report = {}
    for name in SCRIPTS:
        path = directory / name
        report[name] = validate_script(path, offline) if path.exists() else [f"{name} is missing"]
    return report
