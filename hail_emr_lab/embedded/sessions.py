"""Interactive sessions: the registry, each session's worker process, statements, reaping.

A ``Session`` owns one worker process (``python -m hail_emr_lab.embedded.worker``, its own
process group) and two reader threads: one for the worker's JSON-line messages (stdout), one
for its log (stderr). Statements are numbered and queued here and executed in order by the
worker. The session state follows Livy: ``starting`` until Spark is up, then ``idle``/``busy``,
``error`` when the worker dies after start (``dead`` when it dies while starting),
``shutting_down``/``killed`` while being deleted (a deleted session leaves the list at once).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Callable

from ..livy.protocol import (
    COMPLETION_FIELDS,
    SESSION_FIELDS,
    SHARED_SESSION_NEEDS_KIND,
    STATEMENT_FIELDS,
    SessionState,
    StatementState,
)
from . import sparkconf
from .common import (
    ApiError,
    LogBuffer,
    bad_request,
    check_fields,
    check_types,
    now_ms,
    page,
    parse_duration,
)
from .jsontext import RawJson

STARTUP_TIMEOUT = 600.0
STATE_RETAIN_SECONDS = 600.0  # livy.server.session.state-retain.sec: finished sessions stay listed
KILL_GRACE_SECONDS = 5.0
COMPLETION_TIMEOUT = 5.0
PIPE_BYTES = 1 << 20  # the worker's message pipe (Linux's default /proc/sys/fs/pipe-max-size)

_UNSUPPORTED_KINDS = {
    "spark": "kind 'spark' (Scala)",
    "scala": "kind 'scala' (Scala)",
    "sparkr": "kind 'sparkr' (R)",
    "r": "kind 'r' (R)",
}


def normalize_kind(kind: Any, what: str = "session") -> str | None:
    """Livy kind aliases -> 'pyspark' | 'sql' | 'shared' (None for an unset statement kind)."""
    if kind is None:
        return "shared" if what == "session" else None
    if not isinstance(kind, str):
        raise bad_request(f"'kind' must be a string, got {kind!r}")
    value = kind.strip().lower()
    if value in _UNSUPPORTED_KINDS:
        raise bad_request(
            f"this embedded server runs PySpark only; {_UNSUPPORTED_KINDS[value]} is not supported: "
            "use kind 'pyspark' (or 'sql'), or a real Livy on an EMR cluster for Scala and R"
        )
    if value in ("pyspark", "python"):
        return "pyspark"
    if value in ("sql", "shared"):
        return value
    raise bad_request(f"Invalid kind '{kind}': use 'pyspark', 'python', 'sql' or 'shared'")


class Statement:
    """One statement and its Livy JSON view."""

    def __init__(self, sid: int, code: str, kind: str) -> None:
        self.id = sid
        self.code = code
        self.kind = kind
        self.state = StatementState.WAITING
        self.output: dict | RawJson | None = None  # RawJson: the worker's encoded output
        self.progress = 0.0
        self.started = 0
        self.completed = 0

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "code": self.code,
            "state": self.state,
            "output": self.output,
            "progress": self.progress,
            "started": self.started,
            "completed": self.completed,
        }


def _finish(st: Statement, message: dict) -> None:
    """Record a statement's ``result`` message: its output, end time and final state."""
    st.output = message.get("output")
    st.completed = int(message.get("ts") or now_ms())
    if st.started == 0:
        st.started = st.completed
    if message.get("cancelled") or st.state in (StatementState.CANCELLING, StatementState.CANCELLED):
        st.state = StatementState.CANCELLED
        st.progress = float(message.get("progress") or st.progress)
    else:
        st.state = StatementState.AVAILABLE
        st.progress = 1.0


