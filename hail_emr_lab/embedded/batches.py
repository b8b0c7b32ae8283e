"""Batches: ``POST /batches`` runs a file with pyspark's own ``spark-submit``.

Each batch is a ``spark-submit`` process in its own process group (so DELETE stops the JVM
too), with Hail's jar and Spark conf as for sessions and ``--master local[2]`` unless the
request's conf says otherwise. Its merged stdout/stderr is the batch log. States follow Livy:
``starting`` -> ``running`` -> ``success`` (exit 0) or ``dead``; ``killed`` on DELETE.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from urllib.parse import urlparse

from ..livy.protocol import BATCH_FIELDS, BatchState
from . import sparkconf
from .common import (
    ApiError,
    LogBuffer,
    bad_request,
    check_fields,
    check_types,
)
from .sessions import KILL_GRACE_SECONDS, STATE_RETAIN_SECONDS, _signal_group, worker_env

_APP_ID = re.compile(r"\b(local-\d{10,})\b")
_UI_URL = re.compile(r"SparkUI.*?(https?://\S+)")


def _local_path(value: str, field: str) -> str:
    """A local filesystem path from a Livy file field (plain path, file:// or local: URI)."""
    parsed = urlparse(value)
    if parsed.scheme in ("", "file", "local"):
        path = parsed.path if parsed.scheme else value
        if not os.path.exists(path):
            raise bad_request(f"'{field}' {value!r} does not exist on the machine running this embedded Livy")
        return os.path.abspath(path)
    raise bad_request(
        f"'{field}' {value!r}: this embedded Livy runs local files only (no {parsed.scheme}:// access); "
        "copy the file to this machine first"
    )


class Batch:
    """One spark-submit run."""

    def __init__(self, bid: int, request: dict, workdir: str, plots_dir: str) -> None:
        self.id = bid
        self.request = request
        self.name: str | None = request.get("name")
        self.proxy_user: str | None = request.get("proxyUser")
        self.workdir = workdir
        self.plots_dir = plots_dir
        self.state = BatchState.STARTING
        self.app_id: str | None = None
        self.spark_ui_url: str | None = None
        self.log = LogBuffer()
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.killed = False
        self.final_since: float | None = None
        self.exit_code: int | None = None
        self.event_dir = os.path.join(workdir, "eventlog")

    def command(self) -> list[str]:
        req = self.request
        app_name = self.name or f"livy-batch-{self.id}"
        conf = sparkconf.session_conf(
            {k: v for k, v in req.items() if k not in ("jars", "pyFiles", "files", "archives")}, app_name
        )
        if "spark.eventLog.enabled" not in (req.get("conf") or {}):
            # Spark names the event log after the application id: that is how we learn appId
            # (spark-submit logs at WARN, which never mentions it).
            conf["spark.eventLog.enabled"] = "true"
            conf["spark.eventLog.dir"] = "file://" + self.event_dir
        master = conf.pop("spark.master", "local[*]")
        if not (req.get("conf") or {}).get("spark.master") and not req.get("driverCores"):
            master = "local[2]"
        cmd = [sparkconf.spark_submit(), "--master", master, "--name", app_name]
        for flag, field in (
            ("--py-files", "pyFiles"),
            ("--files", "files"),
            ("--jars", "jars"),
            ("--archives", "archives"),
        ):
            items = [_local_path(item, field) for item in req.get(field) or []]
            if items:
                cmd += [flag, ",".join(items)]
        if req.get("className"):
            cmd += ["--class", req["className"]]
        for key, value in sorted(conf.items()):
            cmd += ["--conf", f"{key}={value}"]
        cmd.append(_local_path(req["file"], "file"))
        cmd += [str(arg) for arg in req.get("args") or []]
        return cmd

    def start(self) -> None:
        cmd = self.command()
        os.makedirs(self.event_dir, exist_ok=True)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=worker_env(self.plots_dir),
            start_new_session=True,
        )
        # Only the file: conf and args may hold credentials, which never go to a log.
        self.log.append(f"hail-emr-lab: spark-submit pid {self.proc.pid} running {self.request['file']}")
        with self.lock:
            if self.state == BatchState.STARTING:
                self.state = BatchState.RUNNING
        threading.Thread(target=self._follow, name=f"batch-{self.id}", daemon=True).start()

    def _follow(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.log.append(line)
            if self.app_id is None and (match := _APP_ID.search(line)):
                self.app_id = match.group(1)
            if self.spark_ui_url is None and (match := _UI_URL.search(line)):
                self.spark_ui_url = match.group(1)
        code = self.proc.wait()
        with self.lock:
            self.exit_code = code
            self.log.append(f"hail-emr-lab: spark-submit exited with code {code}")
            if self.killed:
                self.state = BatchState.KILLED
            else:
                self.state = BatchState.SUCCESS if code == 0 else BatchState.DEAD
            self.final_since = time.monotonic()

    def kill(self) -> None:
        with self.lock:
            self.killed = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=KILL_GRACE_SECONDS)
        with self.lock:
            if not self.state.is_final:
                self.state = BatchState.KILLED

    def _find_app_id(self) -> str | None:
        if self.app_id is None:
            try:
                names = os.listdir(self.event_dir)
            except OSError:
                names = []
            for name in names:
                if match := _APP_ID.match(name):
                    self.app_id = match.group(1)
        return self.app_id

    def to_json(self) -> dict:
        self._find_app_id()
        return {
            "id": self.id,
            "name": self.name,
            "owner": None,
            "proxyUser": self.proxy_user,
            "state": self.state,
            "appId": self.app_id,
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": self.spark_ui_url},
            "log": self.log.tail(),
        }


