"""Support for the magics tests (no tests here): drive a real IPython kernel with jupyter_client."""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from jupyter_client import KernelManager


@dataclass
class Result:
    """What one executed cell produced."""

    status: str = ""
    stdout: str = ""
    stderr: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)  # display_data / execute_result bundles
    updates: list[dict[str, Any]] = field(default_factory=list)  # update_display_data bundles
    ename: Optional[str] = None
    evalue: Optional[str] = None
    traceback: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything textual the cell showed (stdout, stderr, text/plain outputs, the error)."""
        parts = [self.stdout, self.stderr]
        parts += [d.get("text/plain", "") for d in self.data + self.updates]
        parts += self.traceback
        return "\n".join(parts)


class Kernel:
    """A kernel with the extension loaded."""

    def __init__(self, env: dict[str, str], cwd: str):
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.load()

    def load(self) -> None:
        res = self.run("%load_ext hail_emr_lab")
        assert res.status == "ok", res.text

    def run(self, code: str, timeout: float = 600, interrupt_after: Optional[float] = None) -> Result:
        """Execute ``code`` and gather its outputs until the kernel is idle again."""
        msg_id = self.kc.execute(code)
        res = Result()
        deadline = time.monotonic() + timeout
        interrupt_at = time.monotonic() + interrupt_after if interrupt_after else None
        idle = False
        while not idle:
            if interrupt_at and time.monotonic() > interrupt_at:
                self.km.interrupt_kernel()
                interrupt_at = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish in {timeout} s: {code[:80]!r}\n{res.text[-2000:]}")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id and msg["msg_type"] != "update_display_data":
                continue
            idle = self.collect(res, msg["msg_type"], msg["content"])
        reply = self.kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=30)
        res.status = reply["content"]["status"]
        return res

    def collect(self, res: Result, kind: str, content: dict[str, Any]) -> bool:
        """Add one IOPub message of the cell to ``res``; True once the kernel is idle again."""
        if kind == "stream":
            if content["name"] == "stdout":
                res.stdout += content["text"]
            else:
                res.stderr += content["text"]
        elif kind in ("display_data", "execute_result"):
            res.data.append(content["data"])
        elif kind == "update_display_data":
            res.updates.append(content["data"])
        elif kind == "error":
            res.ename, res.evalue, res.traceback = content["ename"], content["evalue"], content["traceback"]
        return kind == "status" and content["execution_state"] == "idle"

    def value(self, expr: str) -> Any:
        """Evaluate ``expr`` locally in the kernel and return it via JSON."""
        import json

        res = self.run(f"import json as _j; print(_j.dumps({expr}, default=str))")
        assert res.status == "ok", res.text
        return json.loads(res.stdout.strip().splitlines()[-1])

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=120)
        self.load()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def kernel_env(cfg_dir: str, **extra: str) -> dict[str, str]:
    """The kernel's environment: our own empty config sources, nothing inherited from the user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAIL_EMR_LAB_")}
    env.update(
        HAIL_EMR_LAB_CONFIG=os.path.join(cfg_dir, "config.json"),
        HAIL_EMR_LAB_SPARKMAGIC_CONFIG=os.path.join(cfg_dir, "sparkmagic.json"),
        HAIL_EMR_LAB_METADATA=os.path.join(cfg_dir, "metadata.json"),
        HAIL_EMR_LAB_LOCAL_DIR=os.path.join(cfg_dir, "local"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.update(extra)
    return env