class Session:
    """An interactive session backed by one worker process."""

    def __init__(
        self,
        sid: int,
        request: dict,
        kind: str,
        workdir: str,
        plots_dir: str,
        stats: Callable[[str], None],
        default_idle_timeout: float,
    ) -> None:
        self.id = sid
        self.request = request
        self.kind = kind
        self.name: str | None = request.get("name")
        self.proxy_user: str | None = request.get("proxyUser")
        self.workdir = workdir
        self.plots_dir = plots_dir
        self._count = stats
        self.state = SessionState.STARTING
        self.app_id: str | None = None
        self.spark_ui_url: str | None = None
        self.log = LogBuffer()
        self.statements: collections.OrderedDict[int, Statement] = collections.OrderedDict()
        self._next_statement = 0
        self.lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._completions: dict[str, tuple[threading.Event, list]] = {}
        self.created = time.monotonic()
        self.last_touched = self.created  # any request naming the session (Livy's heartbeat)
        self.last_activity = self.created  # statements submitted/cancelled/finished, completions (ttl)
        self.final_since: float | None = None
        self.deleting = False
        self.heartbeat_timeout = float(request.get("heartbeatTimeoutInSecond") or 0)
        self.idle_timeout = (
            parse_duration(request["idleTimeout"], "idleTimeout")
            if request.get("idleTimeout")
            else default_idle_timeout
        )
        self.ttl = parse_duration(request["ttl"], "ttl") if request.get("ttl") else 0.0
        self.settings, unused = sparkconf.livy_settings(request)
        for name in unused:
            self.log.append(f"hail-emr-lab: Livy setting {name} (from spark.__livy__.{name}) is not used here")
        self.proc: subprocess.Popen | None = None

    # -- process ------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the worker; messages and log lines are then read by two threads."""
        app_name = self.name or f"livy-session-{self.id}"
        conf = sparkconf.session_conf(self.request, app_name)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hail_emr_lab.embedded.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env=worker_env(self.plots_dir),
            start_new_session=True,  # its own process group: the JVM dies with it on delete
        )
        self.log.append(f"hail-emr-lab: started worker pid {self.proc.pid} for session {self.id} in {self.workdir}")
        _widen_pipe(self.proc.stdout)
        self._send({"id": self.id, "kind": self.kind, "conf": conf, "settings": self.settings})
        threading.Thread(target=self._read_log, name=f"session-{self.id}-log", daemon=True).start()
        threading.Thread(target=self._read_messages, name=f"session-{self.id}-msgs", daemon=True).start()

    def _send(self, message: dict) -> bool:
        data = (json.dumps(message) + "\n").encode("utf-8")
        with self._write_lock:
            try:
                assert self.proc is not None and self.proc.stdin is not None
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                return True
            except (OSError, ValueError):  # the worker is gone; the message reader reports it
                return False

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.log.append(raw.decode("utf-8", "replace"))

    def _read_messages(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        for raw in stream:
            try:
                message = json.loads(raw)
            except ValueError:
                self.log.append(f"hail-emr-lab: unreadable worker message: {raw[:200]!r}")
                continue
            if "body_bytes" in message:  # a result's output, JSON text the worker encoded: kept as is
                body = stream.read(int(message["body_bytes"]))
                if len(body) != int(message["body_bytes"]):  # the worker died while writing it
                    self.log.append(f"hail-emr-lab: the worker's {message.get('type')} message was cut short")
                    break
                message["output"] = RawJson(body)
            try:
                self._handle(message)
            except Exception as exc:  # a bug here must not stop the reader; keep it visible in the log
                self.log.append(f"hail-emr-lab: failed to handle worker message {message.get('type')}: {exc!r}")
        self._on_exit()

    def _handle(self, message: dict) -> None:
        """Apply one worker message (``type``: ready, startup_failed, completion, or a statement's
        started / progress / result / skipped) under the session lock."""
        kind = message.get("type")
        with self.lock:
            if kind == "ready":
                self.app_id = message.get("appId")
                self.spark_ui_url = _loopback(message.get("sparkUiUrl"))
                if self.state == SessionState.STARTING:
                    self.state = SessionState.IDLE
                self.last_activity = time.monotonic()
            elif kind == "startup_failed":
                self.log.append(f"hail-emr-lab: Spark failed to start: {message.get('error')}")
            elif kind == "completion":
                waiter = self._completions.get(str(message.get("req")))
                if waiter is not None:
                    waiter[1].extend(message.get("candidates") or [])
                    waiter[0].set()
            else:
                self._handle_statement(kind, message)

    def _handle_statement(self, kind: Any, message: dict) -> None:
        """A statement's worker message; the caller holds the session lock."""
        st = self.statements.get(int(message.get("id", -1)))
        if kind == "started":
            self._count("statements_executed")
            if st is not None and st.state == StatementState.WAITING:
                st.state = StatementState.RUNNING
                st.started = int(message.get("ts") or now_ms())
        elif kind == "progress":
            if st is not None and st.state in (StatementState.RUNNING, StatementState.CANCELLING):
                st.progress = float(message.get("progress") or 0.0)
        elif kind == "result":
            if st is not None:
                _finish(st, message)
            self.last_activity = time.monotonic()
            self._trim()  # statements still running when the bound was passed can go now
            self._refresh_state()
        elif kind == "skipped":
            if st is not None and st.state != StatementState.CANCELLED:
                st.state = StatementState.CANCELLED
                st.completed = now_ms()
            self._refresh_state()

    def _on_exit(self) -> None:
        """The worker's message pipe closed: it exited (deleted, crashed or failed to start)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.2)  # let the log reader drain the last lines
        with self.lock:
            self.log.append(f"hail-emr-lab: worker pid {self.proc.pid} exited with code {code}")
            if self.deleting:
                self.state = SessionState.KILLED
            elif self.state == SessionState.STARTING:
                self.state = SessionState.DEAD
            elif not self.state.is_final:
                self.state = SessionState.ERROR
            tail = "\n".join(self.log.tail(20))
            for st in self.statements.values():
                if st.state.is_running:
                    st.output = {
                        "status": "error",
                        "execution_count": st.id,
                        "ename": "Error",
                        "evalue": f"Interpreter died:\n{tail}",
                        "traceback": [],
                    }
                    cancelled = st.state == StatementState.CANCELLING
                    st.state = StatementState.CANCELLED if cancelled else StatementState.AVAILABLE
                    st.completed = now_ms()
            for event, _ in self._completions.values():
                event.set()
            self.final_since = time.monotonic()

    def _refresh_state(self) -> None:
        if self.state.takes_statements:
            busy = any(st.state.is_running for st in self.statements.values())
            self.state = SessionState.BUSY if busy else SessionState.IDLE

    def kill(self) -> None:
        """Stop the worker and its JVM (SIGTERM to the process group, then SIGKILL)."""
        with self.lock:
            self.deleting = True
            if not self.state.is_final:
                self.state = SessionState.SHUTTING_DOWN
        proc = self.proc
        if proc is None:
            with self.lock:
                self.state = SessionState.KILLED
            return
        # Only signal the group while the worker (the group leader) is alive: once it is reaped
        # its pid, and so the group id, may belong to somebody else.
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=KILL_GRACE_SECONDS)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        with self.lock:
            self.state = SessionState.KILLED
            self.final_since = self.final_since or time.monotonic()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- statements ---------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if not self.state.takes_statements:
            raise bad_request(f"Session is in state {self.state}")

    def submit(self, body: dict) -> Statement:
        """Queue a statement (400 unless the session is idle or busy)."""
        check_fields(body, STATEMENT_FIELDS, "statement")
        code = body.get("code")
        if not isinstance(code, str):
            raise bad_request("'code' is required and must be a string")
        kind = self._statement_kind(body)
        with self.lock:
            self._require_ready()
            st = Statement(self._next_statement, code, kind)
            self._next_statement += 1
            self.statements[st.id] = st
            self._trim()
            self.state = SessionState.BUSY
            self.last_activity = time.monotonic()
            self._count("statements_submitted")
            # Sent under the session lock so that the worker's queue order is the id order.
            self._send({"type": "execute", "id": st.id, "code": code, "kind": kind})
            return st

    def _statement_kind(self, body: dict) -> str:
        """'pyspark' or 'sql': the statement's own kind, else the session's; a shared session
        needs one (400 with Livy's message, as Livy's REPL refuses it)."""
        kind = normalize_kind(body.get("kind"), "statement")
        if kind is None:
            if self.kind == "shared":
                raise bad_request(
                    f"{SHARED_SESSION_NEEDS_KIND}: send \"kind\": \"pyspark\" or \"sql\" with the statement, "
                    "or create the session with a kind"
                )
            kind = self.kind
        return "pyspark" if kind == "shared" else kind

    def _trim(self) -> None:
        """Keep at most livy.rsc.retained-statements, forgetting the oldest finished ones (Livy
        forgets the oldest whatever their state; we never drop one a client may still be waiting for)."""
        excess = len(self.statements) - self.settings["livy.rsc.retained-statements"]
        if excess <= 0:
            return
        for sid in [sid for sid, st in self.statements.items() if not st.state.is_running][:excess]:
            del self.statements[sid]

    def statement(self, sid: int) -> Statement:
        with self.lock:
            st = self.statements.get(sid)
        if st is None:
            raise ApiError(404, "Statement not found")
        return st

    def statements_view(self, from_: int | None, size: int | None, order: str | None) -> dict:
        with self.lock:
            items = [st.to_json() for st in self.statements.values()]
        if (order or "").strip().lower() == "desc":
            items.reverse()
        start = max(0, from_ or 0)
        chosen = items[start:] if size is None else page(items, start, size)
        return {"total_statements": len(items), "statements": chosen}

    def cancel(self, sid: int) -> None:
        """Livy's cancel: waiting -> cancelled, running -> cancelling (worker interrupts it)."""
        with self.lock:
            st = self.statements.get(sid)
            if st is None or st.state not in (StatementState.WAITING, StatementState.RUNNING):
                return
            if st.state == StatementState.WAITING:
                st.state = StatementState.CANCELLED
                st.completed = now_ms()
            else:
                st.state = StatementState.CANCELLING
            self.last_activity = time.monotonic()
            self._send({"type": "cancel", "id": sid})
            self._refresh_state()

    def complete(self, body: dict) -> list[str]:
        """Completion candidates from the worker's namespace."""
        check_fields(body, COMPLETION_FIELDS, "completion")
        code = body.get("code")
        if not isinstance(code, str):
            raise bad_request("'code' is required and must be a string")
        cursor = body.get("cursor", len(code))
        try:
            cursor = int(cursor)
        except (TypeError, ValueError):
            raise bad_request(f"'cursor' must be an integer, got {cursor!r}") from None
        if self._statement_kind(body) == "sql":
            return []
        req = uuid.uuid4().hex
        waiter: tuple[threading.Event, list] = (threading.Event(), [])
        with self.lock:
            self._require_ready()
            self._completions[req] = waiter
            self.last_activity = time.monotonic()
        try:
            self._send({"type": "complete", "req": req, "code": code, "cursor": cursor})
            waiter[0].wait(COMPLETION_TIMEOUT)
        finally:
            with self.lock:
                self._completions.pop(req, None)
        return list(waiter[1])

    # -- views --------------------------------------------------------------------------------

    def touch(self) -> None:
        self.last_touched = time.monotonic()

    def to_json(self) -> dict:
        """Livy's SessionInfo: every field of ``SESSION_INFO_FIELDS``, sizing as requested."""
        req = self.request
        with self.lock:
            return {
                "id": self.id,
                "name": self.name,
                "appId": self.app_id,
                "owner": None,
                "proxyUser": self.proxy_user,
                "state": self.state,
                "kind": self.kind,
                "appInfo": {"driverLogUrl": None, "sparkUiUrl": self.spark_ui_url},
                "log": self.log.tail(),
                "ttl": req.get("ttl"),
                "driverMemory": req.get("driverMemory"),
                "driverCores": req.get("driverCores") or 0,
                "executorMemory": req.get("executorMemory"),
                "executorCores": req.get("executorCores") or 0,
                "conf": dict(req.get("conf") or {}),
                "archives": list(req.get("archives") or []),
                "files": list(req.get("files") or []),
                "heartbeatTimeoutInSecond": req.get("heartbeatTimeoutInSecond") or 0,
                "jars": list(req.get("jars") or []),
                "numExecutors": req.get("numExecutors") or 0,
                "pyFiles": list(req.get("pyFiles") or []),
                "queue": req.get("queue"),
            }

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def _loopback(url: str | None) -> str | None:
    """Spark reports http://localhost:PORT; the UI is bound to 127.0.0.1 only."""
    if url and url.startswith("http://localhost:"):
        return "http://127.0.0.1:" + url[len("http://localhost:") :]
    return url


def _widen_pipe(stream: Any) -> None:
    """Give the worker's message pipe 1 MiB (Linux ``F_SETPIPE_SZ``; 64 KiB by default), so a
    megabytes-long output crosses it in a few writes instead of one per 64 KiB context switch."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # another OS, or a lower /proc/sys/fs/pipe-max-size: the default pipe works, slower


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def worker_env(plots_dir: str) -> dict[str, str]:
    """Environment of a worker or spark-submit: loopback Spark, this Python, the plots dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(
        {
            "HAIL_EMR_LAB_PLOTS_DIR": plots_dir,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
        }
    )
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    return env


class SessionRegistry:
    """All sessions of one server: create, look up, delete, and reap."""

    def __init__(
        self, workroot: str, plots_dir: str, max_sessions: int, session_timeout: float, count: Callable[[str], None]
    ) -> None:
        self.workroot = workroot
        self.plots_dir = plots_dir
        self.max_sessions = max_sessions
        self.session_timeout = session_timeout
        self._count = count
        self._sessions: dict[int, Session] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="session-reaper", daemon=True)
        self._reaper.start()

    def create(self, body: dict, do_as: str | None = None) -> Session:
        """Validate a POST /sessions body and start the session (201 view returned by caller)."""
        check_fields(body, SESSION_FIELDS, "session")
        check_types(
            body,
            strings=("proxyUser", "driverMemory", "executorMemory", "queue", "name"),
            ints=("driverCores", "executorCores", "numExecutors", "heartbeatTimeoutInSecond"),
            string_lists=("jars", "pyFiles", "files", "archives"),
            maps=("conf",),
        )
        kind = normalize_kind(body.get("kind"))
        sparkconf.livy_settings(body)  # 400 now for a bad spark.__livy__ value, before taking an id
        request = dict(body)
        if do_as:
            request["proxyUser"] = do_as
        with self._lock:
            live = [s for s in self._sessions.values() if not s.state.is_final]
            if len(live) >= self.max_sessions:
                raise bad_request(
                    f"this embedded Livy runs at most {self.max_sessions} sessions at once (each is a Spark "
                    f"driver with its own JVM) and {len(live)} are active: delete one with DELETE "
                    "/sessions/{id}, or restart the server with a larger --max-sessions"
                )
            name = request.get("name")
            if name and any(s.name == name for s in self._sessions.values()):
                raise bad_request(f"Duplicate session name: {name}")
            sid = self._next_id
            self._next_id += 1
            session = Session(
                sid,
                request,
                kind or "shared",
                os.path.join(self.workroot, f"session-{sid}"),
                self.plots_dir,
                self._count,
                self.session_timeout,
            )
            self._sessions[sid] = session
        try:
            session.start()
        except Exception as exc:
            with self._lock:
                self._sessions.pop(sid, None)
            raise ApiError(500, f"could not start the session's worker process: {exc}") from exc
        self._count("sessions_created")
        return session

    def get(self, sid: str | int) -> Session:
        try:
            key = int(sid)
        except (TypeError, ValueError):
            key = None
        with self._lock:
            session = self._sessions.get(key) if key is not None else None
        if session is None:
            raise ApiError(404, f"Session '{sid}' not found.")
        return session

    def list(self) -> list[Session]:
        with self._lock:
            return [self._sessions[k] for k in sorted(self._sessions)]

    def delete(self, sid: str | int, wait: bool = False) -> None:
        """Remove a session from the list at once; its worker is stopped in the background."""
        session = self.get(sid)
        with self._lock:
            self._sessions.pop(session.id, None)
        if wait:
            session.kill()
        else:
            threading.Thread(target=session.kill, name=f"session-{session.id}-kill", daemon=True).start()

    def shutdown(self) -> None:
        """Stop reaping and kill every session's worker (in parallel, waiting for them)."""
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        threads = [threading.Thread(target=s.kill, daemon=True) for s in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(KILL_GRACE_SECONDS * 3)

    def _reap_loop(self) -> None:
        while not self._stop.wait(1.0):
            for session in self.list():
                reason = self._reap_reason(session, time.monotonic())
                if reason:
                    session.log.append(f"hail-emr-lab: deleting session {session.id}: {reason}")
                    try:
                        self.delete(session.id)
                    except ApiError:
                        pass  # deleted meanwhile by a client

    def _reap_reason(self, session: Session, now: float) -> str | None:
        state = session.state
        if state.is_final:
            if session.final_since and now - session.final_since > STATE_RETAIN_SECONDS:
                return f"it ended {STATE_RETAIN_SECONDS:.0f} s ago"
            return None
        if session.heartbeat_timeout and now - session.last_touched > session.heartbeat_timeout:
            return f"no client touched it for {session.heartbeat_timeout:.0f} s (heartbeatTimeoutInSecond)"
        if state == SessionState.IDLE and session.idle_timeout and now - session.last_activity > session.idle_timeout:
            return f"idle for more than {session.idle_timeout:.0f} s (session timeout)"
        # Livy's ttl counts statement activity only: polling the session's state keeps its
        # heartbeat, not the session.
        if session.ttl and now - session.last_activity > session.ttl:
            return f"no statement for more than {session.ttl:.0f} s (ttl)"
        if state == SessionState.STARTING and now - session.created > STARTUP_TIMEOUT:
            return f"Spark did not start within {STARTUP_TIMEOUT:.0f} s"
        return None