class BatchRegistry:
    """All batches of one server."""

    def __init__(self, workroot: str, plots_dir: str, max_running: int) -> None:
        self.workroot = workroot
        self.plots_dir = plots_dir
        self.max_running = max_running
        self._batches: dict[int, Batch] = {}
        self._next_id = 0
        self._lock = threading.Lock()

    def create(self, body: dict, do_as: str | None = None) -> Batch:
        check_fields(body, BATCH_FIELDS, "batch")
        check_types(
            body,
            strings=("file", "proxyUser", "className", "driverMemory", "executorMemory", "queue", "name"),
            ints=("driverCores", "executorCores", "numExecutors"),
            string_lists=("jars", "pyFiles", "files", "archives"),
            maps=("conf",),
        )
        if not body.get("file"):
            raise bad_request("'file' is required: the path of the .py file (or jar) to run")
        args = body.get("args")
        if args is not None and not isinstance(args, list):
            raise bad_request(f"'args' must be a list, got {args!r}")
        request = dict(body)
        if do_as:
            request["proxyUser"] = do_as
        with self._lock:
            self._expire()
            running = [b for b in self._batches.values() if not b.state.is_final]
            if len(running) >= self.max_running:
                raise bad_request(
                    f"this embedded Livy runs at most {self.max_running} batches at once and {len(running)} "
                    "are running: wait for one to finish or delete one with DELETE /batches/{id}"
                )
            bid = self._next_id
            self._next_id += 1
            batch = Batch(bid, request, os.path.join(self.workroot, f"batch-{bid}"), self.plots_dir)
            batch.command()  # validates the paths before the batch is listed
            self._batches[bid] = batch
        try:
            batch.start()
        except OSError as exc:
            with self._lock:
                self._batches.pop(bid, None)
            raise ApiError(500, f"could not run spark-submit: {exc}") from exc
        return batch

    def get(self, bid: str | int) -> Batch:
        try:
            key = int(bid)
        except (TypeError, ValueError):
            key = None
        with self._lock:
            batch = self._batches.get(key) if key is not None else None
        if batch is None:
            raise ApiError(404, f"Session '{bid}' not found.")  # Livy's wording for batches too
        return batch

    def list(self) -> list[Batch]:
        with self._lock:
            self._expire()
            return [self._batches[k] for k in sorted(self._batches)]

    def delete(self, bid: str | int) -> None:
        batch = self.get(bid)
        with self._lock:
            self._batches.pop(batch.id, None)
        batch.kill()

    def shutdown(self) -> None:
        with self._lock:
            batches = list(self._batches.values())
            self._batches.clear()
        for batch in batches:
            batch.kill()

    def _expire(self) -> None:
        now = time.monotonic()
        for bid, batch in list(self._batches.items()):
            if batch.final_since and now - batch.final_since > STATE_RETAIN_SECONDS:
                del self._batches[bid]
