"""Small helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``).

Importing it also puts ``tests/`` on ``sys.path``: the benchmarks use the tests' helpers
(``support.net`` for ports, ``support.proxy`` for the request-counting, latency-adding relay)
rather than copies of them, so import it before ``support``.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def machine() -> str:
    """One line describing this machine, for the tables' captions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's answer
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"

