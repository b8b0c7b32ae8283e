"""Small helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``).

Importing it also puts ``tests/`` on ``sys.path``: the benchmarks use the tests' helpers
(``support.net`` for ports, ``support.proxy`` for the request-counting, latency-adding relay)
rather than copies of them, so import it before ``support``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Optional

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


def private_magics_config(tmp: Path, session_configs: Optional[dict[str, Any]] = None) -> None:
    """Point hail-emr-lab's configuration and sparkmagic's at files under ``tmp``: nothing of the
    user's is read. ``session_configs``: sparkmagic's Livy session settings (e.g. driverMemory)."""
    os.environ["HAIL_EMR_LAB_CONFIG"] = str(tmp / "none.json")
    os.environ["HAIL_EMR_LAB_SPARKMAGIC_CONFIG"] = str(tmp / "none-sm.json")
    os.environ["HAIL_EMR_LAB_METADATA"] = str(tmp / "none-meta.json")
    os.environ["SPARKMAGIC_CONF_DIR"] = str(tmp / "sparkmagic")
    (tmp / "sparkmagic").mkdir()
    (tmp / "sparkmagic" / "config.json").write_text(json.dumps({
        "livy_session_startup_timeout_seconds": 900,
        "heartbeat_refresh_seconds": 30,
        "wait_for_idle_timeout_seconds": 60,
        "session_configs": session_configs or {},
        "logging_config": {"version": 1, "handlers": {}, "loggers": {}},
        "custom_headers": {"X-Requested-By": "sparkmagic"},  # Livy's CSRF header, on by default here
    }))


def stop_magics(ip: Any, server: Any) -> None:
    """End sparkmagic's sessions and ours in the shell ``ip``, then stop the embedded ``server``."""
    import sys

    from IPython.utils.capture import capture_output

    with capture_output():
        try:
            ip.run_line_magic("spark", "cleanup")
        except Exception as exc:  # report, but still stop the server
            print(f"sparkmagic cleanup failed: {exc}", file=sys.stderr)
        ip.run_line_magic("hail", "disconnect --delete")
    server.stop()
